"""The unbiased pass@k estimator (Chen et al. 2021), in its numerically stable product form."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: The k values reported, each only where every problem has at least k samples.
DEFAULT_KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) passes.

    Equals ``1 - comb(n - c, k) / comb(n, k)``, computed as a product so that n = 200 and
    k = 100 neither overflow nor lose precision.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean of :func:`pass_at_k` over problems given as ``(n, c)`` pairs."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("no problems to average over")
    return sum(values) / len(values)


def reportable_ks(sample_counts: Sequence[int], ks: Sequence[int] = DEFAULT_KS) -> list[int]:
    """The k values that every problem supports (n >= k for all problems)."""
    if not sample_counts:
        return []
    smallest = min(sample_counts)
    return [k for k in ks if k <= smallest]
