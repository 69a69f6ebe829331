"""Ranking: doctest examples passed first, then mean token log-prob (Codex: mean beats sum).

The implementation is ``evalkit.candidate_policy`` (shared with evalkit's filtered pass@1);
these are the names the server has always imported.
"""

from __future__ import annotations

from evalkit.candidate_policy import DoctestOutcome, RankedCandidate, preference, rank_candidates

__all__ = ["DoctestOutcome", "RankedCandidate", "preference", "rank_candidates"]
