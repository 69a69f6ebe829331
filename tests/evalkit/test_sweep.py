"""``docomplete eval sweep`` against a real (scripted) model server and the real sandbox: one run
per temperature, the table, plot and summary, and a cut-short sweep that picks up where it
stopped without asking the model again for what is on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main
from tests.evalkit.eval_fixtures import write_comment_dataset
from tests.fixtures.scripted_backend import Reply, ScriptedBackend

# Staying on the comment line passes; starting a new line of junk breaks the function.
REPLIES = [Reply(["ok\n", "\n    x = (\n", "fine\n"], [-0.1, -0.6, -0.3])]


def sweep_args(url: str, dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "sweep",
        "--backend",
        url,
        "--dataset",
        str(dataset),
        "--n",
        "12",
        "--samples-per-call",
        "6",
        "--temperatures",
        "0.8,0.2",
        "--seed",
        "5",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_sweep_runs_each_temperature_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_comment_dataset(tmp_path / "comment.jsonl", problems=4)
    out = tmp_path / "sweep"
    with ScriptedBackend(REPLIES) as backend:
        assert main(sweep_args(backend.url, dataset, out)) == 0
        first_requests = backend.requests
    printed = capsys.readouterr().out
    # One ordinary run directory per temperature, sharing the sweep's seed.
    for temperature in (0.2, 0.8):
        config = json.loads((out / f"T{temperature:g}" / "config.json").read_text())
        assert config["temperature"] == temperature and config["seed"] == 5
    assert sorted(r["temperature"] for r in first_requests) == [0.2] * 2 + [0.8] * 2
    payload = json.loads((out / "sweep.json").read_text())
    assert [row["temperature"] for row in payload["rows"]] == [0.2, 0.8]
    row = payload["rows"][0]
    assert row["pass@1"] == pytest.approx(8 / 12)  # 2 of every 3 scripted texts pass
    assert row["pass@10"] == 1.0 and "pass@100" not in row
    assert set(payload["best"]) == {"pass@1", "pass@10", "filtered_pass@1"}
    assert payload["best"]["pass@1"]["temperature"] == 0.2  # a tie goes to the lower T
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 0.2 | 66.67% | 100.00% |" in printed
    assert "best T for pass@1: 0.2" in printed
    assert (out / "sweep.md").read_text().startswith("# Temperature sweep")

    # Cut the T=0.8 run short, as a crash would (half its samples, no verdicts, no summary).
    run = out / "T0.8"
    samples = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(samples[: len(samples) // 2]))
    (run / "results.jsonl").write_text("")
    (run / "summary.json").unlink()
    with ScriptedBackend(REPLIES) as backend:
        assert main(sweep_args(backend.url, dataset, out)) == 0
        # Only the missing chunk of T=0.8 is generated again; T=0.2 is left alone.
        assert [r["temperature"] for r in backend.requests] == [0.8]
    assert json.loads((out / "sweep.json").read_text())["rows"] == payload["rows"]


def test_sweep_refuses_other_seeds_and_foreign_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_comment_dataset(tmp_path / "comment.jsonl", problems=2)
    out = tmp_path / "sweep"
    with ScriptedBackend(REPLIES) as backend:
        assert main(sweep_args(backend.url, dataset, out, "--limit", "1")) == 0
        capsys.readouterr()
        assert main(sweep_args(backend.url, dataset, out, "--seed", "6")) == 2
        assert "rerun with --seed 5" in capsys.readouterr().err
        foreign = tmp_path / "notes"
        foreign.mkdir()
        (foreign / "mine.txt").write_text("x")
        assert main(sweep_args(backend.url, dataset, foreign)) == 2
        assert "not a sweep folder" in capsys.readouterr().err
        assert main(sweep_args(backend.url, dataset, out, "--temperatures", "hot")) == 2
        assert "comma-separated numbers" in capsys.readouterr().err
