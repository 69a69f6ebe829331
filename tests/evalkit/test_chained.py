"""``docomplete eval chained``: the synthetic benchmark is deterministic, its hidden tests agree
with the reference (canonical solutions pass in the real sandbox), nothing of the tests leaks
into the prompt, and the command runs it on a (scripted) model server end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit import sandbox
from evalkit.chained import BLOCKS, BLOCKS_BY_NAME, apply_chain, generate_problems
from evalkit.data import Problem
from server.cli import main
from tests.fixtures.scripted_backend import Reply, ScriptedBackend


def as_problem(row: dict) -> Problem:
    return Problem(
        row["task_id"], row["prompt"], row["entry_point"], row["canonical_solution"], row["test"]
    )


def test_thirteen_blocks_do_what_their_docstrings_say() -> None:
    assert len(BLOCKS) == 13
    cases = {
        "lower": ("Hello World", "hello world"),
        "reverse_words": ("one two three", "three two one"),
        "drop_third": ("abcdefg", "abdeg"),
        "remove_vowels": ("Education", "dctn"),
        "dashes": ("a b c", "a-b-c"),
        "double": ("ab", "aabb"),
        "sort_words": ("pear apple fig", "apple fig pear"),
        "capitalize_words": ("big red dog", "Big Red Dog"),
        "letters_only": ("a1 b2!", "ab"),
        "rotate": ("hello", "elloh"),
        "swap_case": ("aBc", "AbC"),
    }
    for name, (given, expected) in cases.items():
        assert apply_chain([BLOCKS_BY_NAME[name]], given) == expected, name
    chain = [BLOCKS_BY_NAME["reverse"], BLOCKS_BY_NAME["upper"]]
    assert apply_chain(chain, "abc") == "CBA"


def test_generation_is_deterministic_and_seeded() -> None:
    rows = generate_problems(4, 3, seed=7)
    assert rows == generate_problems(4, 3, seed=7)
    assert rows != generate_problems(4, 3, seed=8)
    assert [row["task_id"] for row in rows[:4]] == [
        "Chained/1/0",
        "Chained/1/1",
        "Chained/1/2",
        "Chained/2/0",
    ]
    for row in rows:
        k = int(row["task_id"].split("/")[1])
        assert len(row["components"]) == len(set(row["components"])) == k
    # More problems per length never change the ones already there.
    assert generate_problems(4, 5, seed=7)[:3] == rows[:3]
    with pytest.raises(ValueError, match="between 1 and 13"):
        generate_problems(14, 1, seed=0)


def test_hidden_tests_pass_the_reference_and_stay_out_of_the_prompt() -> None:
    rows = generate_problems(13, 2, seed=0, examples=1)
    problems = [as_problem(row) for row in rows]
    canonical = sandbox.check_many(
        [(p.program(p.canonical_solution), p.test_program()) for p in problems], timeout_s=10
    )
    assert [v.status for v in canonical] == ["passed"] * len(problems)
    identity = sandbox.check_many(
        [(p.program("    return s\n"), p.test_program()) for p in problems], timeout_s=10
    )
    assert sum(v.status == "passed" for v in identity) == 0
    for row in rows:
        for block in row["components"]:
            assert BLOCKS_BY_NAME[block].expression not in row["prompt"]
            assert BLOCKS_BY_NAME[block].phrase in row["prompt"]
        for line in row["test"].splitlines()[1:]:
            given, expected = line.split("candidate(", 1)[1].split(") == ")
            assert given not in row["prompt"]  # the example shown is never a hidden test
            assert expected not in row["prompt"]
        assert row["prompt"].count(">>> transform(") == 1


def test_chained_command_runs_the_benchmark_and_plots_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chained"
    base = ["eval", "chained", "--max-components", "3", "--problems-per-k", "2", "--out", str(out)]
    assert main([*base, "--dataset-only"]) == 0
    lines = (out / "chained.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["task_id"] == "Chained/1/0"
    # A "model" that only knows lower-casing: it solves the one-step lower-case problems at most.
    replies = [Reply(["    return s.lower()\n", "    return s\n"], [-0.2, -0.4])]
    with ScriptedBackend(replies) as backend:
        args = [*base, "--backend", backend.url, "--n", "4", "--samples-per-call", "4"]
        assert main([*args, "--no-progress"]) == 0
        printed = capsys.readouterr().out
        payload = json.loads((out / "chained.json").read_text())
        assert [row["components"] for row in payload["rows"]] == [1, 2, 3]
        assert [row["problems"] for row in payload["rows"]] == [2, 2, 2]
        assert all(0.0 <= row["pass@1"] <= 0.5 for row in payload["rows"])
        assert "| components | problems | pass@1 |" in printed
        assert (out / "chained.png").read_bytes()[:4] == b"\x89PNG"
        # Same folder, other settings: refused before anything is overwritten.
        assert main([*args, "--seed", "3", "--no-progress"]) == 2
        assert "other settings" in capsys.readouterr().err
