"""Doctest filter: run the docstring's ``>>>`` examples against every candidate.

All candidates go to the sandbox in one run (``evalkit.doctest_runner``). The expected outputs
never enter it (docstrings are stripped, only example sources are sent) and the comparison
happens out here, so a candidate cannot read them, patch the checker or report for another
candidate; it can only print its own output, which passes an example exactly when ``doctest``
would pass it (see docs/THREAT_MODEL.md).
An example that failed only because a name the prelude could not define is missing (a package
the sandbox lacks) makes the candidate *unverifiable* rather than failed
(``server.doctest_context`` says which names).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Sequence
from typing import Any

from server.ranking import DoctestOutcome

logger = logging.getLogger(__name__)

# How the runner reports an example (or the definitions) stopped by a missing name or module;
# anchored at the end, so an example's printed output cannot pose as one.
_MISSING_RE = re.compile(
    r"(?:: raised |^definition failed: )"
    r"(?:NameError: name '(?P<name>\w+)' is not defined(?:\. Did you mean: '?\w+'?\?)?"
    r"|ModuleNotFoundError: No module named '(?P<module>[\w.]+)')\s*$"
)


def extract_examples(docstring: str | None) -> list[Any]:
    """The docstring's ``>>>`` examples (``evalkit.doctest_runner.DoctestExample`` objects)."""
    if not docstring:
        return []
    from evalkit.doctest_runner import extract_examples as extract

    return list(extract(docstring))


def missing_name(detail: str, may_be_missing: Collection[str]) -> str | None:
    """The skipped name (or module) a failure detail blames, if it is one that may be missing."""
    match = _MISSING_RE.search(detail.strip())
    if match is None:
        return None
    if match.group("name") and match.group("name") in may_be_missing:
        return match.group("name")
    module = match.group("module")
    if module and f"module:{module.split('.')[0]}" in may_be_missing:
        return module
    return None


def _outcome(verdict: Any, may_be_missing: Collection[str]) -> DoctestOutcome:
    details = [str(detail) for detail in verdict.details]
    status = str(verdict.status)
    if status == "failed" and details:
        missing = [missing_name(detail, may_be_missing) for detail in details]
        if all(missing):
            names = ", ".join(sorted({name for name in missing if name}))
            details = [f"needs {names}, which the sandbox could not import or define"]
            status = "unverifiable"
    return DoctestOutcome(
        passed=int(verdict.passed),
        total=int(verdict.total),
        status=status,
        details="; ".join(details)[:500],
    )


#: One-line messages for the user about the sandbox (e.g. bubblewrap missing), each said once.
_notices: list[str] = []


def sandbox_notices() -> list[str]:
    """What the user should hear about the doctest sandbox, oldest first (shown once each)."""
    return list(_notices)


def _note_failure(exc: Exception) -> None:
    from evalkit.sandbox import SandboxError

    if isinstance(exc, SandboxError):
        message = f"docomplete: the doctest filter is off: {exc}"
    else:
        message = f"docomplete: the doctest sandbox failed: {exc}"
    if message not in _notices:
        _notices.append(message)
        logger.warning("%s", message)


def run_examples(
    prelude: str,
    sources: Sequence[str],
    examples: Sequence[Any],
    *,
    timeout_s: float,
    may_be_missing: Collection[str] = (),
    extra_paths: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> list[DoctestOutcome]:
    """One outcome per program, in order; blocking (call it in a worker thread).

    ``extra_paths`` are directories the sandbox may read (a virtualenv's site-packages).
    Setting ``cancel`` stops the run: ``evalkit.sandbox.JobsCancelled`` is raised.
    """
    if not sources:
        return []
    if not examples:
        return [DoctestOutcome(status="no-examples") for _ in sources]
    from evalkit.doctest_runner import run_doctests
    from evalkit.sandbox_layers import JobsCancelled

    try:
        verdicts = run_doctests(
            prelude,
            list(sources),
            list(examples),
            timeout_s=timeout_s,
            extra_ro_paths=tuple(extra_paths),
            cancel=cancel,
        )
    except JobsCancelled:
        raise
    except Exception as exc:  # the sandbox failing must not take completions down with it
        _note_failure(exc)
        return [
            DoctestOutcome(total=len(examples), status="unavailable", details=str(exc))
            for _ in sources
        ]
    return [_outcome(verdict, may_be_missing) for verdict in verdicts]
