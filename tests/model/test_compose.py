"""The compositional task generator: deterministic per seed, well-formed Python whose own
doctests pass in the real sandbox, chain rules, reserved names, and the ``train compose`` CLI."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from model.train.compose import OPS, allowed, iter_tasks
from model.train.compose_build import generate, space_size, verify_tasks
from model.train.compose_ops import NUMBER_OPS

NO_NAMES: set[str] = set()


def _op(key: str):
    return next(op for op in OPS if op.key == key)


def test_same_seed_gives_the_same_tasks_and_another_seed_different_ones() -> None:
    first, _ = generate(40, seed=3, verify=False, reserved=NO_NAMES)
    again, _ = generate(40, seed=3, verify=False, reserved=NO_NAMES)
    other, _ = generate(40, seed=4, verify=False, reserved=NO_NAMES)
    assert first == again
    assert [t["prompt"] for t in first] != [t["prompt"] for t in other]


def test_tasks_are_documented_functions_with_examples_and_natural_bodies() -> None:
    tasks, report = generate(150, seed=1, verify=False, reserved=NO_NAMES)
    assert report["count"] == 150 and report["body_mismatches"] == 0
    lengths = {len(t["ops"].split(">")) for t in tasks}
    assert lengths == {1, 2, 3, 4}
    for task in tasks:
        source = task["prompt"] + task["completion"]
        func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
        docstring = ast.get_docstring(func) or ""
        assert 2 <= docstring.count(">>> ") <= 3
        assert func.name == task["source"].removeprefix("compose:")
        assert task["completion"].startswith("    ") and "return " in task["completion"]
        # Idiomatic code, not calls to helpers the prompt never defines.
        defined = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | set(dir(__builtins__))
        called = {
            c.func.id
            for c in ast.walk(func)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
        }
        assert called <= defined | {"Counter"}
    assert len({t["prompt"].split("(")[0] for t in tasks}) > 100  # varied names


def test_doctests_of_generated_tasks_pass_in_the_sandbox_and_a_broken_one_fails() -> None:
    tasks, report = generate(60, seed=2, verify=True, reserved=NO_NAMES)
    assert report["count"] == 60 and report["failed_verification"] == 0
    broken = dict(tasks[0], completion="    return None\n")
    assert verify_tasks([tasks[1], broken, tasks[2]]) == [True, False, True]


def test_chain_rules_reject_pointless_steps() -> None:
    sort_up, total, square, take_first = (
        _op("sort_up"),
        _op("total"),
        _op("square"),
        _op("take_first"),
    )
    assert not allowed([sort_up], total)  # sorting before summing changes nothing
    assert not allowed([sort_up, square], total)  # nor with an element-wise step between
    assert allowed([sort_up, take_first], total)  # the sum of the smallest few does
    assert not allowed([square], square)
    assert not allowed([_op("lower")], _op("upper"))


def test_reserved_names_are_never_used() -> None:
    tasks, _ = generate(30, seed=5, verify=False, reserved=NO_NAMES)
    names = {t["source"].removeprefix("compose:") for t in tasks}
    again, _ = generate(30, seed=5, verify=False, reserved=names)
    assert not {t["source"].removeprefix("compose:") for t in again} & names


def test_the_space_holds_millions_of_tasks() -> None:
    size = space_size()
    assert size["operations"] == len(OPS) >= 40
    assert size["chains"] > 100_000 and size["semantic_tasks"] > 10_000_000
    assert len(NUMBER_OPS) >= 20


def test_iter_tasks_counts_the_chains_it_gave_up_on() -> None:
    stats: dict[str, int] = {}
    tasks = iter_tasks(0, NO_NAMES, stats)
    for _ in range(50):
        next(tasks)
    assert set(stats) <= {"no_informative_examples", "body_mismatch"}
    assert stats.get("body_mismatch", 0) == 0


def test_cli_writes_finetune_records(tmp_path: Path, capsys) -> None:
    from model.train.finetune import read_examples
    from server.cli import main

    out = tmp_path / "compose.jsonl"
    code = main(
        ["train", "compose", "--n", "25", "--seed", "7", "--out", str(out), "--no-progress"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["count"] == 25 and report["verified_in_sandbox"] is True
    records = read_examples([out])
    assert len(records) == 25
    assert all(r["source"].startswith("compose:") for r in records)
    assert main(["train", "compose", "--n", "0", "--out", str(out)]) == 2
