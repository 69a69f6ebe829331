"""Drive ``docomplete lsp`` over stdio from Python, as an editor would (demo and benchmark).

A thin wrapper over pygls' ``LanguageClient``: start the server process, initialize with
settings, open documents, request completions, and shut down cleanly. The server's stderr is
drained continuously (a full pipe would stall it) and kept for error messages.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient


def plain(value: Any) -> Any:
    """pygls returns custom-method results as namedtuples; turn them back into JSON values."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class LspSession:
    """One client session with a freshly started ``docomplete lsp`` process."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        server_command: Sequence[str] | None = None,
        cwd: Path | None = None,
        root_uri: str | None = None,
    ) -> None:
        self.settings = dict(settings)
        self.root_uri = root_uri
        self.server_command = list(server_command or [sys.executable, "-m", "server", "lsp"])
        self.cwd = cwd
        self.client = LanguageClient("docomplete-driver", "0.1.0")
        self.messages: list[types.ShowMessageParams] = []
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._stderr_task: asyncio.Task[None] | None = None
        self._versions: dict[str, int] = {}
        self.started_at = self.initialized_at = 0.0

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params: types.LogMessageParams) -> None:
            pass

    async def __aenter__(self) -> LspSession:
        self.started_at = time.perf_counter()  # just before the server process is spawned
        await self.client.start_io(*self.server_command, cwd=self.cwd)
        process = self.client._server
        if process is not None and process.stderr is not None:
            self._stderr_task = asyncio.create_task(self._drain(process.stderr))
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options=self.settings,
                process_id=None,
                root_uri=self.root_uri,
            )
        )
        self.initialized_at = time.perf_counter()  # the initialize answer arrived
        self.client.initialized(types.InitializedParams())
        return self

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
            await asyncio.wait_for(self.client.stop(), 10)
        except (TimeoutError, RuntimeError, ConnectionError):
            process = self.client._server
            if process is not None and process.returncode is None:
                process.kill()
        if self._stderr_task is not None:
            self._stderr_task.cancel()

    def open(self, uri: str, text: str) -> None:
        version = self._versions.get(uri, 0) + 1
        self._versions[uri] = version
        if version == 1:
            self.client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="python", version=version, text=text
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

    async def inline(self, uri: str, line: int, character: int) -> types.InlineCompletionList:
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        if isinstance(result, types.InlineCompletionList):
            return result
        return types.InlineCompletionList(items=list(result or []))

    async def candidates(self, uri: str, line: int, character: int) -> dict[str, Any]:
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        return plain(await self.client.protocol.send_request_async("docomplete/candidates", params))

    async def telemetry(self) -> list[dict[str, Any]]:
        answer = plain(await self.client.protocol.send_request_async("docomplete/telemetry", {}))
        return list(answer["events"])
