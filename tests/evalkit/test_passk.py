"""The pass@k estimator against exact combinatorics, and the k values a report may show."""

from __future__ import annotations

import math

import pytest

from evalkit.passk import mean_pass_at_k, pass_at_k, reportable_ks


def exact_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 37, 100, 200])
def test_estimator_matches_exact_combinatorics_on_a_grid(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(exact_pass_at_k(n, c, k), abs=1e-12)


def test_edge_values() -> None:
    assert pass_at_k(200, 0, 100) == 0.0
    assert pass_at_k(200, 200, 1) == 1.0
    assert pass_at_k(200, 101, 100) == 1.0  # fewer than k wrong samples: any k-subset has a pass
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_estimator_is_not_the_plug_in_estimate() -> None:
    # The plug-in 1 - (1 - c/n)^k is biased; the product form equals the exact subset count.
    n, c, k = 20, 2, 10
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(18, 10) / math.comb(20, 10))
    assert pass_at_k(n, c, k) != pytest.approx(1 - (1 - c / n) ** k)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)


def test_mean_and_reportable_ks() -> None:
    assert mean_pass_at_k([(10, 10), (10, 0)], 1) == pytest.approx(0.5)
    assert reportable_ks([200, 200]) == [1, 10, 100]
    assert reportable_ks([20, 50]) == [1, 10]
    assert reportable_ks([5]) == [1]
    assert reportable_ks([]) == []
