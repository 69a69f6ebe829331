"""Interop tests against the real llama.cpp servers: collected only by ``make interop``.

They need the llama.cpp build that tests/interop/build.sh caches (minutes to compile once), so
``make test`` leaves this directory alone unless ``DOCOMPLETE_INTEROP=1`` is set. The model is
``$DOCOMPLETE_INTEROP_MODEL`` or the bundled one; it is exported to GGUF once per session and
both servers are started once per session on 127.0.0.1. Server logs and the recorded response
shapes go to ``runs/interop/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("DOCOMPLETE_INTEROP") != "1":
    collect_ignore_glob = ["test_*.py"]

RUNS = Path(__file__).resolve().parents[2] / "runs" / "interop"

#: llama-server's slots in these tests (below the n the LSP and eval ask for: the client must
#: adapt to the server's limit).
PARALLEL = 2
#: One thread per server: on a shared 2-core machine ggml's spinning thread pool slows to seconds
#: per token once its two threads do not both get a core.
THREADS = 1


@pytest.fixture(scope="session")
def runs_dir() -> Path:
    RUNS.mkdir(parents=True, exist_ok=True)
    return RUNS


@pytest.fixture(scope="session")
def llama_build():  # -> LlamaCppBuild
    from model.cli_support import CommandError
    from model.interop import find_build

    try:
        return find_build()
    except CommandError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from model.paths import default_model_path

    env = os.environ.get("DOCOMPLETE_INTEROP_MODEL")
    path = Path(env) if env else default_model_path()
    if not (path / "config.json").is_file():
        pytest.fail(f"no model at {path}: set DOCOMPLETE_INTEROP_MODEL to a model directory")
    return path


@pytest.fixture(scope="session")
def gguf_file(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.cli_support import CommandError
    from model.train.gguf_export import export_gguf

    out = tmp_path_factory.mktemp("gguf") / "model.gguf"
    try:
        export_gguf(model_dir, out)
    except CommandError as exc:
        pytest.fail(f"{exc} (or set DOCOMPLETE_INTEROP_MODEL to a model that exports)")
    return out


@pytest.fixture(scope="session")
def context_length(model_dir: Path) -> int:
    import json

    return int(json.loads((model_dir / "config.json").read_text())["max_position_embeddings"])


@pytest.fixture(scope="session")
def llama_server(
    llama_build, gguf_file: Path, context_length: int, runs_dir: Path
) -> Iterator[str]:
    """Base URL of ``llama-server -m model.gguf --parallel 2 -t 1``."""
    from model.interop import free_port, llama_server_command, running_server

    port = free_port()
    command = llama_server_command(
        llama_build.llama_server,
        gguf_file,
        port,
        parallel=PARALLEL,
        threads=THREADS,
        context=context_length,
    )
    with running_server(
        command, port, health="/health", log_path=runs_dir / "llama-server.log"
    ) as url:
        yield url


@pytest.fixture(scope="session")
def llama_cpp_python_server(
    llama_build, gguf_file: Path, context_length: int, runs_dir: Path
) -> Iterator[str]:
    """Base URL of ``python -m llama_cpp.server --model model.gguf``."""
    from model.interop import free_port, llama_cpp_python_command, running_server

    port = free_port()
    command = llama_cpp_python_command(llama_build.python, gguf_file, port, context=context_length)
    with running_server(
        command,
        port,
        env=llama_build.python_env,
        log_path=runs_dir / "llama_cpp.server.log",
    ) as url:
        yield url
