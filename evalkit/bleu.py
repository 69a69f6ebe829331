"""BLEU of each sample against the canonical solution (Codex Fig. 8: BLEU is a poor proxy).

sacrebleu is imported lazily (it is an ``eval`` extra, not a light-tier dependency).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _bleu_scorer() -> Any:
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        from model.cli_support import CommandError

        raise CommandError("BLEU needs sacrebleu: pip install -e '.[eval]'") from None
    # Sentence-level BLEU needs smoothing, or nearly every short body scores 0.
    return BLEU(effective_order=True, smooth_method="exp")


def sample_bleu_scores(pairs: Iterable[tuple[str, str]]) -> list[float]:
    """Sentence BLEU (0-100) of each ``(completion, canonical_solution)`` pair."""
    scorer = _bleu_scorer()
    scores: list[float] = []
    for completion, reference in pairs:
        if not completion.strip() or not reference.strip():
            scores.append(0.0)
            continue
        score = float(scorer.sentence_score(completion, [reference]).score)
        scores.append(min(100.0, max(0.0, score)))  # float noise can give 100.00000000000004
    return scores
