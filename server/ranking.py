"""Ranking: doctest examples passed first, then mean token log-prob (Codex: mean beats sum)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.postprocess import CleanCandidate


@dataclass(frozen=True)
class DoctestOutcome:
    """How a candidate did on the docstring's ``>>>`` examples.

    ``status`` is the sandbox status (``passed``, ``failed``, ``timeout`` …) or one of
    ``no-examples`` (the docstring has none), ``disabled`` (doctestFilter is off),
    ``skipped`` (methods: their examples need the class) and ``unavailable`` (the sandbox could
    not run; ranking falls back to log-probs).
    """

    passed: int = 0
    total: int = 0
    status: str = "no-examples"
    details: str = ""


@dataclass(frozen=True)
class RankedCandidate:
    """A candidate ready to show: its continuation (prompt coordinates), function and scores."""

    continuation: str
    source: str
    mean_logprob: float | None  # None: the backend gave no log-probs
    sum_logprob: float
    finish_reason: str
    doctest: DoctestOutcome = field(default_factory=DoctestOutcome)

    def as_json(self) -> dict[str, Any]:
        return {
            "meanLogprob": None if self.mean_logprob is None else round(self.mean_logprob, 4),
            "sumLogprob": round(self.sum_logprob, 4),
            "finishReason": self.finish_reason,
            "doctest": {
                "passed": self.doctest.passed,
                "total": self.doctest.total,
                "status": self.doctest.status,
                "details": self.doctest.details,
            },
        }

    def verdict_text(self) -> str:
        """One line for completion documentation and the demo."""
        outcome = self.doctest
        if outcome.total:
            verdict = f"doctests {outcome.passed}/{outcome.total} passed"
            if outcome.status not in ("passed", "failed"):
                verdict += f" ({outcome.status})"
        else:
            verdict = {
                "no-examples": "no doctest examples",
                "disabled": "doctest filter off",
                "skipped": "doctests skipped (method)",
            }.get(outcome.status, f"doctests {outcome.status}")
        if self.mean_logprob is None:
            return f"{verdict} · no log-probs"
        return f"{verdict} · mean log-prob {self.mean_logprob:.3f}"


def rank_candidates(
    candidates: Sequence[CleanCandidate], outcomes: Sequence[DoctestOutcome]
) -> list[RankedCandidate]:
    """Most examples passed first; ties (and the no-examples case) by mean log-prob."""
    ranked = [
        RankedCandidate(
            continuation=clean.continuation,
            source=clean.source,
            mean_logprob=clean.candidate.mean_logprob,
            sum_logprob=clean.candidate.sum_logprob,
            finish_reason=clean.candidate.finish_reason,
            doctest=outcome,
        )
        for clean, outcome in zip(candidates, outcomes, strict=True)
    ]
    # Stable sort: without log-probs (None), ties keep the backend's order.
    ranked.sort(
        key=lambda r: (
            -r.doctest.passed,
            -r.mean_logprob if r.mean_logprob is not None else float("inf"),
        )
    )
    return ranked
