"""The held-out practical task set: well-formed, distinct from HumanEval, and every canonical
solution passes its hidden tests and docstring examples in the real sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

from evalkit.data import load_dataset
from evalkit.doctest_runner import extract_examples, run_doctests
from evalkit.sandbox import check_many

HELDOUT = Path(__file__).resolve().parents[2] / "evalkit" / "datasets" / "heldout_practical.jsonl"


def test_heldout_set_loads_and_keeps_clear_of_humaneval() -> None:
    dataset = load_dataset(HELDOUT)
    names = [p.entry_point for p in dataset.problems]
    assert 38 <= len(names) <= 45 and len(set(names)) == len(names)
    humaneval = {p.entry_point for p in load_dataset("humaneval").problems}
    assert not set(names) & humaneval
    readme = (HELDOUT.parent / "README.md").read_text()
    assert "NEVER TRAIN ON THIS FILE" in readme


def test_canonical_solutions_pass_and_wrong_ones_fail_in_the_sandbox() -> None:
    problems = load_dataset(HELDOUT).problems
    canonical = check_many([(p.program(p.canonical_solution), p.test_program()) for p in problems])
    assert [r.status for r in canonical] == ["passed"] * len(problems)
    wrong = check_many([(p.program("    return None\n"), p.test_program()) for p in problems])
    assert all(r.status == "failed" for r in wrong)


def test_docstring_examples_match_the_canonical_solutions() -> None:
    for problem in load_dataset(HELDOUT).problems:
        source = problem.prompt + problem.canonical_solution
        func = ast.parse(source).body[0]
        examples = extract_examples(ast.get_docstring(func) or "")
        assert examples, problem.task_id
        [verdict] = run_doctests("", [source], examples)
        assert verdict.status == "passed", (problem.task_id, verdict.details)
