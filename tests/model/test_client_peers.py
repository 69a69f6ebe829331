"""OpenAIBackend against the response shapes of llama-server, llama_cpp.server and vLLM.

The servers are recorded-shape stand-ins (``tests/fixtures/peer_servers.py``) served by real
uvicorn on 127.0.0.1: the client adapts to each (limits on ``n``, one prompt per call, a
required ``model``), reads every log-prob shape and drops the tokens of a stop string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from model.client import OpenAIBackend, make_backend
from model.client_caps import ServerCaps, plan_calls, seed_for
from model.protocol import BackendRequestError, Candidate, SamplingParams
from tests.fixtures.peer_servers import (
    expected_text,
    llama_cpp_python_app,
    llama_server_app,
    piece_logprob,
    vllm_app,
)
from tests.model.conftest import ServerThread

PROMPTS = ["def add(a, b):\n", "def sub(a, b):\n", "def mul(a, b):\n"]
STOP = ("\n\n",)
#: The fake model's sample, up to the stop "\n\n": six tokens with log-probs -0.1 … -0.6.
KEPT_LOGPROBS = tuple(piece_logprob(i) for i in range(6))


@pytest.fixture
def serve() -> Iterator:
    servers: list[ServerThread] = []

    def start(app: FastAPI) -> str:
        server = ServerThread(app).__enter__()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _check_candidate(candidate: Candidate) -> None:
    """Text, tokens and log-probs agree; the stop string's tokens are gone."""
    assert candidate.finish_reason == "stop"
    assert "".join(candidate.tokens) == candidate.text
    assert candidate.token_logprobs == KEPT_LOGPROBS
    assert candidate.mean_logprob == pytest.approx(-0.35)


async def test_llama_server_n_above_parallel_is_split_and_named(serve) -> None:
    app = llama_server_app(parallel=2)
    notices: list[str] = []
    backend = OpenAIBackend([serve(app)], on_notice=notices.append)
    params = SamplingParams(n=4, max_tokens=20, stop=STOP, seed=7)
    try:
        results = await backend.complete(PROMPTS[:2], params)
        again = await backend.complete(PROMPTS[:2], params)
    finally:
        await backend.aclose()
    assert [len(group) for group in results] == [4, 4]
    assert results == again  # reproducible: the split calls use derived, fixed seeds
    for prompt, group in zip(PROMPTS, results, strict=False):
        assert len({c.text for c in group}) == 4  # every call drew different samples
        assert group[0].text == expected_text(prompt, 7, 0, list(STOP), 20)
        for candidate in group:
            _check_candidate(candidate)
    sent = app.state.recorder.requests
    assert sent[0]["n"] == 4  # refused with llama-server's 400, then asked 2 at a time
    assert all(body["n"] == 2 for body in sent[1:])
    assert len(sent) == 1 + 2 + 2  # second complete(): no more 400s
    assert backend.replicas[0].failed_until == 0  # a 400 is not an outage
    assert len(notices) == 1 and "--parallel 4" in notices[0]


async def test_llama_cpp_python_one_prompt_per_call_and_n_ignored(serve) -> None:
    app = llama_cpp_python_app()
    backend = OpenAIBackend([serve(app)], retries=3)
    params = SamplingParams(n=2, max_tokens=20, stop=STOP, seed=3)
    try:
        results = await backend.complete(PROMPTS, params)
        sent_first = len(app.state.recorder.requests)
        again = await backend.complete(PROMPTS, params)
    finally:
        await backend.aclose()
    assert results == again
    assert [len(group) for group in results] == [2, 2, 2]
    for prompt, group in zip(PROMPTS, results, strict=True):
        assert group[0].text == expected_text(prompt, 3, 0, list(STOP), 20)
        assert group[0].text != group[1].text  # n ignored: a second call with another seed
        for candidate in group:
            _check_candidate(candidate)  # llama_cpp.server sent the two "\n" tokens too
    sent = app.state.recorder.requests
    assert isinstance(sent[0]["prompt"], list)  # the list got the empty HTTP 500 once …
    assert all(isinstance(body["prompt"], str) for body in sent[1:])  # … then one by one
    assert len(sent) - sent_first == 6  # later calls: one request per candidate, no probing
    assert backend.replicas[0].failed_until == 0  # the 500 was not taken for an outage
    assert backend.capabilities[backend.replicas[0].url].prompt_lists is False
    assert len(backend.notices) == 2
    assert any("one prompt per call" in notice for notice in backend.notices)
    assert any("at most 1 candidate" in notice for notice in backend.notices)


async def test_vllm_lists_and_n_in_one_call_with_classic_logprobs(serve) -> None:
    app = vllm_app()
    backend = OpenAIBackend([serve(app)])
    try:
        results = await backend.complete(PROMPTS, SamplingParams(n=3, max_tokens=20, stop=STOP))
    finally:
        await backend.aclose()
    assert len(app.state.recorder.requests) == 1
    assert [len(group) for group in results] == [3, 3, 3]
    for prompt, group in zip(PROMPTS, results, strict=True):
        assert [c.text for c in group] == [
            expected_text(prompt, None, i, list(STOP), 20) for i in range(3)
        ]
        for candidate in group:
            _check_candidate(candidate)
    assert backend.notices == []


async def test_model_name_sent_discovered_or_refused_with_the_served_list(serve) -> None:
    app = vllm_app("org/coder-7b", require_model=True)
    url = serve(app)
    named = make_backend(url, model_name="org/coder-7b")
    discovering = OpenAIBackend([url])
    wrong = OpenAIBackend([url], model="coder")
    params = SamplingParams(n=1, max_tokens=5)
    try:
        await named.complete([PROMPTS[0]], params)
        assert app.state.recorder.requests[-1]["model"] == "org/coder-7b"
        assert app.state.recorder.gets == []

        [[candidate]] = await discovering.complete([PROMPTS[0]], params)
        assert candidate.text.startswith("    return")
        assert app.state.recorder.gets == ["/v1/models"]
        assert app.state.recorder.requests[-1]["model"] == "org/coder-7b"
        assert "org/coder-7b" in discovering.notices[0]

        with pytest.raises(BackendRequestError) as error:
            await wrong.complete([PROMPTS[0]], params)
    finally:
        for backend in (named, discovering, wrong):
            await backend.aclose()
    message = str(error.value)
    assert "'coder'" in message and "org/coder-7b" in message and "model" in message
    assert "\n" not in message


async def test_without_logprobs_the_mean_is_none_and_json_safe(serve) -> None:
    backend = OpenAIBackend([serve(vllm_app(logprobs=False))])
    try:
        results = await backend.complete(PROMPTS[:2], SamplingParams(n=2, max_tokens=20))
    finally:
        await backend.aclose()
    candidates = [c for group in results for c in group]
    assert all(c.token_logprobs == () and c.mean_logprob is None for c in candidates)
    json.dumps([c.mean_logprob for c in candidates], allow_nan=False)
    assert len(backend.notices) == 1 and "no log-probs" in backend.notices[0]


async def test_a_stop_string_in_the_middle_of_a_token_keeps_whole_tokens_only(serve) -> None:
    # The stop " +" is a whole token; "rn" begins inside the first token "    return".
    for app in (llama_server_app(), llama_cpp_python_app(), vllm_app()):
        backend = OpenAIBackend([serve(app)])
        try:
            [[candidate]] = await backend.complete(
                [PROMPTS[0]], SamplingParams(n=1, max_tokens=20, stop=(" +",))
            )
            [[cut]] = await backend.complete(
                [PROMPTS[0]], SamplingParams(n=1, max_tokens=20, stop=("rn",))
            )
        finally:
            await backend.aclose()
        assert candidate.text == "    return a"
        assert candidate.tokens == ("    return", " a")
        assert candidate.token_logprobs == KEPT_LOGPROBS[:2]
        assert cut.text == "    retu"
        assert cut.token_logprobs == () and cut.mean_logprob is None  # no whole token kept


def test_calls_are_planned_within_the_learned_limits() -> None:
    def plan(have: dict[int, int], n: int, **caps) -> list[tuple[tuple[int, ...], int, int]]:
        calls = plan_calls(have, n, ServerCaps(**caps))
        return [(c.prompt_indices, c.start, c.count) for c in calls]

    assert plan({0: 0, 1: 0}, 20) == [((0, 1), 0, 20)]  # nothing known: one call
    assert plan({0: 0, 1: 0}, 20, max_n=8) == [((0, 1), 0, 8), ((0, 1), 8, 8), ((0, 1), 16, 4)]
    assert plan({0: 0, 1: 3}, 4, prompt_lists=False, max_n=1) == [
        ((0,), 0, 1),
        ((0,), 1, 1),
        ((0,), 2, 1),
        ((0,), 3, 1),
        ((1,), 3, 1),
    ]
    assert plan({0: 0, 1: 0, 2: 0}, 4, max_rows=8) == [((0, 1), 0, 4), ((2,), 0, 4)]
    assert seed_for(7, 0) == 7 and seed_for(None, 4) is None
    assert len({seed_for(7, start) for start in range(64)}) == 64
