"""`docomplete eval split`: a run's pass@k for the computed look-alike problems and the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"task_id": "HumanEval/13", "n": 4, "correct": 4, "pass@1": 1.0, "filtered_pick_pass": 1.0},
        {
            "task_id": "HumanEval/14",
            "n": 4,
            "correct": 1,
            "pass@1": 0.25,
            "filtered_pick_pass": 0.0,
        },
        {"task_id": "HumanEval/15", "n": 4, "correct": 0, "pass@1": 0.0, "filtered_pick_pass": 0.0},
    ]
    (run / "per_problem.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_split_separates_look_alikes_from_the_rest(tmp_path: Path, capsys) -> None:
    report = tmp_path / "decontam.json"
    summary = {"eval_sets": {"HumanEval": {"problems": 164, "look_alikes": ["HumanEval/13"]}}}
    rows = [
        {"task_id": "HumanEval/13", "look_alike": True},
        {"task_id": "HumanEval/14", "look_alike": False},
    ]
    report.write_text(json.dumps({"summary": summary, "problems": rows}))
    out = tmp_path / "split.json"
    assert (
        main(["eval", "split", str(_run(tmp_path)), "--decontam", str(report), "--json", str(out)])
        == 0
    )
    [result] = json.loads(out.read_text())
    assert result["look_alike_ids"] == ["HumanEval/13"]
    assert result["look_alike"]["pass@1"] == 1.0 and result["look_alike"]["problems"] == 1
    assert result["rest"]["pass@1"] == pytest.approx(0.125) and result["rest"]["solved"] == 1
    assert result["all"]["problems"] == 3
    assert "| rest | 2 | 1 | 12.50 | 0.00 |" in capsys.readouterr().out


def test_split_rejects_a_file_that_is_not_a_decontam_report(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["eval", "split", str(_run(tmp_path)), "--decontam", str(bad)]) != 0
    assert "train decontam-report" in capsys.readouterr().err
