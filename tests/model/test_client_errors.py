"""OpenAIBackend on bad days: odd headers, blips, malformed answers, partial answers.

Each test serves canned HTTP answers from a real uvicorn server on 127.0.0.1 and checks that
the client either recovers or raises one typed ``BackendError`` whose message says what
happened (never a ``ValueError`` or a ``zip()`` error further down).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from model.client import OpenAIBackend, parse_completions
from model.client_caps import read_error, refused_n_limit
from model.protocol import (
    BackendError,
    BackendRequestError,
    BackendResponseError,
    BackendShortfall,
    BackendUnavailable,
    SamplingParams,
)
from model.replicas import retry_after_s
from tests.model.conftest import ServerThread

PROMPT = "def f():\n"


def choice(index: int, text: str = "    return 1", logprobs: Any = None) -> dict[str, Any]:
    if logprobs is None:
        logprobs = {"tokens": [text], "token_logprobs": [-0.5], "text_offset": [0]}
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": "stop"}


class Canned:
    """Answers in turn (the last one repeats): (status, body, headers); body str = raw JSON."""

    def __init__(self, *answers: tuple[int, Any, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            self.requests.append(await request.json())
            status, body, headers = self.answers[min(len(self.requests), len(self.answers)) - 1]
            raw = body if isinstance(body, str) else json.dumps(body)
            return Response(raw, status, headers, media_type="application/json")

        return app


@pytest.fixture
def serve() -> Iterator:
    servers: list[ServerThread] = []

    def start(canned: Canned) -> str:
        server = ServerThread(canned.app()).__enter__()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def ok(*choices: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    return 200, {"choices": list(choices)}, {}


async def _complete(url: str, params: SamplingParams, prompts=(PROMPT,), **options: Any):
    backend = OpenAIBackend([url], backoff_s=0.01, **options)
    try:
        return await backend.complete(list(prompts), params), backend
    finally:
        await backend.aclose()


async def test_a_bad_retry_after_header_falls_back_to_backoff(serve) -> None:
    busy = (429, {"error": {"message": "busy"}}, {"Retry-After": "abc"})
    canned = Canned(busy, busy, ok(choice(0)))
    started = time.monotonic()
    [[candidate]], _ = await _complete(serve(canned), SamplingParams())
    assert candidate.text == "    return 1" and len(canned.requests) == 3
    assert time.monotonic() - started < 5


def test_retry_after_reads_both_rfc_forms_and_ignores_junk() -> None:
    def seconds(value: str) -> float | None:
        return retry_after_s(httpx.Response(429, headers={"Retry-After": value}))

    assert seconds("2") == 2.0
    assert seconds("abc") is None and seconds("nan") is None and seconds("") is None
    assert seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 < (seconds(future) or 0) <= 60


async def test_a_single_replica_that_blips_is_retried_before_it_is_declared_down() -> None:
    app = Canned(ok(choice(0))).app()
    server = ServerThread(app)  # the port is bound but not listening yet: connection refused
    backend = OpenAIBackend([server.url], retries=4, backoff_s=0.2)
    try:
        task = asyncio.create_task(backend.complete([PROMPT], SamplingParams()))
        await asyncio.sleep(0.1)
        assert not task.done()
        await asyncio.to_thread(server.__enter__)
        [[candidate]] = await asyncio.wait_for(task, 30)
        assert candidate.text == "    return 1"
    finally:
        await backend.aclose()
        server.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (ok(choice(0), choice(5)), "indices"),  # index out of range
        (ok(choice(0), choice(0)), "indices"),  # the same index twice
        (ok(choice(0), choice(1), choice(2)), r"3 choice\(s\) for 2 prompt\(s\)"),
        ((200, {"object": "text_completion"}, {}), "'choices'"),
        ((200, "{not json", {}), "invalid JSON"),
    ],
)
async def test_malformed_answers_are_typed_errors(serve, answer, message) -> None:
    with pytest.raises(BackendResponseError, match=message) as error:
        await _complete(serve(Canned(answer)), SamplingParams(n=2), prompts=[PROMPT, PROMPT])
    assert "\n" not in str(error.value) and "127.0.0.1" in str(error.value)


def test_parse_completions_checks_every_prompt_got_n() -> None:
    body = {"choices": [choice(0), choice(1), choice(2), choice(3)]}
    assert [len(group) for group in parse_completions(body, 2, 2)] == [2, 2]
    with pytest.raises(BackendShortfall, match="1 of n=4"):
        parse_completions({"choices": [choice(0)]}, 1, 4)
    with pytest.raises(BackendResponseError, match="indices"):
        parse_completions({"choices": [choice(0), choice(7)]}, 1, 2)


async def test_non_finite_logprobs_never_reach_a_candidate(serve) -> None:
    raw = (
        '{"choices": [{"index": 0, "text": "x", "finish_reason": "length", "logprobs": '
        '{"tokens": ["x"], "token_logprobs": [NaN], "text_offset": [0]}}, {"index": 1, '
        '"text": "y", "finish_reason": "length", "logprobs": {"content": [{"token": "y", '
        '"logprob": -Infinity, "bytes": [121]}]}}]}'
    )
    results, _ = await _complete(serve(Canned((200, raw, {}))), SamplingParams(n=2))
    assert [c.mean_logprob for c in results[0]] == [None, None]
    assert all(c.token_logprobs == () for c in results[0])


async def test_fewer_candidates_raise_or_come_back_with_a_notice(serve) -> None:
    # A server that caps n at 1, then fails: the first candidate came, the second never does.
    outage = (500, {"error": {"message": "CUDA error: out of memory"}}, {})
    params = SamplingParams(n=2, seed=1)
    with pytest.raises(BackendUnavailable, match="out of memory"):
        await _complete(serve(Canned(ok(choice(0)), outage)), params, retries=0)
    notices: list[str] = []
    results, backend = await _complete(
        serve(Canned(ok(choice(0)), outage)),
        params,
        retries=0,
        accept_fewer=True,
        on_notice=notices.append,
    )
    assert [len(group) for group in results] == [1]
    assert any("fewer than the 2 candidates" in n for n in notices)
    assert notices == backend.notices


async def test_a_context_overflow_names_the_servers_flag(serve) -> None:
    # llama_cpp/server/errors.py context_length_exceeded (a 400 with param "messages").
    message = (
        "This model's maximum context length is 512 tokens, however you requested 900 tokens "
        "(800 in your prompt; 100 for the completion). Please reduce your prompt; or "
        "completion length."
    )
    error = {"message": message, "type": "invalid_request_error", "param": "messages"}
    canned = Canned((400, {"error": {**error, "code": "context_length_exceeded"}}, {}))
    with pytest.raises(BackendRequestError) as raised:
        await _complete(serve(canned), SamplingParams())
    assert "512 tokens" in str(raised.value) and "--max-model-len" in str(raised.value)
    assert len(canned.requests) == 1  # not taken for a missing model nor retried


def test_n_limits_are_read_from_each_servers_message() -> None:
    llama = {"error": {"code": 400, "message": "Field 'n': Value must be between 1 <= value "
                       "<= 8, but got 20", "type": "invalid_request_error"}}  # fmt: skip
    ours = {"error": {"message": "'n' must be between 1 and 256, got 300", "param": "n"}}
    tokens = {"error": {"message": "'max_tokens' must be between 1 and 2047, got 5000"}}
    assert refused_n_limit(read_error(400, llama, ""), 20) == 8
    assert refused_n_limit(read_error(400, ours, ""), 300) == 256
    assert refused_n_limit(read_error(400, tokens, ""), 4) is None
    unreadable = {"error": {"message": "too many", "param": "n"}}
    assert refused_n_limit(read_error(400, unreadable, ""), 8) == 4  # halve


async def test_unreachable_backend_errors_stay_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(BackendError) as error:
        await _complete(url, SamplingParams(), retries=1)
    assert isinstance(error.value, BackendUnavailable)
