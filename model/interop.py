"""Start llama.cpp's servers and ``docomplete serve`` as local processes (light tier).

``make interop`` builds llama.cpp once into a cache (tests/interop/build.sh) and records the
paths in ``$DOCOMPLETE_INTEROP_CACHE/env``; ``docomplete bench peer`` and the interop tests read
them here and run each server on 127.0.0.1 with the command lines docs/CONTRACTS.md lists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from model.cli_support import CommandError


def interop_cache() -> Path:
    """Where ``make interop`` keeps the llama.cpp build and its venv."""
    env = os.environ.get("DOCOMPLETE_INTEROP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "docomplete" / "interop"


@dataclass(frozen=True)
class LlamaCppBuild:
    """The binaries of one cached llama.cpp build."""

    llama_server: Path
    python: Path  # the venv's interpreter, with llama-cpp-python[server] installed
    lib_path: Path  # libllama.so & co, for LLAMA_CPP_LIB_PATH

    @property
    def python_env(self) -> dict[str, str]:
        return {**os.environ, "LLAMA_CPP_LIB_PATH": str(self.lib_path)}


def find_build(cache: Path | None = None) -> LlamaCppBuild:
    """The cached build, or a CommandError saying how to make it."""
    env_file = (cache or interop_cache()) / "env"
    if not env_file.is_file():
        raise CommandError(
            f"no llama.cpp build at {env_file.parent}: run `make interop` (or "
            "tests/interop/build.sh) first"
        )
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    build = LlamaCppBuild(
        llama_server=Path(values.get("LLAMA_SERVER", "")),
        python=Path(values.get("LLAMA_CPP_PYTHON", "")),
        lib_path=Path(values.get("LLAMA_CPP_LIB_PATH", "")),
    )
    if not os.access(build.llama_server, os.X_OK) or not build.python.is_file():
        raise CommandError(f"{env_file} names missing files: run tests/interop/build.sh again")
    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llama_server_command(
    server: Path | str,
    gguf: Path,
    port: int,
    *,
    parallel: int,
    threads: int = 2,
    context: int = 1024,
) -> list[str]:
    """``llama-server`` serving ``gguf`` with ``parallel`` slots of ``context`` tokens each,
    sampling with temperature and top-p only."""
    return [
        str(server),
        *("-m", str(gguf)),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--parallel", str(parallel)),
        *("-c", str(context * parallel)),
        *("-t", str(threads)),
        # Its defaults add top-k 40 and min-p 0.05 to temperature/top-p, which the OpenAI
        # subset cannot switch off per request: sample as `docomplete serve` does.
        *("--top-k", "0", "--min-p", "0"),
    ]


def llama_cpp_python_command(
    python: Path | str, gguf: Path, port: int, *, threads: int = 2, context: int = 1024
) -> list[str]:
    """``python -m llama_cpp.server`` serving ``gguf`` (one sequence at a time)."""
    return [
        str(python),
        *("-m", "llama_cpp.server"),
        *("--model", str(gguf)),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--n_ctx", str(context)),
        *("--n_threads", str(threads)),
    ]


def docomplete_serve_command(model_dir: Path, port: int) -> list[str]:
    return [
        sys.executable,
        *("-m", "server.cli", "serve"),
        *("--model", str(model_dir)),
        *("--port", str(port)),
    ]


@contextmanager
def running_server(
    command: Sequence[str],
    port: int,
    *,
    health: str = "/v1/models",
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout_s: float = 180.0,
) -> Iterator[str]:
    """Run ``command`` until the ``with`` block ends; yield its base URL once ``health`` answers
    200. The process's output goes to ``log_path`` (or is discarded)."""
    import httpx

    if shutil.which(command[0]) is None and not Path(command[0]).is_file():
        raise CommandError(f"{command[0]} not found")
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        list(command), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise CommandError(
                    f"{Path(command[0]).name} exited with {process.returncode} before serving"
                    + (f"; see {log_path}" if log_path else "")
                )
            try:
                if httpx.get(url + health, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise CommandError(f"{Path(command[0]).name} did not answer within {timeout_s}s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log.close()  # type: ignore[union-attr]
