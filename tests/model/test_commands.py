"""`docomplete complete`, `docomplete bench sampling` and `bench decode` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.sampling_bench import humaneval_prompts
from server.cli import main


def test_complete_prints_ranked_candidates(tiny_model_path: Path, capsys) -> None:
    code = main(
        [
            "complete",
            "--model",
            str(tiny_model_path),
            "--n",
            "3",
            "--max-tokens",
            "6",
            "--seed",
            "1",
            'def f(x):\\n    """Double x."""\\n',
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    headers = [line for line in out.splitlines() if line.startswith("--- candidate")]
    assert len(headers) == 3
    means = [float(h.split("mean log-prob ")[1].split(",")[0]) for h in headers]
    assert means == sorted(means, reverse=True)  # best first
    assert 'def f(x):\n    """Double x."""\n' in out  # the escaped newlines became real ones


def test_complete_with_bad_settings_is_one_line(tiny_model_path: Path, capsys) -> None:
    assert main(["complete", "--model", str(tiny_model_path), "--top-p", "0", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "top_p" in err


def test_bench_sampling_writes_figures(tiny_model_path: Path, tmp_path: Path, capsys) -> None:
    figures_path = tmp_path / "sampling.json"
    code = main(
        [
            "bench",
            "sampling",
            "--model",
            str(tiny_model_path),
            "--prompts",
            "2",
            "--n",
            "2",
            "--max-tokens",
            "4",
            "--json",
            str(figures_path),
        ]
    )
    assert code == 0
    figures = json.loads(figures_path.read_text())
    assert figures["ours_tokens_per_s"] > 0 and figures["baseline_tokens_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["ours_tokens_per_s"] / figures["baseline_tokens_per_s"], rel=0.05
    )
    assert "HF generate" in capsys.readouterr().out


def test_bench_decode_reports_ms_per_step_for_each_n(
    tiny_model_path: Path, tmp_path: Path, capsys
) -> None:
    figures_path = tmp_path / "decode.json"
    args = ["bench", "decode", "--model", str(tiny_model_path), "--n", "1,3"]
    code = main([*args, "--steps", "5", "--repeats", "2", "--json", str(figures_path)])
    assert code == 0
    figures = json.loads(figures_path.read_text())
    for n in (1, 3):
        assert figures[f"ms_per_step_n{n}"] > 0 and figures[f"cpu_ms_per_step_n{n}"] > 0
        assert 0 < figures[f"forward_ms_n{n}"] < figures[f"ms_per_step_n{n}"]
    assert figures["steps"] == 5 and figures["threads"] == "auto"
    assert "ms/step" in capsys.readouterr().out


def test_bench_decode_with_bad_options_is_one_line(tiny_model_path: Path, capsys) -> None:
    assert main(["bench", "decode", "--model", str(tiny_model_path), "--n", "four"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--n" in err


def test_humaneval_prompts_come_from_the_installed_wheel() -> None:
    prompts = humaneval_prompts(20)
    assert len(prompts) == 20
    assert prompts[0].startswith("from typing import List")
    assert "def has_close_elements" in prompts[0]
