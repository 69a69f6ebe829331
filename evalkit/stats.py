"""Paired statistics over problems: bootstrap intervals, sign-flip tests, power, verdicts.

Every comparison here pairs two runs problem by problem: ``a[i]`` and ``b[i]`` are the same
problem's score (pass@1, pass@k, filtered pick) in run A and run B. The unit that is resampled
is the problem, as in the Codex paper's error bars: a benchmark is a sample of problems, and
the question is whether B beats A on problems like these. All randomness is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

#: Below this many non-zero differences the sign-flip test enumerates every pattern exactly.
EXACT_SIGN_FLIP_MAX = 14
DEFAULT_RESAMPLES = 10_000
MIN_RESAMPLES = 2_000


def bootstrap_mean_ci(
    values: Sequence[float], *, resamples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling ``values`` with replacement."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    if data.size == 1 or np.all(data == data[0]):
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunks keep memory flat for big benchmarks (10,000 × 164 draws at a time at most).
    chunk = max(1, 2_000_000 // data.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def sign_flip_p_value(differences: Sequence[float], *, resamples: int, seed: int) -> float:
    """Two-sided p-value of the paired permutation test: is the mean difference zero?

    Under "A and B are the same", each problem's difference is as likely to have either sign,
    so the observed |mean| is compared with the |mean| under random sign flips. Exact (every
    pattern) for up to :data:`EXACT_SIGN_FLIP_MAX` non-zero differences, otherwise Monte Carlo
    with the add-one correction, which keeps the test valid (never anti-conservative).
    """
    d = np.asarray(differences, dtype=float)
    nonzero = d[d != 0.0]
    if nonzero.size == 0:
        return 1.0
    observed = abs(nonzero.sum())
    tolerance = 1e-9 * max(1.0, observed)
    if nonzero.size <= EXACT_SIGN_FLIP_MAX:
        patterns = (np.arange(2**nonzero.size)[:, None] >> np.arange(nonzero.size)) & 1
        sums = np.abs(((2 * patterns - 1) * nonzero).sum(axis=1))
        return float(np.mean(sums >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 2_000_000 // nonzero.size)
    for start in range(0, resamples, chunk):
        rows = min(resamples, start + chunk) - start
        signs = rng.choice(np.array([-1.0, 1.0]), size=(rows, nonzero.size))
        hits += int(np.sum(np.abs((signs * nonzero).sum(axis=1)) >= observed - tolerance))
    return (hits + 1) / (resamples + 1)


def problems_needed(
    differences: Sequence[float], *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Problems a paired test needs to detect the observed mean difference with ``power``.

    The normal approximation ``n = ((z[1-α/2] + z[power]) · sd / |mean|)²`` on the per-problem
    differences; ``None`` when there is no effect to detect (mean difference zero).
    """
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return None
    mean = float(d.mean())
    if mean == 0.0:
        return None
    sd = float(d.std(ddof=1))
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(2, math.ceil((z * sd / abs(mean)) ** 2))


def format_p(p_value: float) -> str:
    """``0.042``, or ``<0.001`` where three decimals would print a misleading zero."""
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def verdict(difference: float, p_value: float, alpha: float) -> str:
    """The plain-language outcome of a test of B − A."""
    if p_value < alpha and difference > 0:
        return "B is better"
    if p_value < alpha and difference < 0:
        return "A is better"
    return f"no significant difference at α = {alpha:g}"


@dataclass(frozen=True)
class PairedComparison:
    """One metric of B against A over the same problems."""

    metric: str
    problems: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    alpha: float
    verdict: str
    problems_needed: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    metric: str,
    alpha: float = 0.05,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    power: float = 0.8,
) -> PairedComparison:
    """Difference B − A of per-problem scores, its bootstrap interval, p-value and verdict."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no problems to compare")
    if resamples < 1 or not 0 < alpha < 1:
        raise ValueError("need resamples >= 1 and 0 < alpha < 1")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    difference = sum(diffs) / len(diffs)
    low, high = bootstrap_mean_ci(diffs, resamples=resamples, seed=seed, confidence=1 - alpha)
    # A second stream for the test, so the interval and the p-value do not share draws.
    p_value = sign_flip_p_value(diffs, resamples=resamples, seed=seed + 1)
    return PairedComparison(
        metric=metric,
        problems=len(diffs),
        mean_a=sum(a) / len(a),
        mean_b=sum(b) / len(b),
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=1 - alpha,
        p_value=p_value,
        alpha=alpha,
        verdict=verdict(difference, p_value, alpha),
        problems_needed=problems_needed(diffs, alpha=alpha, power=power),
    )
