"""``docomplete eval compare`` on run directories of known effect (written by the runner's writers):
a real difference is found, no difference gives false winners at most α of the time, runs that
do not pair up are refused; and ``eval report``'s docstring-length breakdown on such a run."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from evalkit.compare import compare_runs
from server.cli import main
from tests.evalkit.synthetic_runs import problems, write_dataset, write_run

PROBLEMS = problems(40)


def rates(seed: int, count: int = 40) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.05, 0.7) for _ in range(count)]


def test_a_real_improvement_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = rates(1)
    a = write_run(tmp_path / "a", PROBLEMS, base, n=10, seed=11)
    b = write_run(tmp_path / "b", PROBLEMS, [r + 0.25 for r in base], n=10, seed=12)
    out = tmp_path / "cmp.json"
    assert main(["eval", "compare", str(a), str(b), "--json", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    metrics = {row["metric"]: row for row in payload["metrics"]}
    assert list(metrics) == ["pass@1", "pass@10", "filtered_pass@1"]  # k <= n only
    pass1 = metrics["pass@1"]
    assert pass1["verdict"] == "B is better"
    assert 0 < pass1["ci_low"] < pass1["difference"] < pass1["ci_high"]
    assert pass1["difference"] == pytest.approx(0.25, abs=0.07)
    assert pass1["p_value"] < 0.001
    assert pass1["problems_needed"] <= 40  # the effect is big enough for this benchmark
    assert "pass@1" in printed and "B is better" in printed and "problems to detect" in printed
    # The same pair the other way round: A is better, by the same amount.
    backward = compare_runs(b, a, alpha=0.05, resamples=2000, seed=3)
    assert backward["metrics"][0]["verdict"] == "A is better"
    assert backward["metrics"][0]["difference"] == pytest.approx(-pass1["difference"])


def test_no_effect_gives_false_winners_at_most_alpha(tmp_path: Path) -> None:
    # 200 pairs of runs drawn from the same per-problem pass rates: any "A/B is better" is a
    # false winner. A valid test declares one in at most α of them (plus binomial slack).
    trials, alpha = 200, 0.05
    false_winners = {"pass@1": 0, "filtered_pass@1": 0}
    for trial in range(trials):
        same = rates(1000 + trial, 30)
        a = write_run(tmp_path / f"{trial}a", PROBLEMS[:30], same, n=5, seed=2 * trial)
        b = write_run(tmp_path / f"{trial}b", PROBLEMS[:30], same, n=5, seed=2 * trial + 1)
        result = compare_runs(a, b, alpha=alpha, resamples=2000, seed=trial)
        for row in result["metrics"]:
            if row["metric"] in false_winners and not row["verdict"].startswith("no significant"):
                false_winners[row["metric"]] += 1
    slack = 3 * math.sqrt(alpha * (1 - alpha) / trials)
    for metric, count in false_winners.items():
        assert count / trials <= alpha + slack, (metric, count)


def test_runs_that_do_not_pair_up_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_run(tmp_path / "a", PROBLEMS, rates(1), n=4, seed=1)
    other_data = write_run(
        tmp_path / "other", PROBLEMS, rates(1), n=4, seed=2, dataset_sha256="1" * 64
    )
    fewer = write_run(tmp_path / "fewer", PROBLEMS[:30], rates(1, 30), n=4, seed=3)
    assert main(["eval", "compare", str(a), str(other_data)]) == 2
    assert "different datasets" in capsys.readouterr().err
    assert main(["eval", "compare", str(a), str(fewer)]) == 2
    err = capsys.readouterr().err
    assert "different problems (10 only in A, 0 only in B" in err and "--limit" in err
    assert main(["eval", "compare", str(a), str(tmp_path / "missing")]) == 2
    assert "not a finished run" in capsys.readouterr().err
    assert main(["eval", "compare", str(a), str(a), "--resamples", "100"]) == 2
    assert "at least 2000" in capsys.readouterr().err


def test_report_breaks_pass_rates_down_by_docstring_length(tmp_path: Path) -> None:
    items = problems(20)  # docstrings of 3 + 12·i words: every length bucket is used
    dataset = write_dataset(tmp_path / "syn.jsonl", items)
    # Short docstrings always pass, long ones never: the breakdown must show the slope.
    run = write_run(
        tmp_path / "run",
        items,
        [1.0 if i < 5 else 0.0 for i in range(20)],
        n=3,
        seed=0,
        dataset=str(dataset),
    )
    assert main(["eval", "report", str(run), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    rows = report["runs"][0]["by_docstring_length"]
    assert [row["bucket"] for row in rows] == ["0–24", "25–49", "50–99", "100–199", "200+"]
    assert sum(row["problems"] for row in rows) == 20
    assert rows[0]["pass@1"] == 1.0 and rows[-1]["pass@1"] == 0.0
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "## Pass rate by docstring length (tokens)" in markdown
    assert "| 0–24 | 2 | 10 | 100.00% |" in markdown
