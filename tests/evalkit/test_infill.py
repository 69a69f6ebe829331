"""``docomplete eval infill``: HumanEval's canonical lines masked one at a time (1,033 tasks),
judged by the problems' own tests in the real sandbox, asked for with fill-in-the-middle
prompts over real HTTP (a scripted model server) or from an embedded model with FIM tokens,
and resumed after the run is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.data import load_dataset
from evalkit.infill import Prompting, build_tasks, check_lines, first_line
from model.fim import FIM_TEMPLATES
from server.cli import main
from tests.evalkit.eval_fixtures import cli, subprocess_env
from tests.fixtures.scripted_backend import Reply, ScriptedBackend

QWEN = FIM_TEMPLATES["qwen"]
# HumanEval/0 (7 non-blank lines, the last is `return False`) and HumanEval/2 (one line).
TWO_PROBLEMS = ["--problems", "0,2"]


@pytest.fixture(scope="module")
def humaneval() -> Any:
    return load_dataset("humaneval")


def test_every_non_blank_line_of_every_solution_is_one_task(humaneval: Any) -> None:
    tasks = build_tasks(humaneval.problems)
    assert len(tasks) == 1033  # the paper's count
    assert len({task.task_id for task in tasks}) == 1033
    assert len({task.problem.task_id for task in tasks}) == 164
    for task in tasks:
        problem = task.problem
        assert (
            task.prefix + task.middle + task.suffix == problem.prompt + problem.canonical_solution
        )
        assert task.middle.strip() and "\n" not in task.middle
        assert task.prefix.endswith("\n") and task.suffix.startswith("\n")
    by_id = {task.task_id: task for task in tasks}
    zero = [task for task in tasks if task.problem.task_id == "HumanEval/0"]
    assert [task.line_number for task in zero] == [1, 2, 3, 4, 5, 6, 8]  # line 7 is blank
    assert [task.middle for task in zero[:3]] == [
        "    for idx, elem in enumerate(numbers):",
        "        for idx2, elem2 in enumerate(numbers):",
        "            if idx != idx2:",
    ]
    assert by_id["HumanEval/0/L6"].middle == " " * 20 + "return True"  # indentation kept
    assert by_id["HumanEval/0/L8"].suffix == "\n"
    # HumanEval/81 opens with an empty and a whitespace-only line: neither is a task.
    assert min(t.line_number for t in tasks if t.problem.task_id == "HumanEval/81") == 3


def test_canonical_lines_pass_and_wrong_lines_fail_in_the_sandbox(humaneval: Any) -> None:
    by_id = {task.task_id: task for task in build_tasks(humaneval.problems)}
    right = [by_id[t] for t in ("HumanEval/0/L4", "HumanEval/0/L8", "HumanEval/2/L1")]
    wrong = [
        (by_id["HumanEval/0/L8"], "    return True"),  # wrong value
        (by_id["HumanEval/0/L4"], "distance = abs(elem - elem2)"),  # indentation lost
        (by_id["HumanEval/2/L1"], "    return number // 1.0"),
        (by_id["HumanEval/2/L1"], ""),  # nothing written
    ]
    verdicts = check_lines(
        [(task, task.middle) for task in right] + wrong, timeout_s=10, memory_mb=512
    )
    assert [v.status for v in verdicts[: len(right)]] == ["passed"] * len(right)
    assert all(v.status == "failed" for v in verdicts[len(right) :])


def test_prompts_and_the_line_kept() -> None:
    task = build_tasks(load_dataset("humaneval").problems[2:3])[0]
    fim = Prompting(QWEN)
    prompt = fim.prompt(task)
    assert prompt == f"<|fim_prefix|>{task.prefix}<|fim_suffix|>{task.suffix}<|fim_middle|>"
    assert fim.stop[0] == "\n" and "<|endoftext|>" in fim.stop and fim.template_id == "qwen"
    left_to_right = Prompting(None)
    assert left_to_right.prompt(task) == task.prefix and left_to_right.stop == ("\n",)
    assert left_to_right.mode == "prefix-only" and left_to_right.template_id is None
    assert first_line("    x = 1\n    y = 2\n") == "    x = 1"
    assert first_line("\n    x = 1") == ""  # an answer that starts a new line leaves it empty


def fim_replies() -> list[Reply]:
    """A "model" that knows two of the eight lines: HumanEval/2's only line, and HumanEval/0's
    last one, recognised by the code just above the hole and the empty suffix after it."""
    return [
        Reply(["    return number % 1.0\n    more"], [-0.1], match="def truncate_number"),
        Reply(["    return False"], [-0.2], match="return True\n\n<|fim_suffix|>\n<|fim_middle|>"),
        Reply(["    pass"], [-1.5]),
    ]


def infill_args(url: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "infill", "--backend", url, *TWO_PROBLEMS, "--out", str(out), *extra]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fim_run_against_a_model_server_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fim"
    # A server whose model id names a Qwen coder: `auto` finds the template via /v1/models.
    with ScriptedBackend(fim_replies(), model_id="Qwen2.5-Coder-1.5B") as backend:
        args = infill_args(backend.url, out, "--look-alikes", "2", "--no-progress")
        assert main(args) == 0
        requests = backend.requests
    printed = capsys.readouterr().out
    prompts = [p for body in requests for p in body["prompt"]]
    assert len(prompts) == 8
    assert all(p.startswith("<|fim_prefix|>") and p.endswith("<|fim_middle|>") for p in prompts)
    assert all(body["stop"][0] == "\n" and body["temperature"] == 0.0 for body in requests)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompting"] == "fim" and summary["fim_template"] == "qwen"
    assert summary["tasks"] == 8 and summary["n"] == 1
    assert summary["pass@1"] == pytest.approx(2 / 8)
    assert summary["exact_match"] == pytest.approx(2 / 8)
    assert summary["problem_mean_pass@1"] == pytest.approx((1 / 7 + 1) / 2)
    # Problems are resampled, not lines: with two problems the interval spans 1/7 to all.
    assert summary["pass@1_ci"] == pytest.approx([1 / 7, 1.0])
    assert summary["coverage"]["denominator"] == "over 2 of 164 problems"
    assert summary["splits"]["look_alike"] == {
        "problems": 1,
        "tasks": 1,
        "pass@1": 1.0,
        "exact_match": 1.0,
    }
    assert summary["splits"]["rest"]["pass@1"] == pytest.approx(1 / 7)
    samples = {s["task_id"]: s for s in read_jsonl(out / "samples.jsonl")}
    assert samples["HumanEval/2/L1"]["line"] == "    return number % 1.0"
    per_task = {row["task_id"]: row for row in read_jsonl(out / "per_task.jsonl")}
    assert per_task["HumanEval/0/L8"]["pass@1"] == 1.0
    assert per_task["HumanEval/0/L1"]["pass@1"] == 0.0
    per_problem = {row["task_id"]: row for row in read_jsonl(out / "per_problem.jsonl")}
    assert per_problem["HumanEval/2"] == {
        "task_id": "HumanEval/2",
        "problems": 1,
        "tasks": 1,
        "pass@1": 1.0,
        "exact_match": 1.0,
    }
    assert "fill-in-the-middle (qwen template)" in printed
    assert "pass@1 25.0% (95% CI over problems 14.3–100.0%)" in printed
    assert "over 2 of 164 problems (--problems: 2)" in printed
    assert "look-alike problems: 1 problems, 1 tasks, pass@1 100.0%" in printed
    # The run-based reports refuse it by name instead of misreading its files.
    for command in (["report", str(out)], ["compare", str(out), str(out)]):
        assert main(["eval", *command]) == 2
        assert "is an `eval infill` run" in capsys.readouterr().err


def test_a_model_without_fim_tokens_is_refused_unless_prefix_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedBackend(fim_replies(), model_id="plain-model") as backend:
        refused = main(infill_args(backend.url, tmp_path / "refused", "--no-progress"))
        err = capsys.readouterr().err
        assert refused == 2
        assert "no fill-in-the-middle tokens" in err and "--prefix-only" in err
        assert backend.requests == []
        assert main(infill_args(backend.url, tmp_path / "none", "--fim-template", "none")) == 2
        assert "pass --prefix-only" in capsys.readouterr().err
        out = tmp_path / "prefix-only"
        assert main(infill_args(backend.url, out, "--prefix-only", "--no-progress")) == 0
        prompts = [p for body in backend.requests for p in body["prompt"]]
    printed = capsys.readouterr().out
    assert prompts and not any("<|fim" in p for p in prompts)
    tasks = {t.task_id: t for t in build_tasks(load_dataset("humaneval").problems[:3])}
    assert set(prompts) == {tasks[t].prefix for t in tasks if not t.startswith("HumanEval/1/")}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompting"] == "prefix-only" and summary["fim_template"] is None
    # Without the suffix, the last line of HumanEval/0 is not recognised: only HumanEval/2.
    assert summary["pass@1"] == pytest.approx(1 / 8)
    assert "PREFIX-ONLY prompting" in printed


def test_the_bundled_model_fills_in_with_its_own_fim_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The v2 checkpoint carries <|fim_prefix|>/<|fim_suffix|>/<|fim_middle|>: `auto` finds the
    qwen layout and the embedded model answers every hole of HumanEval/2."""
    out = tmp_path / "bundled"
    assert main(["eval", "infill", "--problems", "2", "--no-progress", "--out", str(out)]) == 0
    assert "fill-in-the-middle (qwen template)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == len(read_jsonl(out / "results.jsonl")) > 0


def comparable(out: Path) -> tuple[Any, ...]:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timing")
    noise = ("duration_s", "error_tail")
    results = [
        {k: v for k, v in r.items() if k not in noise} for r in read_jsonl(out / "results.jsonl")
    ]
    key = lambda r: (r["task_id"], r["sample_idx"])  # noqa: E731
    return summary, sorted(read_jsonl(out / "samples.jsonl"), key=key), sorted(results, key=key)


def test_a_killed_run_resumes_where_it_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sampling = ["--n", "3", "--temperature", "0.8", "--batch-prompts", "1", "--no-progress"]
    with ScriptedBackend(fim_replies(), model_id="Qwen2.5-Coder-1.5B") as backend:
        reference = tmp_path / "reference"
        assert main(infill_args(backend.url, reference, *sampling)) == 0
        out = tmp_path / "killed"
        backend.delay_s = 0.4  # one call at a time, slowly: the kill lands mid-run
        args = infill_args(backend.url, out, *sampling, "--concurrency", "1")
        proc = subprocess.Popen(
            cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env()
        )
        deadline = time.monotonic() + 120
        samples = out / "samples.jsonl"
        while (not samples.exists() or samples.read_text().count("\n") < 9) and proc.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
        assert not (out / "summary.json").exists()
        calls_done = samples.read_text().count("\n") // 3
        backend.delay_s = 0.0
        before = len(backend.requests)
        assert main(args) == 0
        # Only the calls whose samples were not on disk were made again.
        assert len(backend.requests) - before == 8 - calls_done
        assert comparable(out) == comparable(reference)
        # Other settings in the same directory are refused, naming what differs.
        capsys.readouterr()
        assert main([*args, "--prefix-only"]) == 2
        err = capsys.readouterr().err
        assert "different settings" in err and "prompting" in err


def test_an_embedded_model_with_fim_tokens_gets_fim_prompts(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tests.fixtures.tiny_model import build_tiny_model

    model = build_tiny_model(
        tmp_path / "tiny-fim", extra_special_tokens=QWEN.markers, max_position_embeddings=2048
    )
    out = tmp_path / "embedded"
    args = ["eval", "infill", "--backend", "embedded", "--model", str(model), "--problems", "2"]
    assert main([*args, "--max-tokens", "8", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["prompting"] == "fim" and config["fim_template"] == "qwen"
    (sample,) = read_jsonl(out / "samples.jsonl")
    assert "\n" not in sample["line"] and sample["finish_reason"] in ("stop", "length")
    (result,) = read_jsonl(out / "results.jsonl")
    assert result["status"] in ("passed", "failed")  # a random model: mechanics only
