"""Shared pieces for the evalkit run tests: a tiny model and a dataset it can sometimes solve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def write_comment_dataset(path: Path, problems: int = 6) -> Path:
    """Problems whose prompt is already a working function ending in an open ``#`` comment.

    A completion that stays on the comment line passes the test and the docstring example; one
    that starts a new line (gibberish code from the tiny model) breaks the function. So even a
    random model gets a mix of passes and failures, which makes the numbers worth comparing.
    """
    rows = []
    for i in range(problems):
        name = f"value_{i}"
        prompt = (
            f"def {name}():\n"
            f'    """Return {i}.\n\n    >>> {name}()\n    {i}\n    """\n'
            f"    return {i}  # "
        )
        rows.append(
            {
                "task_id": f"Comment/{i}",
                "prompt": prompt,
                "entry_point": name,
                "canonical_solution": "the answer\n",
                "test": f"def check(fn):\n    assert fn() == {i}\n",
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def build_tiny(path: Path) -> Path:
    """A tiny random model (see model/tiny_model.py); skips when torch is not installed."""
    pytest.importorskip("torch")
    from model.tiny_model import build_tiny_model

    if not (path / "config.json").is_file():
        build_tiny_model(path)
    return path


def cli(*args: str) -> list[str]:
    """The ``docomplete`` command line as a subprocess argv (same interpreter as the tests)."""
    return [sys.executable, "-c", "from server.cli import main; raise SystemExit(main())", *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=Path(__file__).resolve().parents[2],
    )
