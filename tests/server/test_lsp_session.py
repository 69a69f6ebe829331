"""The language server end to end: a real pygls client session (pytest-lsp) over stdio against
``docomplete lsp``, with the scripted OpenAI-compatible server on 127.0.0.1 as model backend.

The backend is scripted (tests/fixtures/scripted_backend.py) because a real model's output
cannot be asserted on; everything else — server process, protocol, HTTP client, doctest
sandbox — is the real thing.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fixtures.scripted_backend import Reply, ScriptedBackend

URI = "file:///work/words.py"
SOURCE = '''import re


def reverse_words(sentence):
    """Reverse the order of the words in sentence.

    >>> reverse_words("a b c")
    'c b a'
    >>> reverse_words("hello")
    'hello'
    """
'''
SOURCE += "    \n"  # the cursor line: already indented, as an editor leaves it
BODY_LINE = SOURCE.count("\n") - 1  # the indented empty line after the docstring
FAILS_BOTH = "    return sentence.upper()\n"
PASSES_ONE = "    return sentence[::-1]\n"
PASSES_BOTH = "    words = sentence.split()\n\n    return ' '.join(reversed(words))\n"
# The most likely candidate fails the examples; the least likely one passes them all.
REPLY = Reply([PASSES_ONE, FAILS_BOTH, PASSES_BOTH], [-0.1, -0.2, -0.9])

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "server", "lsp", "-v"])


@pytest.fixture
def backend():
    with ScriptedBackend([REPLY]) as server:
        yield server


@pytest_lsp.fixture(config=SERVER, params=["visual-studio-code", "neovim"])
async def client(request, lsp_client: LanguageClient, backend: ScriptedBackend):
    options = getattr(request, "param_options", None) or {"backend": backend.url}
    lsp_client.set_configuration({"docomplete": {}})
    # Kept on the client so tests can look at the advertised capabilities.
    lsp_client.initialize_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities(request.param), initialization_options=options
        )
    )
    yield
    await lsp_client.shutdown_session()


def plain(value):
    """pygls hands custom-method results over as namedtuples; tests compare plain JSON."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


async def custom_request(client: LanguageClient, method: str, params: dict):
    return plain(await client.protocol.send_request_async(method, params))


def open_document(client: LanguageClient, text: str = SOURCE, uri: str = URI) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )


def inline_params(line: int = BODY_LINE, character: int = 4, uri: str = URI):
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )


async def test_capabilities_are_advertised(client: LanguageClient):
    capabilities = client.initialize_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider
    assert capabilities.completion_provider is not None
    assert capabilities.execute_command_provider is not None
    assert "docomplete.accept" in capabilities.execute_command_provider.commands


async def test_inline_completion_returns_the_doctest_passing_body(
    client: LanguageClient, backend: ScriptedBackend
):
    open_document(client)
    result = await client.text_document_inline_completion_async(inline_params())
    assert isinstance(result, types.InlineCompletionList)
    best = result.items[0]
    # Inserted at the cursor (already indented): no stray indentation, blank line kept.
    assert best.insert_text == "words = sentence.split()\n\n    return ' '.join(reversed(words))"
    assert best.range == types.Range(
        start=types.Position(line=BODY_LINE, character=4),
        end=types.Position(line=BODY_LINE, character=4),
    )
    # The bodies that fail their docstring's examples are never ghost text while one passes
    # (issue 11): they stay in the picker and the completion menu, marked failed.
    assert [item.insert_text for item in result.items[1:]] == []
    sent = backend.requests[0]
    assert sent["n"] == 4 and sent["temperature"] == 0.8 and sent["top_p"] == 0.95
    assert "\n\n" not in sent["stop"]
    assert sent["prompt"][0].startswith("import re\n")
    assert sent["prompt"][0].endswith('    """\n')


async def test_completion_items_show_verdicts_and_scores(client: LanguageClient):
    open_document(client)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=BODY_LINE, character=4),
        )
    )
    assert isinstance(result, types.CompletionList)
    first = result.items[0]
    assert first.text_edit is not None
    assert first.text_edit.new_text.startswith("words = sentence.split()")
    assert isinstance(first.documentation, types.MarkupContent)
    assert "doctests 2/2 passed" in first.documentation.value
    assert "mean log-prob -0.900" in first.documentation.value
    assert "doctests 1/2 passed" in (result.items[1].detail or "")
    assert [item.sort_text for item in result.items] == sorted(i.sort_text for i in result.items)


async def test_candidates_request_lists_every_ranked_candidate_and_caches(
    client: LanguageClient, backend: ScriptedBackend
):
    open_document(client)
    params = {"textDocument": {"uri": URI}, "position": {"line": BODY_LINE, "character": 4}}
    answer = await custom_request(client, "docomplete/candidates", params)
    candidates = answer["candidates"]
    assert answer["function"] == "reverse_words"
    assert [c["doctest"]["passed"] for c in candidates] == [2, 1, 0]
    assert [c["doctest"]["status"] for c in candidates] == ["passed", "failed", "failed"]
    assert candidates[0]["meanLogprob"] == pytest.approx(-0.9)
    assert candidates[0]["function"].startswith("def reverse_words(sentence):")
    assert answer["fromCache"] is None
    again = await custom_request(client, "docomplete/candidates", params)
    assert again["fromCache"] == "exact"
    assert len(backend.requests) == 1  # the repeat did not reach the model


async def test_a_backend_without_logprobs_keeps_its_order_below_the_examples(
    client: LanguageClient, backend: ScriptedBackend
):
    # Some OpenAI-compatible servers ignore `logprobs`: the examples still rank the candidates,
    # and candidates that tie on them keep the order the server sent.
    title = "    return sentence.title()\n"
    backend.set_replies([Reply([FAILS_BOTH, title, PASSES_ONE, PASSES_BOTH], with_logprobs=False)])
    open_document(client)
    params = {"textDocument": {"uri": URI}, "position": {"line": BODY_LINE, "character": 4}}
    candidates = (await custom_request(client, "docomplete/candidates", params))["candidates"]
    assert [c["insertText"] for c in candidates] == [
        "words = sentence.split()\n\n    return ' '.join(reversed(words))",
        "return sentence[::-1]",
        "return sentence.upper()",
        "return sentence.title()",
    ]
    assert all(c["meanLogprob"] is None and c["sumLogprob"] is None for c in candidates)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=BODY_LINE, character=4),
        )
    )
    assert "doctests 2/2 passed · no log-probs" in (result.items[0].detail or "")


async def test_typed_ahead_reuses_the_cached_candidate(
    client: LanguageClient, backend: ScriptedBackend
):
    open_document(client)
    await client.text_document_inline_completion_async(inline_params())
    typed = SOURCE.rstrip(" \n") + "\n    words = sen"
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=typed)],
        )
    )
    result = await client.text_document_inline_completion_async(
        inline_params(character=len("    words = sen"))
    )
    assert result.items[0].insert_text == "tence.split()\n\n    return ' '.join(reversed(words))"
    assert len(backend.requests) == 1


async def test_no_completion_outside_a_function_body(client: LanguageClient):
    open_document(client)
    result = await client.text_document_inline_completion_async(inline_params(line=0, character=9))
    assert list(result.items) == []


async def test_configuration_sources(client: LanguageClient, backend: ScriptedBackend):
    open_document(client)
    # workspace/configuration is pulled on didChangeConfiguration without settings.
    client.set_configuration({"docomplete": {"backend": backend.url, "n": 2, "temperature": 0.3}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await asyncio.sleep(0.3)
    await client.text_document_inline_completion_async(inline_params())
    assert (backend.requests[-1]["n"], backend.requests[-1]["temperature"]) == (2, 0.3)
    # Pushed settings, including an invalid one: a message, the default, no crash.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"docomplete": {"n": -3, "maxTokens": 40}})
    )
    await asyncio.sleep(0.3)
    await client.text_document_inline_completion_async(inline_params(character=0))
    assert (backend.requests[-1]["n"], backend.requests[-1]["max_tokens"]) == (4, 40)
    assert any("n=-3" in m.message and "default 4" in m.message for m in client.messages)


async def test_model_setting_is_sent_as_the_model_field(
    client: LanguageClient, backend: ScriptedBackend
):
    open_document(client)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"docomplete": {"backend": backend.url, "model": "qwen2.5-coder-1.5b"}}
        )
    )
    await asyncio.sleep(0.3)
    await client.text_document_inline_completion_async(inline_params())
    assert backend.requests[-1]["model"] == "qwen2.5-coder-1.5b"


async def test_telemetry_records_shown_and_accepted_with_the_arm(
    client: LanguageClient, backend: ScriptedBackend, tmp_path
):
    telemetry_file = tmp_path / "telemetry.jsonl"
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"abArms": [0.2, 0.6], "telemetryFile": str(telemetry_file)}
        )
    )
    open_document(client)
    result = await client.text_document_inline_completion_async(inline_params())
    command = result.items[0].command
    assert command is not None and command.command == "docomplete.accept"
    request_id = command.arguments[0]["requestId"]
    client.protocol.notify("docomplete/shown", {"requestId": request_id, "index": 0})
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    events = (await custom_request(client, "docomplete/telemetry", {}))["events"]
    kinds = {event["event"]: event for event in events if event.get("requestId") == request_id}
    assert set(kinds) == {"completion", "shown", "accepted"}
    arm = kinds["completion"]["arm"]
    assert arm in ("arm0", "arm1")
    assert kinds["accepted"]["arm"] == arm and kinds["accepted"]["doctest"] == "passed"
    assert backend.requests[-1]["temperature"] == {"arm0": 0.2, "arm1": 0.6}[arm]
    written = [json.loads(line) for line in telemetry_file.read_text().splitlines()]
    assert [e["event"] for e in written if e.get("requestId") == request_id] == [
        "completion",
        "shown",
        "accepted",
    ]


async def test_positions_are_in_the_negotiated_units(
    client: LanguageClient, backend: ScriptedBackend
):
    line_text = '    greeting = "😀 ünïcode"'
    text = SOURCE[: SOURCE.rindex("    \n")] + line_text + "\n"
    backend.set_replies([Reply(["\n    return greeting + sentence\n"], [-0.3])])
    # The only candidate fails the examples: let it be ghost text all the same.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"showFailing": "always"})
    )
    open_document(client, text)
    encoding = client.initialize_result.capabilities.position_encoding  # type: ignore[attr-defined]
    # VS Code speaks UTF-16 code units; Neovim offers UTF-8 and gets it.
    codec, width = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2), "utf-32": ("utf-32-le", 4)}[
        encoding or "utf-16"
    ]
    cursor_units = len(line_text.encode(codec)) // width
    result = await client.text_document_inline_completion_async(
        inline_params(character=cursor_units)
    )
    assert result.items[0].insert_text == "\n    return greeting + sentence"
    assert result.items[0].range.start == types.Position(line=BODY_LINE, character=cursor_units)
    assert backend.requests[-1]["prompt"][0].endswith(line_text)
