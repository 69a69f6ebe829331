"""The server's commands as a user runs them: ``docomplete lsp --tcp/--log-file``, ``demo``,
``bench lsp`` — real processes, the scripted backend on 127.0.0.1 standing in for a model."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from tests.fixtures.scripted_backend import Reply, ScriptedBackend
from tests.server.test_lsp_session import BODY_LINE, SOURCE, URI

CLI = [sys.executable, "-m", "server"]
REPO = Path(__file__).resolve().parents[2]

DEMO_REPLIES = [
    Reply(["    return sum(numbers)\n", "    return 0\n"], [-0.6, -0.1], match="def total("),
    Reply(["    return text[::-1]\n"], [-0.3], match="def reverse_string("),
    Reply(["    return None\n"], [-0.2]),
]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_demo_prints_ranked_candidates_with_verdicts():
    with ScriptedBackend(DEMO_REPLIES) as backend:
        result = run_cli("demo", "--backend", backend.url, "--n", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    total = out[out.index("── total(") : out.index("── reverse_string(")]
    # The less likely but correct body is ranked first, with its verdict and score.
    assert total.index("✓ doctests 2/2") < total.index("✗ doctests 1/2")
    assert "return sum(numbers)" in total and "mean log-prob -0.600" in total
    assert "── mean(values: list[float]) -> float" in out
    assert "2/10 functions: the top candidate passes all of its docstring examples" in out
    assert "Connect an editor" in out and "vim.lsp.start" in out


def test_demo_without_the_model_names_the_fix(tmp_path: Path):
    result = run_cli("demo", env={"DOCOMPLETE_MODEL": str(tmp_path / "no-model")})
    assert result.returncode == 2
    assert "no-model missing — build the bundled model" in result.stderr
    assert "Traceback" not in result.stderr


def bench_lsp(backend: ScriptedBackend, out: Path, *args: str):
    """``docomplete bench lsp`` against the scripted server, figures written to ``out``."""
    return run_cli("bench", "lsp", "--backend", backend.url, *args, "--json", str(out))


def test_bench_lsp_writes_its_figures(tmp_path: Path):
    out = tmp_path / "lsp.json"
    with ScriptedBackend(DEMO_REPLIES) as backend:
        result = bench_lsp(backend, out, "--requests", "4")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["requests"] == 4 and figures["n"] == 4
    assert {"p50_ms", "p95_ms", "cached_ms"} <= set(figures)
    assert figures["answered_with_items"] == 4
    assert "p50_ms" in result.stdout
    # The realistic module's cursors are timed apart.
    assert figures["real_file_requests"] == 9 and figures["real_file_p50_ms"] > 0
    assert "real_file_p95_ms" in result.stdout


def test_bench_lsp_temperature_reaches_the_model_server(tmp_path: Path):
    out = tmp_path / "lsp.json"
    with ScriptedBackend(DEMO_REPLIES) as backend:
        result = bench_lsp(backend, out, "--requests", "2", "--temperature", "0.3")
        sent = {r.get("temperature") for r in backend.requests if "prompt" in r}
    assert result.returncode == 0, result.stderr
    assert sent == {0.3}
    bad = run_cli("bench", "lsp", "--backend", "http://127.0.0.1:9", "--temperature", "3")
    assert bad.returncode != 0 and "--temperature must lie between 0 and 2" in bad.stderr


def test_bench_lsp_runs_reports_medians_of_fresh_servers(tmp_path: Path):
    out = tmp_path / "lsp.json"
    with ScriptedBackend(DEMO_REPLIES) as backend:
        result = bench_lsp(backend, out, "--requests", "2", "--runs", "2")
        # Each run is a fresh server (an empty cache): the workload reaches the model twice.
        prompts = [r for r in backend.requests if "prompt" in r]
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["runs"] == 2 and len(figures["per_run"]) == 2
    p50s = sorted(run["p50_ms"] for run in figures["per_run"])
    assert figures["p50_ms"] == round((p50s[0] + p50s[1]) / 2, 2)
    assert sum(figures["answered"].values()) == 4  # 2 timed requests per run
    assert len(prompts) >= 2 * 2
    assert "p50_ms per run" in result.stdout and "median of 2 fresh servers" in result.stdout
    bad = run_cli("bench", "lsp", "--backend", backend.url, "--runs", "0")
    assert bad.returncode != 0 and "--runs must be at least 1" in bad.stderr


def test_bench_lsp_cold_starts_measures_fresh_servers(tmp_path: Path):
    out = tmp_path / "cold.json"
    with ScriptedBackend(DEMO_REPLIES) as backend:
        result = bench_lsp(backend, out, "--cold-starts", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["cold_starts"] == 2 and len(figures["cold_first_runs_ms"]) == 2
    # A fresh server answers its first request only after answering ``initialize``.
    assert figures["cold_first_ms"] >= figures["initialize_ms"] > 0
    assert "cold_first_ms (median)" in result.stdout


def test_bad_tcp_address_is_one_clear_error():
    result = run_cli("lsp", "--tcp", "localhost")
    assert result.returncode == 2
    assert "--tcp expects HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_lsp_starts_without_the_other_packages_commands():
    """The editor starts ``docomplete lsp`` on every launch: it imports only what serving needs
    (the model's, evalkit's and training commands are left out), while the full CLI has all."""
    code = (
        "import sys\n"
        "from server.cli import _command_modules, build_parser\n"
        "build_parser(_command_modules(['-v', 'lsp', '--stdio']))\n"
        "print(sorted(m for m in sys.modules if m.endswith('commands')))\n"
    )
    lean = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert lean.stdout.strip() == "['server.commands']", lean.stderr
    full = run_cli("--help")
    assert all(name in full.stdout for name in ("lsp", "serve", "train", "eval", "sandbox"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_tcp_server_with_log_file_threads_request_ids(tmp_path: Path):
    port = free_port()
    log_file = tmp_path / "logs" / "server.log"
    server = subprocess.Popen(
        [*CLI, "lsp", "--tcp", f"127.0.0.1:{port}", "--log-file", str(log_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    client = LanguageClient("test", "0")
    try:
        with ScriptedBackend([Reply(["    return sentence\n"], [-0.5])]) as backend:
            deadline = time.monotonic() + 20
            while True:
                try:
                    await client.start_tcp("127.0.0.1", port)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server did not listen"
                    await asyncio.sleep(0.1)
            result = await client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    initialization_options={"backend": backend.url, "doctestFilter": False},
                )
            )
            assert result.capabilities.inline_completion_provider is not None
            client.initialized(types.InitializedParams())
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=URI, language_id="python", version=1, text=SOURCE
                    )
                )
            )
            answer = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=URI),
                    position=types.Position(line=BODY_LINE, character=4),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
            assert isinstance(answer, types.InlineCompletionList)
            assert answer.items[0].insert_text == "return sentence"
            await client.shutdown_async(None)
            client.exit(None)
    finally:
        server.terminate()
        stdout, _ = server.communicate(timeout=10)
    assert stdout == b""  # over TCP nothing at all goes to stdout
    log = log_file.read_text()
    request_lines = [line for line in log.splitlines() if "[r0" in line]
    assert any("inlineCompletion" in line for line in request_lines)
    assert any("sampled" in line and "kept" in line for line in request_lines)
