"""Fixtures for the model tier: a tiny random model built once per test session (no download)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A long context lets cancellation tests start generations that would run for seconds.
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), max_position_embeddings=4096)


@pytest.fixture(scope="session")
def engine(tiny_model_path: Path):
    from model.engine import Engine

    return Engine.load(tiny_model_path)


class ServerThread:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test model server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    @property
    def scheduler(self):
        return self.app.state.scheduler_ref["scheduler"]


@pytest.fixture(scope="module")
def model_server(engine):
    from model.serve import create_app

    with ServerThread(create_app(engine, max_batch=256, max_queue=8)) as server:
        yield server
