"""HumanEval loading (checksum pinned), custom JSONL datasets and crash-cut JSONL repair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.data import (
    HUMANEVAL_SHA256,
    DatasetError,
    file_sha256,
    humaneval_path,
    load_dataset,
    read_appended_records,
)


def test_humaneval_from_the_wheel_is_verified_and_complete() -> None:
    assert file_sha256(humaneval_path()) == HUMANEVAL_SHA256
    dataset = load_dataset("humaneval")
    assert len(dataset.problems) == 164
    first = dataset.problems[0]
    assert first.task_id == "HumanEval/0"
    assert first.entry_point == "has_close_elements"
    assert "check(has_close_elements)" in first.test_program()


def problem_line(task_id: str = "T/0") -> str:
    return json.dumps(
        {
            "task_id": task_id,
            "prompt": "def f():\n",
            "entry_point": "f",
            "canonical_solution": "    return 1\n",
            "test": "def check(fn):\n    assert fn() == 1\n",
        }
    )


def test_custom_jsonl_dataset(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(problem_line("T/0") + "\n\n" + problem_line("T/1") + "\n")
    dataset = load_dataset(path)
    assert [p.task_id for p in dataset.problems] == ["T/0", "T/1"]
    assert dataset.sha256 == file_sha256(path)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(problem_line("T/0") + "\n" + '{"task_id": "T/1", "prompt": \n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        load_dataset(path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "short.jsonl"
    record = json.loads(problem_line())
    del record["entry_point"]
    path.write_text(problem_line("T/0") + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError, match=r"short\.jsonl:2: .*entry_point"):
        load_dataset(path)


def test_missing_file_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope.jsonl")
    path = tmp_path / "dup.jsonl"
    path.write_text(problem_line("T/0") + "\n" + problem_line("T/0") + "\n")
    with pytest.raises(DatasetError, match=r"dup\.jsonl:2: duplicate task_id"):
        load_dataset(path)


def test_crash_cut_tail_is_dropped_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut sho')
    assert read_appended_records(path) == [{"a": 1}, {"a": 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'  # appending can continue cleanly
    # A complete object without its newline was also cut mid-write: redo it.
    path.write_text('{"a": 1}\n{"a": 2}')
    assert read_appended_records(path) == [{"a": 1}]


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(DatasetError, match=r"results\.jsonl:2: damaged line"):
        read_appended_records(path)


def test_eval_run_reports_a_malformed_dataset_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    path = tmp_path / "mine.jsonl"
    path.write_text(problem_line("T/0") + "\n" + "{not json}\n")
    code = main(["eval", "run", "--dataset", str(path), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "mine.jsonl:2: not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started, nothing to clean up
