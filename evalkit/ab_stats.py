"""Small statistics for online A/B tests: Wilson intervals, the two-proportion z-test, power.

Stdlib only (``statistics.NormalDist``); each function documents its formula's assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

_NORMAL = NormalDist()


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there are no trials.

    Unlike the textbook ``p ± z·se`` it stays inside [0, 1] and keeps its coverage with few
    trials or rates near 0 or 1 — the usual case for acceptance rates.
    """
    if trials <= 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float]:
    """Pooled two-sided z-test of ``p_a == p_b``: returns (z, p-value).

    The normal approximation wants roughly five successes and five failures per arm; with
    fewer the p-value is rough (the report says so). No trials or no variation: (0, 1).
    """
    if trials_a <= 0 or trials_b <= 0:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 0.0, 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return z, 2 * (1 - _NORMAL.cdf(abs(z)))


def trials_needed(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Trials per arm for a two-sided test at ``alpha`` to detect ``p_a`` vs ``p_b`` with
    ``power`` (equal arms); None when the two rates are equal."""
    if p_a == p_b:
        return None
    z_alpha = _NORMAL.inv_cdf(1 - alpha / 2)
    z_power = _NORMAL.inv_cdf(power)
    mean = (p_a + p_b) / 2
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b)
    )
    return math.ceil(spread * spread / ((p_a - p_b) ** 2))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (``fraction`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
