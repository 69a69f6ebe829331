"""Backends: OpenAIBackend against real HTTP servers on 127.0.0.1, InProcessBackend on the engine.

Retry, replica and ordering tests use a small scripted HTTP server (real uvicorn, real sockets)
instead of the model server, because they need exact control over 429s, delays and the order of
choices that a real model cannot give deterministically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from model.client import InProcessBackend, OpenAIBackend, make_backend
from model.engine import Engine
from model.protocol import (
    BackendOverloaded,
    BackendRequestError,
    BackendUnavailable,
    DecodeBudget,
    SamplingParams,
    estimate_tokens,
)
from tests.model.conftest import ServerThread

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'


class Script:
    """Behaviour of a scripted server: how many 429s first, how long each answer takes."""

    def __init__(self, name: str, *, overloaded: int = 0, delay_s: float = 0.0) -> None:
        self.name = name
        self.overloaded = overloaded
        self.delay_s = delay_s
        self.requests: list[dict] = []


def scripted_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        script.requests.append(body)
        if script.overloaded > 0:
            script.overloaded -= 1
            return JSONResponse(
                {"error": {"message": "busy", "type": "overloaded", "param": None, "code": None}},
                status_code=429,
                headers={"Retry-After": "0"},
            )
        await asyncio.sleep(script.delay_s)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [
            {
                "index": p * body["n"] + i,
                "text": f"{script.name}:p{p}:s{i}",
                "logprobs": {"tokens": ["x"], "token_logprobs": [-0.5 - i], "text_offset": [0]},
                "finish_reason": "stop",
            }
            for p in range(len(prompts))
            for i in range(body["n"])
        ]
        random.Random(0).shuffle(choices)  # clients must order by "index", not position
        return {"id": "x", "object": "text_completion", "choices": choices}

    return app


@pytest.fixture
def scripted():
    servers: list[ServerThread] = []

    def start(script: Script) -> str:
        server = ServerThread(scripted_app(script)).__enter__()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_complete_against_the_model_server(model_server: ServerThread) -> None:
    backend = OpenAIBackend([model_server.url], timeout_s=60)
    params = SamplingParams(n=3, temperature=0.8, max_tokens=12, seed=4, stop=("\n\n",))
    try:
        results = await backend.complete([PROMPT, "import os\n"], params)
        again = await backend.complete([PROMPT, "import os\n"], params)
    finally:
        await backend.aclose()
    assert [len(r) for r in results] == [3, 3]
    assert results == again
    for candidate in (c for group in results for c in group):
        assert candidate.finish_reason in ("stop", "length")
        assert len(candidate.token_logprobs) == len(candidate.tokens)
        if candidate.token_logprobs:
            assert candidate.mean_logprob <= 0


async def test_scope_and_decode_budget_go_to_our_server_only_and_act_as_in_the_engine(
    model_server: ServerThread, engine: Engine
) -> None:
    """The editor's "stop when the sample leaves the function" and "cut a sample far longer
    than its siblings" reach docomplete's own server (which then ends samples exactly where the
    in-process engine does), never another one."""
    from tests.fixtures.scripted_backend import Reply, ScriptedBackend

    # A seed where the tiny model's samples leave the function (column <= 4) within 40 tokens,
    # and a budget tight enough to cut the others once one has finished.
    budget = DecodeBudget(quorum=0.25, factor=1.0, slack=0, grace=0, floor=1)
    params = SamplingParams(
        n=4, temperature=1.0, max_tokens=40, seed=14, scope_indent=4, decode_budget=budget
    )
    backend = OpenAIBackend([model_server.url], timeout_s=60)
    try:
        [served] = await backend.complete([PROMPT], params)
    finally:
        await backend.aclose()
    assert backend.capabilities[model_server.url].kind == "docomplete"
    [local] = engine.generate([PROMPT], params)
    assert [c.text for c in served] == [c.text for c in local]
    for without in ({"scope_indent": None}, {"decode_budget": None}):
        [other] = engine.generate([PROMPT], dataclasses.replace(params, **without))
        assert [c.text for c in served] != [c.text for c in other], without

    reply = Reply(["    return a + b\n"], [-0.1])
    sent_budget = dataclasses.asdict(budget)
    for owner, expected in (("vllm", (None, None)), ("docomplete", (4, sent_budget))):
        with ScriptedBackend([reply], owned_by=owner) as other:
            client = OpenAIBackend([other.url], timeout_s=10)
            try:
                await client.complete([PROMPT], dataclasses.replace(params, n=1))
            finally:
                await client.aclose()
            [sent] = [r for r in other.requests if "prompt" in r]
            assert (sent.get("scope_indent"), sent.get("decode_budget")) == expected


async def test_our_server_needs_no_adapting_until_n_passes_its_limit(
    model_server: ServerThread,
) -> None:
    backend = OpenAIBackend([model_server.url], timeout_s=60)
    try:
        results = await backend.complete(["x", "y"], SamplingParams(n=3, max_tokens=2, seed=1))
        assert [len(group) for group in results] == [3, 3] and backend.notices == []
        caps = backend.capabilities[model_server.url]
        assert caps.prompt_lists is True and caps.logprob_shape == "classic"
        [many] = await backend.complete(["x"], SamplingParams(n=260, max_tokens=1, seed=1))
    finally:
        await backend.aclose()
    assert len(many) == 260
    assert caps.max_n == 256 and "at most 256" in backend.notices[0]


async def test_server_400_becomes_request_error_with_its_message(
    model_server: ServerThread,
) -> None:
    backend = OpenAIBackend([model_server.url])
    try:
        with pytest.raises(BackendRequestError) as error:
            await backend.complete([PROMPT], SamplingParams(max_tokens=10**6))
    finally:
        await backend.aclose()
    assert "max_tokens" in str(error.value) and "400" in str(error.value)


async def test_unreachable_server_is_one_clear_line() -> None:
    url = _dead_url()
    backend = OpenAIBackend([url], timeout_s=5)
    try:
        with pytest.raises(BackendUnavailable) as error:
            await backend.complete([PROMPT], SamplingParams())
    finally:
        await backend.aclose()
    message = str(error.value)
    assert url in message and "docomplete serve" in message and "\n" not in message


async def test_retries_429_then_succeeds_or_reports_overload(scripted) -> None:
    flaky = Script("a", overloaded=2)
    backend = OpenAIBackend([scripted(flaky)], retries=3, backoff_s=0.01)
    try:
        [[candidate]] = await backend.complete([PROMPT], SamplingParams(n=1))
        assert candidate.text == "a:p0:s0"
        assert len(flaky.requests) == 3
        stuck = Script("b", overloaded=100)
        overloaded = OpenAIBackend([scripted(stuck)], retries=2, backoff_s=0.01)
        with pytest.raises(BackendOverloaded):
            await overloaded.complete([PROMPT], SamplingParams())
        await overloaded.aclose()
        assert len(stuck.requests) == 3
    finally:
        await backend.aclose()


async def test_choices_are_grouped_by_index(scripted) -> None:
    backend = OpenAIBackend([scripted(Script("a"))])
    try:
        results = await backend.complete(["p0", "p1", "p2"], SamplingParams(n=4))
    finally:
        await backend.aclose()
    assert [[c.text for c in group] for group in results] == [
        [f"a:p{p}:s{i}" for i in range(4)] for p in range(3)
    ]
    assert results[0][1].token_logprobs == (-1.5,)
    assert results[0][0].finish_reason == "stop"


async def test_replicas_least_loaded_with_affinity_and_cool_down(scripted, monkeypatch) -> None:
    first, second = Script("a", delay_s=0.3), Script("b", delay_s=0.3)
    urls = [scripted(first), scripted(second)]
    backend = OpenAIBackend(urls)
    params = SamplingParams(n=1)
    try:
        await asyncio.gather(*(backend.complete([PROMPT], params) for _ in range(4)))
        assert (len(first.requests), len(second.requests)) == (2, 2)  # spread by in-flight count
        served = await asyncio.gather(
            *(backend.complete([PROMPT], params, affinity="file:///a.py") for _ in range(4))
        )
        assert len({group[0][0].text.split(":")[0] for group in served}) == 1  # one replica
    finally:
        await backend.aclose()

    # Ties between idle replicas are broken at random; pin it so the dead one is tried first.
    monkeypatch.setattr("model.replicas.random.random", lambda: 0.0)
    dead = _dead_url()
    survivor = Script("c")
    backend = OpenAIBackend([dead, scripted(survivor)])
    try:
        for _ in range(4):
            [[candidate]] = await backend.complete([PROMPT], params)
            assert candidate.text.startswith("c:")
        # The dead replica was tried at most once, then skipped during its cool-down.
        assert backend.replicas[0].failed_until > time.monotonic()
    finally:
        await backend.aclose()


async def test_cancelling_the_task_closes_the_request(
    model_server: ServerThread, engine: Engine
) -> None:
    backend = OpenAIBackend([model_server.url], timeout_s=120)
    steps_before = engine.stats.decode_steps
    task = asyncio.create_task(
        backend.complete([PROMPT], SamplingParams(n=8, max_tokens=3500, temperature=1.0))
    )
    try:
        while engine.stats.decode_steps - steps_before < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 20
        while model_server.scheduler.running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not model_server.scheduler.running
        assert engine.stats.decode_steps - steps_before < 3000
    finally:
        await backend.aclose()


def test_count_tokens_uses_the_local_tokenizer(tiny_model_path: Path, engine: Engine) -> None:
    with_tokenizer = OpenAIBackend(["http://127.0.0.1:9"], tokenizer_path=tiny_model_path)
    assert with_tokenizer.count_tokens(PROMPT) == engine.count_tokens(PROMPT)
    estimated = OpenAIBackend(["http://127.0.0.1:9"])
    assert estimated.count_tokens(PROMPT) == estimate_tokens(PROMPT)


def test_make_backend_accepts_embedded_or_urls(tiny_model_path: Path) -> None:
    assert isinstance(make_backend("embedded", tiny_model_path), InProcessBackend)
    backend = make_backend(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert isinstance(backend, OpenAIBackend) and len(backend.replicas) == 2
    assert len(make_backend("http://a:1,http://b:2").replicas) == 2  # type: ignore[union-attr]
    for bad in ("gpu-box:8000", "", []):
        with pytest.raises(ValueError, match="embedded"):
            make_backend(bad)


async def test_in_process_backend_generates_and_cancels(tiny_model_path: Path) -> None:
    backend = InProcessBackend(tiny_model_path)
    try:
        results = await backend.complete([PROMPT, "x"], SamplingParams(n=2, max_tokens=6, seed=1))
        assert [len(r) for r in results] == [2, 2]
        assert all(len(c.token_logprobs) <= 6 for r in results for c in r)
        engine = backend._engine
        steps_before = engine.stats.decode_steps
        task = asyncio.create_task(backend.complete([PROMPT], SamplingParams(n=4, max_tokens=3500)))
        while engine.stats.decode_steps - steps_before < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)
        stopped_at = engine.stats.decode_steps
        await asyncio.sleep(0.3)
        assert engine.stats.decode_steps == stopped_at
        assert stopped_at - steps_before < 3000
    finally:
        await backend.aclose()


async def test_a_request_during_the_warm_up_load_runs_before_the_warm_up_generation(
    tiny_model_path: Path,
) -> None:
    backend = InProcessBackend(tiny_model_path)
    try:
        warm_up = asyncio.create_task(backend.warm_up(SamplingParams(n=4, max_tokens=4)))
        await asyncio.sleep(0)  # the load is queued first
        [candidates] = await backend.complete([PROMPT], SamplingParams(n=2, max_tokens=4))
        assert len(candidates) == 2
        engine = backend._engine
        assert engine.stats.prefill_calls == 1  # the request was the engine's first work
        await warm_up
        assert engine.stats.prefill_calls == 1  # and the warm-up generation was skipped
        # Without a waiting request the warm-up does generate (first-call costs paid early).
        fresh = InProcessBackend(tiny_model_path)
        await fresh.warm_up(SamplingParams(n=4, max_tokens=4))
        assert fresh._engine.stats.prefill_calls == 1
        await fresh.aclose()
    finally:
        await backend.aclose()


async def test_in_process_backend_with_no_model_says_how_to_fix(tmp_path: Path) -> None:
    backend = InProcessBackend(tmp_path / "missing")
    with pytest.raises(BackendUnavailable, match="--model"):
        await backend.complete([PROMPT], SamplingParams())
    await backend.aclose()


def test_light_tier_does_not_import_torch() -> None:
    code = (
        "import sys, model.client, model.protocol, model.paths\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_slow_server_times_out_with_a_clear_message(scripted) -> None:
    slow = Script("slow", delay_s=3.0)
    backend = OpenAIBackend([scripted(slow)], timeout_s=0.5)
    try:
        with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.5 s"):
            await backend.complete([PROMPT], SamplingParams())
    finally:
        await backend.aclose()
