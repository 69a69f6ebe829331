"""`docomplete bench peer` refuses what it cannot run with one line naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path / "model"


def test_without_the_llama_cpp_build_it_says_to_run_make_interop(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DOCOMPLETE_INTEROP_CACHE", str(tmp_path / "empty-cache"))
    assert main(["bench", "peer", "--model", str(model_dir)]) == 2
    assert "run `make interop`" in capsys.readouterr().err


def test_n_above_the_slots_is_refused(model_dir: Path, capsys) -> None:
    assert main(["bench", "peer", "--model", str(model_dir), "--n", "30"]) == 2
    assert "raise --parallel" in capsys.readouterr().err
