"""Ranking curves (Codex Fig. 7): the closed form equals brute force over every k-subset."""

from __future__ import annotations

import itertools
import random

import pytest

from evalkit.ranking import (
    STRATEGIES,
    ScoredSample,
    expected_pick_pass_rate,
    filtered_pass_at_1,
    ranking_curves,
)


def brute_force(samples: list[ScoredSample], k: int, strategy: str) -> float:
    """Average over all k-subsets, ties broken uniformly (average over tied maxima)."""
    key = {
        "sum_logprob": lambda s: (s.sum_logprob,),
        "mean_logprob": lambda s: (s.mean_logprob,),
        "doctest_filter": lambda s: (s.compiles, s.examples_passed, s.mean_logprob),
    }[strategy]
    total = 0.0
    subsets = list(itertools.combinations(samples, k))
    for subset in subsets:
        best = max(key(s) for s in subset)
        tied = [s for s in subset if key(s) == best]
        total += sum(s.passed for s in tied) / len(tied)
    return total / len(subsets)


def random_samples(rng: random.Random, n: int) -> list[ScoredSample]:
    out = []
    for _ in range(n):
        mean = rng.choice([-0.5, -1.0, -1.5, rng.uniform(-3, 0)])  # some ties on purpose
        length = rng.randint(1, 30)
        out.append(
            ScoredSample(
                passed=rng.random() < 0.4,
                sum_logprob=mean * length,
                mean_logprob=mean,
                examples_passed=rng.randint(0, 2),
                compiles=rng.random() < 0.8,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    samples = random_samples(rng, rng.randint(1, 9))
    for k in range(1, len(samples) + 1):
        for strategy in ("sum_logprob", "mean_logprob", "doctest_filter"):
            assert expected_pick_pass_rate(samples, k, strategy) == pytest.approx(
                brute_force(samples, k, strategy)
            )


def test_random_and_oracle_bracket_the_heuristics() -> None:
    rng = random.Random(7)
    problems = [random_samples(rng, 12) for _ in range(20)]
    curves = ranking_curves(problems)
    assert set(curves) == set(STRATEGIES)
    for k, oracle in curves["oracle"].items():
        for strategy in ("random", "sum_logprob", "mean_logprob", "doctest_filter"):
            assert curves[strategy][k] <= oracle + 1e-12
    # At k = 1 every heuristic sees one sample: all equal the plain pass rate.
    assert len({round(curve[1], 12) for curve in curves.values()}) == 1


def test_doctest_filter_picks_the_sample_passing_the_examples() -> None:
    good = ScoredSample(passed=True, sum_logprob=-9.0, mean_logprob=-3.0, examples_passed=2)
    likely_but_wrong = ScoredSample(passed=False, sum_logprob=-1, mean_logprob=-0.1)
    problem = [good] + [likely_but_wrong] * 4
    assert filtered_pass_at_1([problem]) == 1.0
    assert expected_pick_pass_rate(problem, 5, "mean_logprob") == 0.0
    assert expected_pick_pass_rate(problem, 5, "random") == pytest.approx(0.2)


def test_empty_completion_ranks_last() -> None:
    empty = ScoredSample(passed=False, sum_logprob=0.0, mean_logprob=float("-inf"))
    real = ScoredSample(passed=True, sum_logprob=-5.0, mean_logprob=-1.0)
    assert expected_pick_pass_rate([empty, real], 2, "mean_logprob") == 1.0
    assert expected_pick_pass_rate([empty, real], 2, "sum_logprob") == 0.0  # why the mean wins


def test_doctest_filter_never_shows_code_that_does_not_compile() -> None:
    broken = ScoredSample(passed=False, sum_logprob=-1, mean_logprob=-0.1, compiles=False)
    plain = ScoredSample(passed=True, sum_logprob=-8, mean_logprob=-2.0)
    assert filtered_pass_at_1([[broken, plain]]) == 1.0  # the LSP drops the broken one
    assert expected_pick_pass_rate([broken, plain], 2, "mean_logprob") == 0.0
