"""The runner's pure parts: call planning and seeds (what makes resume exact), the run-directory
config check, and the summary built from samples and verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.data import Problem
from evalkit.runner import (
    CODEX_STOPS,
    RunConfig,
    RunDirectory,
    RunError,
    SampleRecord,
    derive_seed,
    plan_calls,
    summarize,
)


def problems(count: int) -> list[Problem]:
    return [
        Problem(f"T/{i}", f"def f{i}():\n", f"f{i}", "    return 1\n", "def check(fn): pass\n")
        for i in range(count)
    ]


def config(**overrides: object) -> RunConfig:
    base: dict[str, object] = {
        "dataset": "d",
        "dataset_sha256": "0" * 64,
        "backend": "embedded",
        "model": "m",
        "n": 10,
        "samples_per_call": 4,
        "batch_prompts": 2,
        "seed": 7,
    }
    base.update(overrides)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_calls_cover_every_sample_once_and_are_fixed_by_the_config() -> None:
    calls = plan_calls(problems(5), config())
    covered = [(t, i) for call in calls for t in call.task_ids for i in call.sample_indices]
    assert sorted(covered) == sorted((f"T/{p}", i) for p in range(5) for i in range(10))
    assert len(covered) == len(set(covered))
    assert [len(call.sample_indices) for call in calls[:3]] == [4, 4, 2]
    assert calls == plan_calls(problems(5), config())  # a resumed process plans the same calls
    assert len({call.seed for call in calls}) == len(calls)
    assert plan_calls(problems(5), config(seed=8))[0].seed != calls[0].seed


def test_seed_derivation_is_stable_across_processes() -> None:
    # Pinned: hash() randomisation or a Python upgrade must not change a run's samples.
    assert derive_seed(7, "HumanEval/0", 0) == derive_seed(7, "HumanEval/0", 0)
    assert derive_seed(7, "HumanEval/0", 0) == 2077365228
    assert 0 <= derive_seed(123, "x", 5) < 2**31


def test_codex_stops_are_the_default() -> None:
    assert config().stop == ("\nclass", "\ndef", "\n#", "\nif", "\nprint") == CODEX_STOPS


def test_run_directory_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = RunDirectory(out)
    first.prepare(config().to_json())
    # While one process holds the run, a second one is turned away.
    with pytest.raises(RunError, match="another docomplete process is writing"):
        RunDirectory(out).prepare(config().to_json())
    first.close()
    again = RunDirectory(out)
    again.prepare(config().to_json())  # same settings: resumes
    again.close()
    with pytest.raises(RunError, match=r"different settings \(n: recorded 10, now 20\)"):
        RunDirectory(out).prepare(config(n=20).to_json())
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a docomplete run directory"):
        RunDirectory(other).prepare(config().to_json())


def test_summary_from_samples_and_verdicts() -> None:
    probs = problems(2)
    samples, verdicts = [], []
    for p_idx, problem in enumerate(probs):
        for i in range(10):
            passed = p_idx == 0 and i < 3
            samples.append(
                SampleRecord(
                    task_id=problem.task_id,
                    sample_idx=i,
                    completion="x",
                    token_logprobs=[-1.0],
                    mean_logprob=-1.0 - i,  # the likeliest samples are the passing ones
                    sum_logprob=-1.0 - i,
                )
            )
            verdicts.append(
                {
                    "task_id": problem.task_id,
                    "sample_idx": i,
                    "status": "passed" if passed else ("timeout" if i == 9 else "failed"),
                    "passed": passed,
                    "examples_passed": 0,
                    "examples_total": 0,
                }
            )
    summary = summarize(probs, samples, verdicts, config=config().to_json())
    assert summary["pass@1"] == pytest.approx((0.3 + 0.0) / 2)
    assert summary["pass@10"] == pytest.approx(0.5)
    assert "pass@100" not in summary
    # No examples: mean log-prob decides. Ranking all 10 samples finds problem 0's passes...
    assert summary["filtered_pass@1_curve"]["10"] == pytest.approx(0.5)
    # ...but the editor ranks its n=4: one of the 3 passes must be among them (1 - C(7,4)/C(10,4)).
    assert summary["filter_n"] == summary["filtered_at_n"] == 4
    assert summary["filtered_pass@1"] == pytest.approx((1 - 35 / 210) / 2)
    assert list(summary["filtered_pass@1_curve"]) == ["1", "2", "4", "8", "10"]
    assert summary["filtered_pass@1_curve"]["1"] == pytest.approx(summary["pass@1"])
    assert summary["status_counts"] == {
        "passed": 3,
        "failed": 15,
        "timeout": 2,
        "memory": 0,
        "crashed": 0,
        "output_limit": 0,
        "unverified": 0,
    }
    assert summary["n"] == 10 and summary["temperature"] == 0.8
    assert [row["correct"] for row in summary["per_problem"]] == [3, 0]
    json.dumps(summary)  # everything in it is plain JSON
