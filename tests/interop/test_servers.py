"""``docomplete eval run`` and an LSP session against the real llama-server and llama_cpp.server,
and their answers' shapes next to the recorded stand-ins of tests/fixtures/peer_servers.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_lsp
from fastapi.testclient import TestClient
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.fixtures.peer_servers import llama_cpp_python_app, llama_server_app
from tests.interop.conftest import PARALLEL
from tests.server.test_lsp_session import (
    BODY_LINE,
    SERVER,
    URI,
    custom_request,
    open_document,
)

SERVERS = {"llama-server": "llama_server", "llama_cpp.server": "llama_cpp_python_server"}
PROMPT = 'def add(a, b):\n    """Return a + b."""\n'


def _url(request: pytest.FixtureRequest, name: str) -> str:
    return str(request.getfixturevalue(SERVERS[name]))


# --------------------------------------------------------------------------- eval run
@pytest.mark.parametrize("name", list(SERVERS))
def test_eval_run_against_the_server(
    name: str, request: pytest.FixtureRequest, model_dir: Path, tmp_path: Path
) -> None:
    url = _url(request, name)
    out = tmp_path / "run"
    command = [
        sys.executable,
        *("-m", "server.cli", "eval", "run"),
        *("--backend", url, "--model", str(model_dir)),
        *("--n", "4", "--limit", "3", "--max-tokens", "96", "--seed", "7"),
        *("--out", str(out), "--no-progress", "--workers", "2"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 12 and summary["problems"] == 3
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted((s["task_id"], s["sample_idx"]) for s in samples) == sorted(
        (f"HumanEval/{t}", i) for t in range(3) for i in range(4)
    )
    # Both servers send log-probs: every non-empty sample has a finite mean.
    means = [s["mean_logprob"] for s in samples if s["completion"]]
    assert means and all(isinstance(m, float) and math.isfinite(m) for m in means)
    assert "pass@1" in done.stdout


# --------------------------------------------------------------------------- LSP session
@pytest_lsp.fixture(config=SERVER, params=list(SERVERS))
async def client(request: Any, lsp_client: LanguageClient, model_dir: Path) -> Any:
    url = _url(request, request.param)
    # A generous timeout: a 2-core machine shared with training decodes a few tokens/s.
    options = {"backend": url, "modelPath": str(model_dir), "n": 4, "requestTimeout": 600}
    lsp_client.set_configuration({"docomplete": {}})
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options=options,
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_lsp_session_gets_ranked_candidates(client: LanguageClient) -> None:
    open_document(client)
    params = {"textDocument": {"uri": URI}, "position": {"line": BODY_LINE, "character": 4}}
    answer = await custom_request(client, "docomplete/candidates", params)
    candidates = answer["candidates"]
    assert answer["function"] == "reverse_words"
    assert answer["timingsMs"]["sample"] > 0  # the server was asked (and answered)
    assert 1 <= len(candidates) <= 4  # a model too weak to write one valid body fails here
    for candidate in candidates:
        assert candidate["function"].startswith("def reverse_words(sentence):")
        assert isinstance(candidate["meanLogprob"], float)
        assert math.isfinite(candidate["meanLogprob"])
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=BODY_LINE, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert inline is not None


# --------------------------------------------------------------------------- response shapes
def skeleton(value: Any, parent: str = "") -> Any:
    """The JSON's structure: keys, and a type name for every leaf (first list item only).
    Classic ``top_logprobs`` entries map token text to a number: their keys become ``*``."""
    if isinstance(value, dict):
        if parent == "top_logprobs" and all(isinstance(v, float | int) for v in value.values()):
            return {"*": "number"} if value else {}
        return {key: skeleton(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [skeleton(value[0], parent)] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def missing_from(real: Any, fake: Any, path: str = "$") -> list[str]:
    """Where the stand-in's answer has a field or type the real server's lacks."""
    if isinstance(fake, dict):
        if not isinstance(real, dict):
            return [f"{path}: real is {real!r}"]
        return [
            problem
            for key, item in fake.items()
            for problem in (
                [f"{path}.{key}: not in the real answer"]
                if key not in real
                else missing_from(real[key], item, f"{path}.{key}")
            )
        ]
    if isinstance(fake, list):
        if fake and real:
            return missing_from(real[0], fake[0], f"{path}[0]")
        return []
    if fake != real and "null" not in (fake, real):
        return [f"{path}: real {real} vs stand-in {fake}"]
    return []


SHAPE_REQUESTS = {
    "one prompt, n=2, logprobs, stop": {
        "prompt": PROMPT,
        "n": 2,
        "max_tokens": 24,
        "temperature": 0.8,
        "logprobs": 1,
        "stop": ["\n\n"],
        "seed": 3,
    },
    "two prompts": {"prompt": [PROMPT, PROMPT], "max_tokens": 8, "logprobs": 1, "seed": 3},
    "n above the slots": {"prompt": PROMPT, "n": PARALLEL + 1, "max_tokens": 4, "seed": 3},
}
FAKES = {
    "llama-server": lambda: llama_server_app(parallel=PARALLEL),
    "llama_cpp.server": llama_cpp_python_app,
}


@pytest.mark.parametrize("name", list(SERVERS))
def test_real_answers_have_the_recorded_shapes(
    name: str, request: pytest.FixtureRequest, runs_dir: Path
) -> None:
    url = _url(request, name)
    fake = TestClient(FAKES[name]())
    recorded: dict[str, Any] = {}
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=300) as real:
        for label, body in SHAPE_REQUESTS.items():
            got, expected = (
                real.post("/v1/completions", json=body),
                fake.post("/v1/completions", json=body),
            )
            recorded[label] = {
                "status": got.status_code,
                "body": got.json() if got.content else None,
            }
            if got.status_code != expected.status_code:
                problems.append(
                    f"{label}: status {got.status_code} vs stand-in {expected.status_code}"
                )
                continue
            real_shape, fake_shape = skeleton(recorded[label]["body"]), skeleton(expected.json())
            problems += [f"{label}: {p}" for p in missing_from(real_shape, fake_shape)]
            if got.status_code == 200:
                assert len(got.json()["choices"]) == len(expected.json()["choices"]), label
        models = real.get("/v1/models")
        recorded["GET /v1/models"] = {"status": models.status_code, "body": models.json()}
        problems += [
            f"models: {p}"
            for p in missing_from(skeleton(models.json()), skeleton(fake.get("/v1/models").json()))
        ]
    (runs_dir / f"shapes-{name}.json").write_text(json.dumps(recorded, indent=2) + "\n")
    assert problems == []
