"""Online A/B tests end to end: a real pygls client drives ``docomplete lsp`` with two arms.

The scripted OpenAI-compatible server stands in for the model (its output is asserted on);
the server process, protocol, sandbox and the SQLite telemetry database are the real thing.
Retention and dismissal delays are set short (settings) so the test sees them happen.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from evalkit.ab_report import build_report
from evalkit.telemetry_db import read_events
from tests.fixtures.scripted_backend import Reply, ScriptedBackend

BODY = "    return ' '.join(reversed(sentence.split()))\n"
ARMS = [
    {"name": "cold", "temperature": 0.2, "n": 2},
    {"name": "hot", "temperature": 1.0, "n": 3, "weight": 1},
]
TEMPERATURE = {"cold": 0.2, "hot": 1.0}
SAMPLES = {"cold": 2, "hot": 3}

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "server", "lsp", "-v"])


def source(number: int, header: str = "") -> str:
    """A file whose function (and so prompt) differs per document: no cache sharing."""
    name = f"reverse_words_{number}"
    return header + (
        f"def {name}(sentence):\n"
        f'    """Reverse the order of the words in sentence.\n\n'
        f"    >>> {name}('a b c')\n"
        f"    'c b a'\n"
        f'    """\n'
        f"    \n"
    )


BODY_LINE = source(0).count("\n") - 1
URIS = [f"file:///work/ab/doc{i}.py" for i in range(6)]


@pytest.fixture
def backend():
    with ScriptedBackend([Reply([BODY, "    return sentence\n"], [-0.1, -0.5])]) as server:
        yield server


async def start(client: LanguageClient, options: dict[str, Any]) -> None:
    client.set_configuration({"docomplete": {}})
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options=options,
        )
    )


def plain(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


async def events_of(client: LanguageClient) -> list[dict[str, Any]]:
    answer = await client.protocol.send_request_async("docomplete/telemetry", {})
    return list(plain(answer)["events"])


class Editor:
    """Just enough of an editor: open, change, ask, show, accept."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.versions: dict[str, int] = {}

    def set_text(self, uri: str, text: str) -> None:
        version = self.versions.get(uri, 0) + 1
        self.versions[uri] = version
        if version == 1:
            self.client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=text
                    )
                )
            )
        else:
            self.client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
                )
            )

    async def ask(self, uri: str, line: int = BODY_LINE) -> types.InlineCompletionItem:
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        assert isinstance(result, types.InlineCompletionList) and result.items
        return result.items[0]

    def show(self, item: types.InlineCompletionItem) -> dict[str, Any]:
        assert item.command is not None
        details = dict(item.command.arguments[0])
        self.client.protocol.notify("docomplete/shown", details)
        return details

    async def run(self, command: str, details: dict[str, Any]) -> None:
        await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command, arguments=[details])
        )


def arm_of(events: list[dict[str, Any]], uri: str) -> set[str]:
    return {e["arm"] for e in events if e["event"] == "completion" and e["uri"] == uri}


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_two_arms_record_completion_accept_retention_dismiss_and_partial(
    client: LanguageClient, backend: ScriptedBackend, tmp_path: Path
):
    database = tmp_path / "ab.sqlite3"
    await start(
        client,
        {
            "backend": backend.url,
            "abArms": ARMS,
            "abAssignment": "document",
            "abSeed": 7,
            "telemetryFile": str(database),
            "retentionDelays": [0.4, 0.8],
            "dismissTimeout": 1.0,
        },
    )
    editor = Editor(client)
    for number, uri in enumerate(URIS):
        editor.set_text(uri, source(number))
        await editor.ask(uri)
    first_round = await events_of(client)
    # Sticky per document: asking again after an edit (a new prompt) keeps the arm.
    header = "import re\n"
    for number, uri in enumerate(URIS):
        editor.set_text(uri, source(number, header))
    items = [await editor.ask(uri, BODY_LINE + 1) for uri in URIS]
    events = await events_of(client)
    arms = {uri: arm_of(events, uri) for uri in URIS}
    assert all(len(found) == 1 for found in arms.values()), arms
    assert {next(iter(found)) for found in arms.values()} == {"cold", "hot"}
    assert arms == {uri: arm_of(first_round, uri) for uri in URIS}
    # Each arm's sampling settings reached the model.
    for number, uri in enumerate(URIS):
        arm = next(iter(arms[uri]))
        sent = [r for r in backend.requests if f"reverse_words_{number}(" in r["prompt"][0]]
        assert len(sent) == 2 and all(r["temperature"] == TEMPERATURE[arm] for r in sent)
        assert all(r["n"] == SAMPLES[arm] for r in sent)

    kept, reverted, passed_over, partly, ignored = URIS[:5]
    # Accepted and kept: the body stays in the file.
    details = editor.show(items[0])
    await editor.run("docomplete.accept", details)
    editor.set_text(kept, source(0, header).rstrip(" \n") + "\n    " + items[0].insert_text + "\n")
    # Accepted, then undone.
    details = editor.show(items[1])
    await editor.run("docomplete.accept", details)
    editor.set_text(
        reverted, source(1, header).rstrip(" \n") + "\n    " + items[1].insert_text + "\n"
    )
    await asyncio.sleep(0.1)
    editor.set_text(reverted, source(1, header))
    # Shown, then the user typed on: the next request passes it over.
    editor.show(items[2])
    await editor.ask(passed_over, BODY_LINE + 1)
    # Shown, one word taken (VS Code's partial accept).
    details = editor.show(items[3])
    await editor.run("docomplete.acceptPartial", {**details, "acceptedLength": 6})
    # Shown and left alone: dismissed after dismissTimeout.
    editor.show(items[4])
    await asyncio.sleep(1.6)

    events = await events_of(client)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event["event"], []).append(event)
    retained = {(e["uri"], e["delayS"]): e["retained"] for e in by_kind["retained"]}
    assert retained == {
        (kept, 0.4): True,
        (kept, 0.8): True,
        (reverted, 0.4): False,
        (reverted, 0.8): False,
    }
    dismissed = {e["uri"]: e["reason"] for e in by_kind["dismissed"]}
    assert dismissed == {passed_over: "next-request", ignored: "timeout"}
    assert [(e["uri"], e["acceptedChars"]) for e in by_kind["partial"]] == [(partly, 6)]
    accepted = {e["uri"]: e for e in by_kind["accepted"]}
    assert set(accepted) == {kept, reverted}
    assert all(e["doctest"] == "passed" for e in accepted.values())
    completion = by_kind["completion"][-1]
    assert completion["doctests"] == ["passed", "failed"] and completion["candidates"] == 2
    assert completion["assignment"] == "document"

    # The database holds the same story, and the report reads it per arm.
    stored = read_events(database)
    assert sorted(e.event for e in stored) == sorted(e["event"] for e in events)
    report = build_report(database)
    by_arm = {arm.arm: arm for arm in report.arms}
    assert set(by_arm) == {"cold", "hot"}
    assert sum(arm.requests for arm in report.arms) == 13
    assert sum(arm.shown for arm in report.arms) == 5
    assert sum(arm.accepted for arm in report.arms) == 2
    assert sum(arm.partial for arm in report.arms) == 1
    assert sum(arm.dismissed for arm in report.arms) == 2
    assert report.delays == [0.4, 0.8]
    assert sum(arm.retention[0.8][0] for arm in report.arms if 0.8 in arm.retention) == 1


async def test_session_assignment_keeps_one_arm_and_bad_arms_fall_back(
    client: LanguageClient, backend: ScriptedBackend, tmp_path: Path
):
    await start(
        client,
        {
            "backend": backend.url,
            "abArms": ARMS,
            "abAssignment": "session",
            "telemetryFile": str(tmp_path / "t.sqlite3"),
        },
    )
    editor = Editor(client)
    for number, uri in enumerate(URIS):
        editor.set_text(uri, source(number))
        await editor.ask(uri)
    events = await events_of(client)
    session_arms = {e["arm"] for e in events if e["event"] == "completion"}
    assert len(session_arms) == 1
    (arm,) = session_arms
    assert {r["temperature"] for r in backend.requests} == {TEMPERATURE[arm]}

    # A broken arm list: one message naming it, the experiment is off, completions go on.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"docomplete": {"abArms": [{"name": "x", "temperature": 0.2, "weight": -1}]}}
        )
    )
    await asyncio.sleep(0.3)
    editor.set_text(URIS[0], "# again\n" + source(0))
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URIS[0]),
            position=types.Position(line=BODY_LINE + 1, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert isinstance(result, types.InlineCompletionList) and result.items
    assert backend.requests[-1]["temperature"] == 0.8  # the plain temperature setting
    assert any(
        "abArms" in m.message and "arm 0: weight" in m.message and "default []" in m.message
        for m in client.messages
    )
    last = (await events_of(client))[-1]
    assert last["event"] == "completion" and last["arm"] is None
