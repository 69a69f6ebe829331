"""``docomplete eval paraphrase``: seeded rewrites that keep HumanEval's canonical solutions
passing in the real sandbox, renames that are consistent everywhere, and the study end to end
on a (scripted) model server that memorised the original bodies."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from evalkit import sandbox
from evalkit.data import Problem, load_dataset
from evalkit.doctest_runner import extract_examples
from evalkit.length_breakdown import docstring_of
from evalkit.paraphrase import TRANSFORMS, paraphrase_variants
from evalkit.paraphrase_study import paraphrase_payload
from server.cli import main
from tests.fixtures.scripted_backend import Reply, ScriptedBackend

HUMANEVAL = load_dataset("humaneval")


def params(prompt: str, entry: str) -> list[str]:
    for node in ast.parse(prompt).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            return [a.arg for a in node.args.args]
    raise AssertionError(entry)


def names_in_entry(problem: Problem) -> set[str]:
    """Every name the entry point's signature and body use."""
    tree = ast.parse(problem.prompt + problem.canonical_solution)
    node = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point
    )
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        a.arg for a in ast.walk(node) if isinstance(a, ast.arg)
    }


def test_rewrites_are_deterministic_seeded_and_varied() -> None:
    problems = HUMANEVAL.problems[:40]
    first = [paraphrase_variants(p, 3, seed=0) for p in problems]
    assert first == [paraphrase_variants(p, 3, seed=0) for p in problems]
    other = [paraphrase_variants(p, 3, seed=1) for p in problems]
    assert sum(a != b for a, b in zip(first, other, strict=True)) > 20
    used = Counter(t for variants in first for v in variants for t in v.transforms)
    assert set(used) == set(TRANSFORMS)  # every kind of rewrite occurs
    for problem, variants in zip(problems, first, strict=True):
        prompts = [problem.prompt] + [v.problem.prompt for v in variants]
        assert len(set(prompts)) == len(prompts), problem.task_id  # all distinct
        for variant in variants:
            assert variant.problem.test == problem.test  # the hidden test is never touched
            assert variant.problem.entry_point == problem.entry_point


def test_rewrites_keep_canonical_solutions_passing() -> None:
    problems = HUMANEVAL.problems[:12] + HUMANEVAL.problems[120:126]
    variants = [v for p in problems for v in paraphrase_variants(p, 4, seed=0)]
    verdicts = sandbox.check_many(
        [
            (v.problem.program(v.problem.canonical_solution), v.problem.test_program())
            for v in variants
        ],
        timeout_s=10,
    )
    assert [v.status for v in verdicts] == ["passed"] * len(variants)


def test_renames_are_consistent_and_examples_survive() -> None:
    for problem in HUMANEVAL.problems[:30]:
        before = params(problem.prompt, problem.entry_point)
        for variant in paraphrase_variants(problem, 4, seed=0):
            rewritten = variant.problem
            after = params(rewritten.prompt, problem.entry_point)
            assert len(after) == len(before)
            doc = docstring_of(rewritten)
            unquoted = re.sub(r"""(?<!\w)('[^'\n]*'|"[^"\n]*")(?!\w)""", "", doc)
            for old, new in zip(before, after, strict=True):
                if old == new:
                    continue
                assert "rename" in variant.transforms
                # The old name is gone from the docstring's own words and from the body.
                assert not re.search(rf"(?<![\w.']){old}(?![\w'])", unquoted), (
                    problem.task_id,
                    old,
                )
                assert old not in names_in_entry(rewritten), (problem.task_id, old)
            examples = extract_examples(doc)
            original = extract_examples(docstring_of(problem))
            if "drop_examples" in variant.transforms:
                assert 0 < len(examples) < len(original)
            else:
                assert len(examples) == len(original)
    has_close = paraphrase_variants(HUMANEVAL.problems[0], 4, seed=0)
    renamed = next(v.problem for v in has_close if "rename" in v.transforms)
    assert "def has_close_elements(values: List[float], limit: float)" in renamed.prompt
    assert "list of values" in renamed.prompt and "enumerate(values)" in renamed.canonical_solution


def test_paraphrase_study_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A "model" that memorised the original bodies: renamed parameters break it, so its
    # verdict flips exactly where a rewrite renamed something.
    problems = HUMANEVAL.problems[:3]
    replies = [
        Reply([p.canonical_solution], [-0.1], match=f"def {p.entry_point}(") for p in problems
    ]
    out = tmp_path / "study"
    args = ["eval", "paraphrase", "--limit", "3", "--paraphrases", "2", "--n", "2"]
    args += ["--samples-per-call", "2", "--out", str(out), "--no-progress"]
    with ScriptedBackend(replies) as backend:
        assert main([*args, "--backend", backend.url]) == 0
        asked = len(backend.requests)
        printed = capsys.readouterr().out
        payload = json.loads((out / "paraphrase.json").read_text())
        assert payload["problems"] == 3 and payload["variant_sets"] == 3
        assert [s["variant"] for s in payload["sets"]] == ["v0", "v1", "v2"]
        assert payload["sets"][0]["pass@1"] == 1.0
        manifest = [json.loads(x) for x in (out / "variants" / "manifest.jsonl").open()]
        renamed = {row["task_id"] for row in manifest if "rename" in row["transforms"]}
        assert renamed  # the first three HumanEval problems all have renamable parameters
        assert payload["flipped_problems"] == len(renamed)
        assert {row["task_id"] for row in payload["fragile"]} == renamed
        # The noise floor pools each problem's samples over the sets and deals them anew.
        assert 0.0 < payload["flip_rate_from_noise"] < 1.0
        assert 0.0 < payload["wording_effect_p"] <= 1.0
        assert "verdict flips" in printed and "most fragile problems" in printed
        # Rerunning resumes: nothing is generated twice.
        assert main([*args, "--backend", backend.url]) == 0
        assert len(backend.requests) == asked
        capsys.readouterr()
        assert main([*args, "--backend", backend.url, "--seed", "9"]) == 2
        assert "other settings" in capsys.readouterr().err


def test_paraphrase_works_on_any_humaneval_format_jsonl(tmp_path: Path) -> None:
    row = {
        "task_id": "Mine/0",
        "prompt": 'def total(numbers):\n    """Return the sum of the numbers.\n\n'
        "    For example:\n    >>> total([1, 2])\n    3\n    >>> total([])\n    0\n"
        '    """\n',
        "entry_point": "total",
        "canonical_solution": "    return sum(numbers)\n",
        "test": "def check(candidate):\n    assert candidate([4, 5]) == 9\n",
    }
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(row) + "\n")
    problem = load_dataset(path).problems[0]
    variants = paraphrase_variants(problem, 6, seed=0)
    assert {t for v in variants for t in v.transforms} >= {"rename", "synonyms", "move_examples"}
    verdicts = sandbox.check_many(
        [
            (v.problem.program(v.problem.canonical_solution), v.problem.test_program())
            for v in variants
        ]
    )
    assert all(v.status == "passed" for v in verdicts)


def test_flips_are_measured_against_sampling_noise() -> None:
    def table(counts: list[int], n: int = 10) -> dict[str, dict]:
        return {
            f"T/{i}": {"n": n, "correct": c, "filtered_pick_pass": c / n}
            for i, c in enumerate(counts)
        }

    manifest: list[dict] = []
    steady = paraphrase_payload([table([5, 2, 9, 0] * 5)] * 3, manifest, solved_if="majority")
    assert steady["flipped_problems"] == 0 and steady["spread"]["range"] == 0.0
    assert steady["wording_effect_p"] > 0.5
    # Every rewritten set loses 8 of 10 samples on half the problems: far beyond noise.
    original = [9, 1] * 10
    reworded = [1, 1] * 10
    shaken = paraphrase_payload(
        [table(original), table(reworded), table(reworded)], manifest, solved_if="majority"
    )
    assert shaken["flipped_problems"] == 10 and shaken["flip_rate"] == 0.5
    assert shaken["flip_rate_from_noise"] < shaken["flip_rate"]
    assert shaken["wording_effect_p"] < 0.01
    assert shaken["sets"][1]["vs_original"]["verdict"] == "A is better"
    assert [row["range"] for row in shaken["fragile"]] == [0.8] * 10
