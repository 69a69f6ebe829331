"""Fixtures for the model tier: a tiny random model built once per test session (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def engine(tiny_model_path: Path):
    from model.engine import Engine

    return Engine.load(tiny_model_path)
