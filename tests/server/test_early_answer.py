"""Latency behaviour with the embedded (streaming) backend, through a real stdio session.

Answering as soon as a candidate passes its doctests or when its doctests run long (also for a
model server's candidates), the stragglers reaching the picker later, a slow embedded model
answered at ``requestTimeout`` instead of being treated as down, and the model loading from
``initialize``. How long each sample takes cannot be steered on a real model, so these use the
scripted streaming backend (tests/fixtures/scripted_stream.py) or the scripted HTTP server
behind a real ``docomplete lsp``; the last one loads a real (tiny) model.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from server.lsp_session import LspSession
from tests.fixtures.scripted_backend import Reply, ScriptedBackend
from tests.server.test_lsp_session import BODY_LINE, SOURCE, URI

FAST_PASS = "    return ' '.join(sentence.split()[::-1])\n"
FAILS = "    return sentence.upper()\n"
SLOW_PASS = "    words = sentence.split()\n    return ' '.join(reversed(words))\n"
OTHER_URI = "file:///tmp/other.py"
OTHER = 'def total(numbers):\n    """Add them up.\n\n    >>> total([1, 2])\n    3\n    """\n'


def scripted_session(tmp_path: Path, replies: list[dict], **settings) -> LspSession:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": replies}))
    command = [sys.executable, "-m", "tests.fixtures.scripted_stream", "--script", str(script)]
    return LspSession({"backend": "embedded", **settings}, server_command=command)


async def wait_for(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def test_a_passing_candidate_is_answered_before_a_slow_sibling_finishes(tmp_path: Path):
    # The most likely candidate passes too, but takes seconds: the answer does not wait for it.
    reply = {
        "match": "reverse_words",
        "texts": [FAST_PASS, FAILS, SLOW_PASS],
        "logprobs": [-0.5, -0.2, -0.1],
        "delays": [0.0, 0.05, 3.0],
    }
    async with scripted_session(tmp_path, [reply], n=3) as session:
        session.open(URI, SOURCE)
        inline = await session.inline(URI, BODY_LINE, 4)
        shown = [item.insert_text for item in inline.items]
        assert shown[0] == "return ' '.join(sentence.split()[::-1])"
        assert not any("reversed(words)" in text for text in shown)
        [event] = [e for e in await session.telemetry() if e["event"] == "completion"]
        assert event["answered"] == "passing" and event["doctest"] == "passed"

        # The picker waits for the straggler, which now ranks first (it passes and is likelier).
        picked = await session.candidates(URI, BODY_LINE, 4)
        texts = [c["insertText"] for c in picked["candidates"]]
        assert texts[0] == "words = sentence.split()\n    return ' '.join(reversed(words))"
        assert len(texts) == 3
        assert picked["candidates"][0]["doctest"]["status"] == "passed"
        # Asking inline again now shows the full ranking, from the cache.
        again = await session.inline(URI, BODY_LINE, 4)
        assert again.items[0].insert_text == texts[0]


async def test_a_candidate_looping_in_its_doctests_does_not_hold_the_answer(tmp_path: Path):
    # The likeliest candidate never returns from its example: the sandbox stops it only at
    # doctestTimeout. The answer comes first, with the candidates marked as still being checked;
    # the picker then gets the verdicts.
    loops = "    while True:\n        pass\n"
    reply = {"match": "reverse_words", "texts": [loops, FAILS], "logprobs": [-0.1, -0.3]}
    async with scripted_session(tmp_path, [reply], n=2, doctestTimeout=4) as session:
        session.open(URI, SOURCE)
        inline = await session.inline(URI, BODY_LINE, 4)
        assert [item.insert_text for item in inline.items][:1] == ["while True:\n        pass"]
        [event] = [e for e in await session.telemetry() if e["event"] == "completion"]
        assert event["answered"] == "doctests-slow"
        assert event["doctest"] == "checking"

        picked = await session.candidates(URI, BODY_LINE, 4)
        verdicts = {c["insertText"]: c["doctest"]["status"] for c in picked["candidates"]}
        assert verdicts == {
            "while True:\n        pass": "timeout",
            "return sentence.upper()": "failed",
        }
        # The cache now holds the verdicts: asked again, nothing failing is ghost text.
        again = await session.inline(URI, BODY_LINE, 4)
        assert not again.items


async def test_a_model_servers_looping_candidate_does_not_hold_the_answer_either() -> None:
    # A model server answers all n at once; its candidates are checked as one batch, with the
    # same patience as the embedded engine's.
    loops = "    while True:\n        pass\n"
    with ScriptedBackend([Reply([loops, FAILS], [-0.1, -0.3])]) as server:
        settings = {"backend": server.url, "n": 2, "doctestTimeout": 4}
        async with LspSession(settings) as session:
            session.open(URI, SOURCE)
            inline = await session.inline(URI, BODY_LINE, 4)
            assert inline.items[0].insert_text == "while True:\n        pass"
            [event] = [e for e in await session.telemetry() if e["event"] == "completion"]
            assert (event["answered"], event["doctest"]) == ("doctests-slow", "checking")
            picked = await session.candidates(URI, BODY_LINE, 4)
            statuses = sorted(c["doctest"]["status"] for c in picked["candidates"])
            assert statuses == ["failed", "timeout"]


async def test_the_next_request_stops_a_previous_requests_looping_doctests(tmp_path: Path):
    # Without the stop, the looping candidate would hold the sandbox (and a core) for the
    # whole doctestTimeout while the user has moved on to another file.
    loops = {"match": "reverse_words", "texts": ["    while True:\n        pass\n"]}
    passes = {"match": "def total(", "texts": ["    return sum(numbers)\n"], "logprobs": [-0.1]}
    settings = {"n": 1, "doctestTimeout": 60}
    async with scripted_session(tmp_path, [loops, passes], **settings) as session:
        session.open(URI, SOURCE)
        first = await session.inline(URI, BODY_LINE, 4)
        assert [item.insert_text for item in first.items] == ["while True:\n        pass"]
        session.open(OTHER_URI, OTHER)
        second = await asyncio.wait_for(session.inline(OTHER_URI, 6, 0), 30)
        assert [item.insert_text for item in second.items] == ["    return sum(numbers)"]
        events = [e for e in await session.telemetry() if e["event"] == "completion"]
        assert [(e["answered"], e["doctest"]) for e in events] == [
            ("doctests-slow", "checking"),
            ("passing", "passed"),
        ]
        # The stopped candidate is left unjudged (not failed, not still running).
        picked = await asyncio.wait_for(session.candidates(URI, BODY_LINE, 4), 30)
        assert [c["doctest"]["status"] for c in picked["candidates"]] == ["skipped"]


async def test_a_request_waiting_for_the_sandbox_stops_an_answered_requests_doctests(
    tmp_path: Path,
):
    # The first request is answered by a passing candidate; its sibling arrives later and loops
    # in its examples, in the background. The next request must not wait for it.
    loops = "    while True:\n        pass\n"
    first = {"match": "reverse_words", "texts": [FAST_PASS, loops], "delays": [0.0, 0.3]}
    passes = {"match": "def total(", "texts": ["    return sum(numbers)\n"], "logprobs": [-0.1]}
    async with scripted_session(tmp_path, [first, passes], n=2, doctestTimeout=60) as session:
        session.open(URI, SOURCE)
        answer = await session.inline(URI, BODY_LINE, 4)
        assert answer.items[0].insert_text == "return ' '.join(sentence.split()[::-1])"
        await asyncio.sleep(1.0)  # the looping sibling is now in the sandbox
        session.open(OTHER_URI, OTHER)
        second = await asyncio.wait_for(session.inline(OTHER_URI, 6, 0), 30)
        assert [item.insert_text for item in second.items] == ["    return sum(numbers)"]
        events = [e for e in await session.telemetry() if e["event"] == "completion"]
        assert [e["answered"] for e in events] == ["passing", "passing"]
        picked = await asyncio.wait_for(session.candidates(URI, BODY_LINE, 4), 30)
        verdicts = {c["insertText"]: c["doctest"]["status"] for c in picked["candidates"]}
        assert verdicts == {
            "return ' '.join(sentence.split()[::-1])": "passed",
            "while True:\n        pass": "skipped",
        }


async def test_a_slow_embedded_model_is_answered_at_the_timeout_and_never_down(tmp_path: Path):
    slow = {"match": "reverse_words", "texts": [SLOW_PASS], "logprobs": [-0.1], "delays": [60]}
    settings = {"n": 2, "requestTimeout": 0.5, "doctestFilter": False}
    async with scripted_session(tmp_path, [slow], **settings) as session:
        session.open(URI, SOURCE)
        first = await asyncio.wait_for(session.inline(URI, BODY_LINE, 4), 30)
        # What the model had written by the deadline: the first line of its body.
        assert [item.insert_text for item in first.items] == ["words = sentence.split()"]
        # The user keeps typing: the next request is computed, not failed as "still down".
        session.open(URI, SOURCE.replace("Reverse the order", "Reverse the order (edited)"))
        second = await asyncio.wait_for(session.inline(URI, BODY_LINE, 4), 30)
        assert [item.insert_text for item in second.items] == ["words = sentence.split()"]
        events = [e for e in await session.telemetry() if e["event"] == "completion"]
        assert [e["answered"] for e in events] == ["timeout", "timeout"]
    assert not [m for m in session.messages if m.type == types.MessageType.Error]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


async def test_initialize_is_answered_before_the_model_loads_which_starts_at_once(
    tmp_path: Path, tiny_model: Path
):
    log_file = tmp_path / "server.log"
    client = LanguageClient("test", "0")
    await client.start_io(sys.executable, "-m", "server", "lsp", "--log-file", str(log_file))
    try:
        await asyncio.wait_for(
            client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    initialization_options={"backend": "embedded", "modelPath": str(tiny_model)},
                )
            ),
            30,
        )
        log = lambda: log_file.read_text() if log_file.exists() else ""  # noqa: E731
        assert "warm-up done" not in log()  # answered while the model was still loading
        # No `initialized` yet: loading began with `initialize` itself.
        assert await wait_for(lambda: "warm-up done" in log(), timeout_s=120), log()
        client.initialized(types.InitializedParams())
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=URI, language_id="python", version=1, text=SOURCE
                )
            )
        )
        result = await asyncio.wait_for(
            client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=URI),
                    position=types.Position(line=BODY_LINE, character=4),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            ),
            60,
        )
        assert isinstance(result, types.InlineCompletionList)  # served (gibberish model)
        await asyncio.wait_for(client.shutdown_async(None), 10)
        client.exit(None)
    finally:
        await client.stop()
