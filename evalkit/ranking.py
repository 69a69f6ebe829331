"""Which of k samples to show (Codex Fig. 7): expected pass rate of each ranking heuristic.

For a problem with n scored samples, a heuristic picks the highest-ranked of k samples drawn
without replacement. Its expected pass rate is computed in closed form over all C(n, k) subsets:
the sample at ascending rank position j is the pick of a subset exactly when the subset holds it
and k - 1 of the j samples below it, so its weight is ``C(j, k-1) / C(n, k)``. Tied samples share
the mean weight of their positions (a uniformly random tie-break: the k samples of one request
come back in random order).

The ``doctest_filter`` heuristic is the editor's candidate policy (``evalkit.candidate_policy``):
samples it drops are never shown, the rest are ranked by its key, and the pick is judged on the
body it shows (``ScoredSample.shown_passed``). Duplicates need no special care: the policy
keeps the likelier of two identical bodies, which passes or fails exactly like the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from evalkit.candidate_policy import preference
from evalkit.passk import pass_at_k


@dataclass(frozen=True)
class ScoredSample:
    """What the heuristics may look at, plus the hidden verdict they are judged on."""

    passed: bool
    sum_logprob: float
    mean_logprob: float | None  # None: no log-probs (ranked after any, in random order)
    examples_passed: int = 0
    compiles: bool = True  # the candidate policy keeps it (it compiles after post-processing)
    shown_passed: bool | None = None  # verdict of the body shown for it; None: same as passed


SortKey = Callable[[ScoredSample], tuple[float, ...]]


def _finite(value: float | None) -> float:
    # An empty completion has mean log-prob -inf; NaN would break sorting, so rank it last too.
    return value if value is not None and not math.isnan(value) else float("-inf")


#: Heuristics in the order they are plotted; "random" and "oracle" bracket the others.
STRATEGIES: dict[str, str] = {
    "random": "random sample",
    "sum_logprob": "max sum log-prob",
    "mean_logprob": "max mean log-prob",
    "doctest_filter": "docstring examples, then mean log-prob",
    "oracle": "oracle (pass@k)",
}

_SORT_KEYS: dict[str, SortKey] = {
    "sum_logprob": lambda s: (_finite(s.sum_logprob),),
    "mean_logprob": lambda s: (_finite(s.mean_logprob),),
    # What the LSP does: it drops candidates that do not compile (never shown: they sort
    # lowest and count as a failure when a request has nothing else), then ranks the rest.
    "doctest_filter": lambda s: (float(s.compiles), *preference(s.examples_passed, s.mean_logprob)),
}


@lru_cache(maxsize=256)
def _position_weights(n: int, k: int) -> tuple[float, ...]:
    """P(the sample at ascending position j is the best of a random k-subset), j = 0..n-1."""
    total = math.comb(n, k)
    return tuple(math.comb(j, k - 1) / total for j in range(n))


def expected_pick_pass_rate(samples: Sequence[ScoredSample], k: int, strategy: str) -> float:
    """Expected pass rate when the heuristic picks 1 of k samples drawn from ``samples``."""
    n = len(samples)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    correct = sum(sample.passed for sample in samples)
    if strategy == "random":
        return correct / n
    if strategy == "oracle":
        return pass_at_k(n, correct, k)
    if strategy not in _SORT_KEYS:
        raise ValueError(f"unknown ranking strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    sort_key = _SORT_KEYS[strategy]
    verdict: Callable[[ScoredSample], bool] = (
        _shown_verdict if strategy == "doctest_filter" else _own_verdict
    )
    ordered = sorted(samples, key=sort_key)
    weights = _position_weights(n, k)
    expected = 0.0
    start = 0
    while start < n:
        end = start + 1
        group_key = sort_key(ordered[start])
        while end < n and sort_key(ordered[end]) == group_key:
            end += 1
        group_weight = sum(weights[start:end]) / (end - start)
        expected += group_weight * sum(verdict(sample) for sample in ordered[start:end])
        start = end
    return expected


def _own_verdict(sample: ScoredSample) -> bool:
    return sample.passed


def _shown_verdict(sample: ScoredSample) -> bool:
    # A dropped sample is shown only when nothing else is left, that is never: a failure.
    if sample.shown_passed is not None:
        return sample.shown_passed and sample.compiles
    return sample.passed


def curve_ks(max_n: int) -> list[int]:
    """The k values a ranking curve is evaluated at: a log-like grid up to n, n included."""
    grid = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 1000]
    ks = [k for k in grid if k <= max_n]
    if max_n not in ks:
        ks.append(max_n)
    return ks


def ranking_curves(
    problems: Sequence[Sequence[ScoredSample]], ks: Sequence[int] | None = None
) -> dict[str, dict[int, float]]:
    """Mean over problems of each heuristic's expected pass rate, for each k ≤ min n."""
    problems = [samples for samples in problems if samples]
    if not problems:
        return {name: {} for name in STRATEGIES}
    smallest = min(len(samples) for samples in problems)
    if ks is None:
        ks = curve_ks(smallest)
    ks = [k for k in ks if 1 <= k <= smallest]
    curves: dict[str, dict[int, float]] = {}
    for strategy in STRATEGIES:
        curves[strategy] = {
            k: sum(expected_pick_pass_rate(samples, k, strategy) for samples in problems)
            / len(problems)
            for k in ks
        }
    return curves


def filter_ns(max_n: int) -> list[int]:
    """The n values of the filtered pass@1 curve: 1, 2, 4, 8, … and max_n itself."""
    ns = []
    n = 1
    while n < max_n:
        ns.append(n)
        n *= 2
    return [*ns, max_n] if max_n >= 1 else []


def filtered_pass_at_1(problems: Sequence[Sequence[ScoredSample]], n: int | None = None) -> float:
    """Pass rate of the one candidate the editor shows when it asks the backend for n samples.

    For each problem, the expected verdict of the top-ranked candidate (candidate policy:
    non-compiling code dropped, then docstring examples passed, then mean log-prob) among a
    random subset of n of its samples, exact over all subsets; ties are broken uniformly at
    random. A problem with fewer than n samples uses all of them; ``n=None`` ranks every sample
    (the editor's own n is ``candidate_policy.DEFAULT_N``, the summary's headline).
    """
    problems = [samples for samples in problems if samples]
    if not problems:
        return 0.0
    total = sum(
        expected_pick_pass_rate(
            samples, len(samples) if n is None else min(n, len(samples)), "doctest_filter"
        )
        for samples in problems
    )
    return total / len(problems)


def filtered_curve(
    problems: Sequence[Sequence[ScoredSample]], ns: Sequence[int] | None = None
) -> dict[int, float]:
    """Filtered pass@1 at each n (default :func:`filter_ns` of the smallest sample count)."""
    problems = [samples for samples in problems if samples]
    if not problems:
        return {}
    smallest = min(len(samples) for samples in problems)
    chosen = filter_ns(smallest) if ns is None else [n for n in ns if 1 <= n <= smallest]
    return {n: filtered_pass_at_1(problems, n) for n in chosen}
