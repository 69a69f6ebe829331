"""The OpenAI-compatible model server end to end: real uvicorn on 127.0.0.1, real HTTP clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from model.engine import Engine
from tests.model.conftest import ServerThread

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'


def _post(server: ServerThread, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)


def _wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_n_samples_per_prompt_with_logprobs_and_usage(model_server: ServerThread) -> None:
    body = {"prompt": [PROMPT, "import os\n"], "n": 3, "max_tokens": 8, "logprobs": 1, "seed": 5}
    response = _post(model_server, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "text_completion"
    assert [c["index"] for c in data["choices"]] == list(range(6))
    for choice in data["choices"]:
        lp = choice["logprobs"]
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"])
        assert lp["text_offset"] == sorted(lp["text_offset"])
        assert all(v <= 0 for v in lp["token_logprobs"])
        assert choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 6 * 8


def test_seed_reproduces_and_stop_trims(model_server: ServerThread) -> None:
    body = {"prompt": PROMPT, "n": 2, "max_tokens": 30, "temperature": 0.9, "seed": 11}
    first = _post(model_server, body).json()["choices"]
    second = _post(model_server, body).json()["choices"]
    assert [c["text"] for c in first] == [c["text"] for c in second]

    greedy = {"prompt": PROMPT, "max_tokens": 30, "temperature": 0}
    full = _post(model_server, greedy).json()["choices"][0]["text"]
    stop = full[5:7]
    [choice] = _post(model_server, {**greedy, "stop": [stop]}).json()["choices"]
    assert choice["text"] == full[: full.find(stop)]
    assert choice["finish_reason"] == "stop"


def test_streaming_sends_deltas_that_add_up_to_the_full_answer(
    model_server: ServerThread,
) -> None:
    body = {"prompt": PROMPT, "n": 2, "max_tokens": 20, "seed": 3, "stop": ["\n\n"]}
    expected = [c["text"] for c in _post(model_server, body).json()["choices"]]
    texts = ["", ""]
    finish: list[str | None] = [None, None]
    events = []
    with httpx.stream(
        "POST", f"{model_server.url}/v1/completions", json={**body, "stream": True}, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        choice = json.loads(event)["choices"][0]
        texts[choice["index"]] += choice["text"]
        finish[choice["index"]] = choice["finish_reason"] or finish[choice["index"]]
    assert texts == expected
    assert all(f in ("stop", "length") for f in finish)
    assert len(events) > 3  # tokens arrived as they were generated, not in one piece


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": PROMPT, "n": 0}, "n"),
        ({"prompt": PROMPT, "temperature": -1}, "temperature"),
        ({"prompt": PROMPT, "top_p": 0}, "top_p"),
        ({"prompt": PROMPT, "max_tokens": "many"}, "max_tokens"),
        ({"prompt": PROMPT, "max_tokens": 10**6}, "max_tokens"),
        ({"prompt": PROMPT, "stop": 5}, "stop"),
        ({"prompt": PROMPT, "logprobs": 9}, "logprobs"),
        ({"prompt": PROMPT, "seed": "x"}, "seed"),
        ({"prompt": 42}, "prompt"),
        ({"max_tokens": 4}, "prompt"),
    ],
)
def test_invalid_params_get_openai_style_400(
    model_server: ServerThread, body: dict, param: str
) -> None:
    response = _post(model_server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert param in error["message"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_models_health_tokenize_and_metrics(model_server: ServerThread, engine: Engine) -> None:
    assert httpx.get(f"{model_server.url}/health").json() == {"status": "ok"}
    models = httpx.get(f"{model_server.url}/v1/models").json()
    assert models["data"][0]["max_model_len"] == engine.max_context
    tokens = httpx.post(f"{model_server.url}/tokenize", json={"prompt": PROMPT}).json()
    assert tokens["count"] == engine.count_tokens(PROMPT)
    _post(model_server, {"prompt": PROMPT, "max_tokens": 4})
    _post(model_server, {"prompt": PROMPT, "n": -1})
    metrics = httpx.get(f"{model_server.url}/metrics").text
    assert 'docomplete_requests_total{status="200"}' in metrics
    assert 'docomplete_requests_total{status="400"}' in metrics
    assert "docomplete_queue_depth 0" in metrics
    assert 'docomplete_request_latency_seconds_bucket{le="+Inf"}' in metrics
    generated = next(
        line
        for line in metrics.splitlines()
        if line.startswith("docomplete_generated_tokens_total")
    )
    assert int(generated.split()[1]) >= 4


async def test_requests_queued_behind_a_batch_share_the_next_one(
    model_server: ServerThread,
) -> None:
    metrics = model_server.app.state.metrics
    url = f"{model_server.url}/v1/completions"
    async with httpx.AsyncClient(timeout=120) as client:
        first = asyncio.create_task(
            client.post(url, json={"prompt": PROMPT, "n": 2, "max_tokens": 400})
        )
        while not model_server.scheduler.running:
            await asyncio.sleep(0.005)
        batches_before = metrics.batches
        queued = [
            client.post(url, json={"prompt": f"{PROMPT}# {i}\n", "n": 2, "max_tokens": 20})
            for i in range(5)
        ]
        responses = await asyncio.gather(first, *queued)
    assert all(r.status_code == 200 for r in responses)
    assert all(len(r.json()["choices"]) == 2 for r in responses)
    # The five requests that arrived while the first decoded ran as one engine batch.
    assert metrics.batches - batches_before == 1


async def test_client_disconnect_stops_decoding(model_server: ServerThread, engine: Engine) -> None:
    steps_before = engine.stats.decode_steps
    body = {"prompt": PROMPT, "n": 8, "max_tokens": 3500, "temperature": 1.0}
    async with httpx.AsyncClient(timeout=120) as client:
        request = asyncio.create_task(client.post(f"{model_server.url}/v1/completions", json=body))
        while engine.stats.decode_steps - steps_before < 5:
            await asyncio.sleep(0.01)
        request.cancel()  # closes the connection mid-generation
        with pytest.raises(asyncio.CancelledError):
            await request
    deadline = time.monotonic() + 20
    while model_server.scheduler.running and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not model_server.scheduler.running
    steps_used = engine.stats.decode_steps - steps_before
    await asyncio.sleep(0.3)
    assert engine.stats.decode_steps - steps_before == steps_used  # nothing decodes any more
    assert steps_used < 3000  # it stopped long before its 3500-token budget
    assert (
        'docomplete_requests_total{status="499"}' in httpx.get(f"{model_server.url}/metrics").text
    )


async def test_full_queue_answers_429_with_retry_after(engine: Engine) -> None:
    from model.serve import create_app

    long_body = {"prompt": PROMPT, "n": 4, "max_tokens": 3500, "temperature": 1.0}
    with ServerThread(create_app(engine, max_batch=4, max_queue=1)) as server:
        async with httpx.AsyncClient(timeout=120) as client:
            url = f"{server.url}/v1/completions"
            running = asyncio.create_task(client.post(url, json=long_body))
            while not server.scheduler.running:
                await asyncio.sleep(0.01)
            waiting = asyncio.create_task(client.post(url, json=long_body))
            while not server.scheduler.waiting:
                await asyncio.sleep(0.01)
            rejected = await client.post(url, json={"prompt": PROMPT, "max_tokens": 2})
            assert rejected.status_code == 429
            assert int(rejected.headers["retry-after"]) >= 1
            assert rejected.json()["error"]["code"] == "queue_full"
            for task in (running, waiting):
                task.cancel()
            await asyncio.gather(running, waiting, return_exceptions=True)
            while server.scheduler.running or server.scheduler.waiting:
                await asyncio.sleep(0.02)


@pytest.mark.parametrize("broken", [False, True])
def test_serve_with_a_bad_model_path_exits_with_one_line(tmp_path: Path, broken: bool) -> None:
    model_dir = tmp_path / "model"
    if broken:  # a directory that looks like a model but is not loadable
        model_dir.mkdir()
        (model_dir / "config.json").write_text('{"model_type": "llama"}')
    docomplete = Path(sys.executable).with_name("docomplete")
    result = subprocess.run(
        [str(docomplete), "serve", "--model", str(model_dir), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(model_dir) in lines[0], result.stderr
    assert lines[0].startswith("docomplete: error:")


def test_docomplete_serve_answers_completions(tiny_model_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    docomplete = Path(sys.executable).with_name("docomplete")
    process = subprocess.Popen(
        [str(docomplete), "serve", "--model", str(tiny_model_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "docomplete serve did not come up"
            time.sleep(0.2)
        response = httpx.post(
            f"{url}/v1/completions",
            json={"prompt": PROMPT, "n": 2, "max_tokens": 5, "logprobs": 1},
            timeout=60,
        )
        assert response.status_code == 200
        assert len(response.json()["choices"]) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)
