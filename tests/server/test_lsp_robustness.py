"""Cancellation and backend failures, through a real client session over stdio.

The scripted backend (a real HTTP server on 127.0.0.1) is put in slow mode or stopped; it
records when a client hangs up on it, which is how these tests see a cancel reach the backend.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fixtures.scripted_backend import Reply, ScriptedBackend
from tests.server.test_lsp_session import BODY_LINE, SOURCE, URI, inline_params, open_document

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "server", "lsp"])
REQUEST_FAILED = -32803
REQUEST_CANCELLED = -32800


@pytest.fixture
def backend():
    with ScriptedBackend([Reply(["    return sentence\n"], [-0.5])]) as server:
        yield server


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, backend: ScriptedBackend):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"backend": backend.url, "doctestFilter": False},
        )
    )
    open_document(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def send_inline(client: LanguageClient, msg_id: str, character: int = 4):
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(character=character), msg_id=msg_id
    )
    return asyncio.wrap_future(future)


async def test_cancel_request_reaches_the_backend(client: LanguageClient, backend: ScriptedBackend):
    backend.delay_s = 30
    pending = send_inline(client, "slow-1")
    assert await wait_for(lambda: len(backend.requests) == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow-1"))
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(pending, 10)
    assert error.value.code == REQUEST_CANCELLED
    # The HTTP request was closed: the backend saw its client hang up, long before 30 s.
    assert await wait_for(lambda: backend.disconnects == 1)
    assert backend.completed == 0


async def test_a_new_request_cancels_the_previous_one_for_the_document(
    client: LanguageClient, backend: ScriptedBackend
):
    backend.delay_s = 30
    first = send_inline(client, "old")
    assert await wait_for(lambda: len(backend.requests) == 1)
    backend.delay_s = 0
    # The user edits the docstring: the old request's prompt is stale.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(
                    text=SOURCE.replace("Reverse the order", "Reverse the order (edited)")
                )
            ],
        )
    )
    second = send_inline(client, "new")
    result = await asyncio.wait_for(second, 10)
    assert result.items[0].insert_text == "return sentence"
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(first, 10)
    assert error.value.code == REQUEST_CANCELLED
    assert await wait_for(lambda: backend.disconnects == 1)


async def test_backend_down_one_message_fast_errors_then_recovery(
    client: LanguageClient, backend: ScriptedBackend
):
    backend.stop()
    for _ in range(3):
        with pytest.raises(JsonRpcException) as error:
            await asyncio.wait_for(
                client.text_document_inline_completion_async(inline_params()), 10
            )
        assert error.value.code == REQUEST_FAILED
        assert "cannot reach the model server" in error.value.message
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1  # one message per outage, not one per keystroke
    assert "docomplete serve" in errors[0].message  # it names the fix

    backend.start()  # same port: the server comes back
    await asyncio.sleep(1.2)  # past the fail-fast window
    result = await client.text_document_inline_completion_async(inline_params())
    assert result.items[0].insert_text == "return sentence"


async def test_slow_backend_times_out_with_a_clear_error(
    client: LanguageClient, backend: ScriptedBackend
):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"requestTimeout": 0.5})
    )
    await asyncio.sleep(0.2)
    backend.delay_s = 30
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(client.text_document_inline_completion_async(inline_params()), 10)
    assert error.value.code == REQUEST_FAILED
    assert "did not answer within 0.5 s" in error.value.message
    assert await wait_for(lambda: backend.disconnects == 1)
    assert sum(m.type == types.MessageType.Error for m in client.messages) == 1


async def test_identical_requests_share_one_backend_call(
    client: LanguageClient, backend: ScriptedBackend
):
    backend.delay_s = 0.5  # both requests arrive while the first is still waiting on the model
    inline = send_inline(client, "inline-1")
    completion = client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=BODY_LINE, character=4),
        )
    )
    inline_result, completion_result = await asyncio.wait_for(
        asyncio.gather(inline, completion), 10
    )
    assert inline_result.items[0].insert_text == "return sentence"
    assert completion_result.items[0].text_edit.new_text == "return sentence"
    assert len(backend.requests) == 1


async def test_missing_embedded_model_is_reported_at_startup(tmp_path):
    from server.lsp_session import LspSession

    settings = {"backend": "embedded", "modelPath": str(tmp_path / "no-model")}
    async with LspSession(settings) as session:
        session.open(URI, SOURCE)
        assert await wait_for(lambda: bool(session.messages), timeout_s=30)
        with pytest.raises(JsonRpcException) as error:
            await session.inline(URI, BODY_LINE, 4)
    assert error.value.code == REQUEST_FAILED
    assert len(session.messages) == 1
    message = session.messages[0].message
    assert "no-model" in message and "docomplete train" in message
    assert not any("Traceback" in line for line in session.stderr_tail)
