"""The paired statistics behind ``eval compare``: intervals, the sign-flip test, power, verdicts."""

from __future__ import annotations

import math
import random

import pytest

from evalkit.stats import (
    bootstrap_mean_ci,
    compare_paired,
    problems_needed,
    sign_flip_p_value,
    verdict,
)


def test_bootstrap_interval_holds_the_mean_narrows_with_data_and_repeats_with_its_seed() -> None:
    rng = random.Random(3)
    small = [rng.gauss(0.1, 0.2) for _ in range(20)]
    large = small * 10
    low, high = bootstrap_mean_ci(small, resamples=4000, seed=1)
    assert low < sum(small) / len(small) < high
    large_low, large_high = bootstrap_mean_ci(large, resamples=4000, seed=1)
    assert large_high - large_low < (high - low) / 2.5  # 10× the problems: ~1/3 of the width
    assert bootstrap_mean_ci(small, resamples=4000, seed=1) == (low, high)
    assert bootstrap_mean_ci(small, resamples=4000, seed=2) != (low, high)
    assert bootstrap_mean_ci([0.5, 0.5, 0.5], resamples=100, seed=0) == (0.5, 0.5)


def test_sign_flip_test_is_exact_on_few_problems() -> None:
    # Five problems all favouring B: only "all +" and "all −" are as extreme → 2/32.
    assert sign_flip_p_value([0.2] * 5, resamples=1000, seed=0) == pytest.approx(2 / 32)
    # Problems with no difference carry no information and are left out.
    assert sign_flip_p_value([0.2] * 5 + [0.0] * 20, resamples=1000, seed=0) == pytest.approx(
        2 / 32
    )
    assert sign_flip_p_value([0.0, 0.0], resamples=1000, seed=0) == 1.0
    assert sign_flip_p_value([0.3, -0.3], resamples=1000, seed=0) == 1.0


def test_sign_flip_test_by_sampling_on_many_problems() -> None:
    clear = [0.1 + 0.01 * i for i in range(40)]
    assert sign_flip_p_value(clear, resamples=2000, seed=0) == pytest.approx(1 / 2001)
    rng = random.Random(5)
    noise = [rng.choice([-0.1, 0.1]) for _ in range(40)]
    p = sign_flip_p_value(noise, resamples=2000, seed=0)
    assert 0.05 < p <= 1.0
    assert sign_flip_p_value(noise, resamples=2000, seed=0) == p  # seeded


def test_problems_needed_follows_the_paired_normal_approximation() -> None:
    diffs = [0.1, 0.3, -0.1, 0.2, 0.0, 0.1]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    expected = math.ceil(((1.959964 + 0.841621) * sd / mean) ** 2)
    assert problems_needed(diffs) == expected
    # Half the effect with the same spread needs about four times the problems.
    halved = problems_needed([d - mean / 2 for d in diffs])
    assert halved == math.ceil((2.801585 * sd / (mean / 2)) ** 2)
    assert 3.5 * expected < halved <= 4 * expected + 1
    assert problems_needed([0.1, -0.1]) is None


def test_verdicts_are_plain_words() -> None:
    assert verdict(0.1, 0.01, 0.05) == "B is better"
    assert verdict(-0.1, 0.01, 0.05) == "A is better"
    assert verdict(0.1, 0.2, 0.05) == "no significant difference at α = 0.05"
    assert verdict(0.1, 0.02, 0.01) == "no significant difference at α = 0.01"


def test_swapping_the_runs_mirrors_the_result() -> None:
    rng = random.Random(9)
    a = [rng.random() * 0.5 for _ in range(30)]
    b = [x + 0.2 for x in a]
    forward = compare_paired(a, b, metric="pass@1", resamples=2000, seed=4)
    backward = compare_paired(b, a, metric="pass@1", resamples=2000, seed=4)
    assert forward.verdict == "B is better" and backward.verdict == "A is better"
    assert forward.difference == pytest.approx(-backward.difference)
    assert forward.ci_low > 0 and backward.ci_high < 0
    assert forward.p_value == backward.p_value
    with pytest.raises(ValueError, match="equal lengths"):
        compare_paired(a, b[:-1], metric="pass@1")
