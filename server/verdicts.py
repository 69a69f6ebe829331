"""Verdicts shown to the user, and which candidates may become ghost text.

A candidate's doctest status (``passed``, ``failed``, ``timeout``, ``unverifiable``,
``no-examples`` …) is shown as one of four verdicts: ``passed``, ``failed`` (it contradicts its
own docstring), ``unverifiable`` (the examples could not be run for it: a package the sandbox
lacks, the sandbox itself unavailable) or ``skipped`` (nothing was checked: no examples, filter
off). Failed candidates always rank after the others. ``showFailing`` says where they go:
``picker`` (default: never ghost text — not even when every candidate fails — but listed in the
picker, marked failed), ``never`` (not offered anywhere) or ``always`` (offered as ghost text
too, after the others, as before this setting existed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

VERDICTS = ("passed", "failed", "unverifiable", "skipped")
SHOW_FAILING = ("picker", "never", "always")
#: Sandbox statuses that mean the examples ran and the candidate did not produce them.
FAILING_STATUSES = frozenset({"failed", "timeout", "memory", "crashed", "output_limit"})
UNVERIFIED_STATUSES = frozenset({"unverifiable", "unavailable", "not-verified", "not_verified"})


class _HasDoctest(Protocol):
    @property
    def doctest(self) -> Any: ...


def verdict_of(status: str) -> str:
    """The verdict a doctest status is shown as."""
    if status == "passed":
        return "passed"
    if status in FAILING_STATUSES:
        return "failed"
    if status in UNVERIFIED_STATUSES:
        return "unverifiable"
    return "skipped"


def verdict_label(passed: int, total: int, status: str) -> str:
    """Short text for pickers: ``passed 3/3``, ``failed 1/3``, ``unverifiable``, ``skipped``."""
    verdict = verdict_of(status)
    if verdict in ("passed", "failed") and total:
        return f"{verdict} {passed}/{total}"
    return verdict


T = TypeVar("T", bound=_HasDoctest)


def _verdict(candidate: _HasDoctest) -> str:
    return verdict_of(str(candidate.doctest.status))


def order_by_verdict(ranked: Sequence[T]) -> list[T]:
    """Failed candidates after all others; the order is kept otherwise (stable)."""
    return sorted(ranked, key=lambda candidate: _verdict(candidate) == "failed")


def ghost_candidates(ranked: Sequence[T], *, show_failing: str, doctest_filter: bool) -> list[T]:
    """The candidates that may be shown as ghost text, best first (failed ones last)."""
    if not doctest_filter or show_failing == "always":
        return list(ranked)
    return [candidate for candidate in ranked if _verdict(candidate) != "failed"]


def picker_candidates(ranked: Sequence[T], *, show_failing: str, doctest_filter: bool) -> list[T]:
    """The candidates a picker (or a completion menu) lists: all, unless ``never``."""
    if doctest_filter and show_failing == "never":
        return [candidate for candidate in ranked if _verdict(candidate) != "failed"]
    return list(ranked)


_SKIP_REASONS = {
    "no-examples": "no doctest examples",
    "disabled": "doctest filter off",
    "skipped": "examples not run",
    "checking": "examples still running",
}


def describe(candidate: Any) -> str:
    """One line for completion items and logs: the verdict, then the mean log-prob."""
    outcome = candidate.doctest
    status, passed, total = str(outcome.status), int(outcome.passed), int(outcome.total)
    verdict = verdict_of(status)
    counts = f"doctests {passed}/{total} passed"
    if verdict == "passed":
        text = counts
    elif verdict == "failed":
        text = f"failed: {counts}" + (f" ({status})" if status != "failed" else "")
    elif verdict == "unverifiable":
        text = "unverifiable: the examples could not run"
        if passed:
            text = f"unverifiable: {counts}, the others could not run"
    else:
        text = f"skipped: {_SKIP_REASONS.get(status, status)}"
    mean = getattr(candidate, "mean_logprob", None)
    return f"{text} · mean log-prob {mean:.3f}" if mean is not None else f"{text} · no log-probs"
