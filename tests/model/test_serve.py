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


def _stream(server: ServerThread, body: dict) -> dict[int, dict]:
    """Stream ``body`` and put each choice back together: text, finish reason, log-probs."""
    choices: dict[int, dict] = {}
    with httpx.stream(
        "POST", f"{server.url}/v1/completions", json={**body, "stream": True}, timeout=60
    ) as response:
        assert response.status_code == 200
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    for line in lines[:-1]:
        part = json.loads(line)["choices"][0]
        choice = choices.setdefault(
            part["index"],
            {"text": "", "finish_reason": None, "tokens": [], "token_logprobs": [], "top": []},
        )
        choice["text"] += part["text"]
        choice["finish_reason"] = part["finish_reason"] or choice["finish_reason"]
        if part["logprobs"] is not None:
            choice["tokens"] += part["logprobs"]["tokens"]
            choice["token_logprobs"] += part["logprobs"]["token_logprobs"]
            choice["top"] += part["logprobs"]["top_logprobs"] or []
    return choices


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streamed_text_equals_non_streamed_text_when_a_stop_begins_inside_a_token(
    model_server: ServerThread, seed: int
) -> None:
    base = {"prompt": PROMPT, "max_tokens": 30, "temperature": 0.8, "seed": seed, "logprobs": 0}
    [full] = _post(model_server, base).json()["choices"]
    text, lp = full["text"], full["logprobs"]
    # Stops that start one character into a token of two or more characters ...
    starts = [o + 1 for o, t in zip(lp["text_offset"], lp["tokens"], strict=True) if len(t) > 1]
    stops = [text[start : start + 3] for start in starts[:2]]
    assert len(stops) == 2
    # ... and one the text ends with the beginning of, which never completes.
    stops.append(text[-2:] + "\x00never")
    for stop in stops:
        body = {**base, "n": 2, "stop": [stop]}
        expected = _post(model_server, body).json()["choices"]
        streamed = _stream(model_server, body)
        assert [streamed[c["index"]]["text"] for c in expected] == [c["text"] for c in expected]
        for choice in expected:
            got = streamed[choice["index"]]
            assert stop not in got["text"]
            assert got["finish_reason"] == choice["finish_reason"]
            assert got["tokens"] == choice["logprobs"]["tokens"]
            assert got["token_logprobs"] == choice["logprobs"]["token_logprobs"]
        # Sample 0 repeats the unstopped sample (same seed): the stop really cut it.
        cut = text.find(stop)
        assert expected[0]["text"] == (text[:cut] if cut >= 0 else text)


def test_logprob_tokens_join_to_the_text_for_characters_split_over_tokens(
    model_server: ServerThread,
) -> None:
    # A hot temperature makes the tiny model emit raw bytes, some forming multi-byte characters
    # (its vocabulary has no merges of non-ASCII bytes, so each is split over tokens).
    body = {"prompt": PROMPT, "n": 16, "max_tokens": 48, "temperature": 1.5, "seed": 7}
    choices = _post(model_server, {**body, "logprobs": 1}).json()["choices"]
    split_characters = 0
    for choice in choices:
        lp = choice["logprobs"]
        assert "".join(lp["tokens"]) == choice["text"]
        assert lp["text_offset"] == [
            len("".join(lp["tokens"][:i])) for i in range(len(lp["tokens"]))
        ]
        split_characters += sum(ord(c) > 127 and c != "\ufffd" for c in choice["text"])
    assert split_characters > 0  # the case this test is about did occur
    streamed = _stream(model_server, {**body, "logprobs": 1})
    assert [streamed[c["index"]]["tokens"] for c in choices] == [
        c["logprobs"]["tokens"] for c in choices
    ]


def test_top_logprobs_give_k_alternatives_per_position(model_server: ServerThread) -> None:
    body = {"prompt": PROMPT, "n": 2, "max_tokens": 12, "seed": 4, "logprobs": 3}
    choices = _post(model_server, body).json()["choices"]
    for choice in choices:
        lp = choice["logprobs"]
        assert len(lp["top_logprobs"]) == len(lp["tokens"])
        for token, logprob, top in zip(
            lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True
        ):
            assert 3 <= len(top) <= 4  # the 3 most likely, plus the sampled token if not one
            assert top[token] == logprob
            assert max(top.values()) >= logprob and all(v <= 0 for v in top.values())
    streamed = _stream(model_server, body)
    assert [streamed[c["index"]]["top"] for c in choices] == [
        c["logprobs"]["top_logprobs"] for c in choices
    ]


def test_too_many_rows_in_one_request_get_a_400_naming_the_limit(
    model_server: ServerThread, engine: Engine
) -> None:
    steps_before = engine.stats.decode_steps
    huge = _post(model_server, {"prompt": ["x"] * 10_000, "n": 256, "max_tokens": 4})
    assert huge.status_code == 400
    error = huge.json()["error"]
    assert error["param"] == "prompt"
    assert "512" in error["message"] and "--max-rows" in error["message"]
    assert _post(model_server, {"prompt": "x", "n": 256, "max_tokens": 4}).status_code == 200
    over = _post(model_server, {"prompt": ["x", "y", "z"], "n": 200, "max_tokens": 1})
    assert over.status_code == 400
    # Only the request within the cap reached the engine.
    assert engine.stats.decode_steps - steps_before <= 4


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
        ({"prompt": PROMPT, "scope_indent": -4}, "scope_indent"),
        ({"prompt": PROMPT, "scope_indent": True}, "scope_indent"),
        ({"prompt": PROMPT, "decode_budget": 5}, "decode_budget"),
        ({"prompt": PROMPT, "decode_budget": {"quorum": 2}}, "decode_budget"),
        ({"prompt": PROMPT, "decode_budget": {"floor": 1.5}}, "decode_budget"),
        ({"prompt": PROMPT, "decode_budget": {"bogus": 1}}, "decode_budget"),
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
        [
            str(docomplete),
            "serve",
            "--model",
            str(tiny_model_path),
            "--port",
            str(port),
            "--max-rows",
            "4",
        ],
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
        too_many = httpx.post(
            f"{url}/v1/completions", json={"prompt": PROMPT, "n": 5, "max_tokens": 5}, timeout=60
        )
        assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"
    finally:
        process.terminate()
        process.wait(timeout=30)
