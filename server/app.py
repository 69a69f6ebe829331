"""Feature registration for the docomplete language server (pygls).

Methods: ``textDocument/inlineCompletion`` (best candidate as ghost text),
``textDocument/completion`` (fallback: every candidate as an item), ``docomplete/candidates``
(ranked candidates with scores and verdicts, for a picker), ``docomplete/shown`` and the
``docomplete.accept`` / ``docomplete.acceptPartial`` commands (telemetry),
``docomplete/telemetry`` (recent events). The work itself lives in :mod:`server.pipeline`, A/B
arms in :mod:`server.ab`, the telemetry events in :mod:`server.engagement`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from server.ab import arm_index, pick_arm
from server.config import CONFIG_SECTION, ServerConfig, config_as_json, parse_config
from server.doctest_filter import sandbox_notices
from server.engagement import EngagementTracker
from server.lsp_documents import use_line_feed_documents
from server.pipeline import (
    BackendFactory,
    BackendFailure,
    CompletionOutcome,
    CompletionPipeline,
    default_backend_factory,
)
from server.postprocess import insertion_text
from server.request_log import RequestLog, current_request_id, new_request_id
from server.telemetry import TelemetryLog, telemetry_path
from server.verdicts import (
    describe,
    ghost_candidates,
    picker_candidates,
    verdict_label,
    verdict_of,
)
from server.workspace_imports import WorkspaceStubs, read_file

logger = logging.getLogger("server")

CANDIDATES_METHOD = "docomplete/candidates"
SHOWN_METHOD = "docomplete/shown"
TELEMETRY_METHOD = "docomplete/telemetry"
ACCEPT_COMMAND = "docomplete.accept"
ACCEPT_PARTIAL_COMMAND = "docomplete.acceptPartial"

#: LSP's RequestFailed: the request was valid but the server could not answer it.
REQUEST_FAILED = -32803

VERSION = "0.1.0"


class RequestFailed(JsonRpcException):
    CODE = REQUEST_FAILED
    MESSAGE = "Request failed"


class _QuietExpectedFailures(logging.Filter):
    """pygls logs a traceback for every error response; a RequestFailed is an expected answer
    (backend down, already shown to the user once), so one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], RequestFailed):
            record.msg = f"request failed: {record.exc_info[1]}"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietExpectedFailures())


class DocompleteServer(LanguageServer):
    """The language server plus its state: settings, pipeline, telemetry, in-flight requests."""

    def __init__(
        self,
        *,
        backend_factory: BackendFactory = default_backend_factory,
        log_dir: Path | None = None,
    ) -> None:
        super().__init__("docomplete", VERSION)
        self.config = ServerConfig()
        self.pipeline = CompletionPipeline(backend_factory=backend_factory)
        self.log_dir = log_dir
        self.telemetry = TelemetryLog()  # its file is set with the settings
        self.engagement = EngagementTracker(self.telemetry, self.open_text)
        self.config_ready: asyncio.Event | None = None
        # Per document: the task of the request being answered and the prompt it is for.
        self.inflight: dict[str, tuple[asyncio.Task[Any], str]] = {}
        self.outcomes: OrderedDict[str, CompletionOutcome] = OrderedDict()
        self.warm_up_task: asyncio.Future[None] | None = None
        self.warm_up_key: tuple[tuple[str, ...], str | None] | None = None
        self.notices_shown: set[str] = set()

    # -- settings ---------------------------------------------------------------------------

    def apply_settings(self, options: Any) -> None:
        config, problems = parse_config(options, self.config)
        self.config = config
        level = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}
        logging.getLogger("server").setLevel(level.get(config.log_level, logging.DEBUG))
        self.telemetry.set_path(telemetry_path(config.telemetry_file))
        self.engagement.configure(config.retention_delays, config.dismiss_timeout)
        for problem in problems:
            logger.warning(problem)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=problem)
            )

    async def pull_settings(self) -> None:
        """Ask the client for the ``docomplete`` section (when it supports that)."""
        workspace = self.client_capabilities.workspace
        if workspace is None or not workspace.configuration:
            return
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(
                        items=[types.ConfigurationItem(section=CONFIG_SECTION)]
                    )
                ),
                timeout=5.0,
            )
        except Exception as exc:  # a client that cannot answer keeps the current settings
            logger.info("workspace/configuration failed: %s", exc)
            return
        if result and isinstance(result[0], Mapping):
            self.apply_settings(result[0])

    async def settings(self) -> ServerConfig:
        """Current settings, waiting briefly for the first workspace/configuration answer."""
        if self.config_ready is not None and not self.config_ready.is_set():
            try:
                await asyncio.wait_for(self.config_ready.wait(), timeout=5.0)
            except TimeoutError:
                pass
        return self.config

    def start_warm_up(self) -> None:
        """Load the model and start the sandbox in the background for the current settings,
        unless that already started for the same backend (the first request then waits only
        for what is left of it)."""
        key = (self.config.backend, self.config.model_path)
        if self.warm_up_task is not None and self.warm_up_key == key:
            return
        self.warm_up_key = key
        self.warm_up_task = asyncio.ensure_future(self.warm_up(self.config))

    async def warm_up(self, config: ServerConfig) -> None:
        """Background start-up work; a broken backend is reported now, once."""
        started = time.perf_counter()
        try:
            error = await self.pipeline.warm_up(config)
        except Exception as exc:  # warm-up is an optimisation: never let it take the server down
            logger.warning("warm-up failed: %s", exc)
            return
        if error is not None:
            if (config.backend, config.model_path) == (self.config.backend, self.config.model_path):
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error, message=f"docomplete: {error}"
                    )
                )
        else:
            logger.info("warm-up done in %.0f ms", (time.perf_counter() - started) * 1000)

    def open_text(self, uri: str) -> str | None:
        """The text of an open document, None when the client has not opened (or closed) it."""
        document = self.workspace.text_documents.get(unquote(uri))
        return document.source if document is not None else None

    def workspace_root(self) -> Path | None:
        try:
            root = self.workspace.root_path
        except RuntimeError:  # before initialize: no workspace yet
            return None
        return Path(root) if root else None

    def stub_reader(self, uri: str) -> WorkspaceStubs | None:
        """Cross-file context for a ``file:`` document: open buffers first, then the disk."""
        if not uri.startswith("file:"):
            return None
        document = Path(to_fs_path(uri) or "")

        def read_text(path: Path) -> str | None:
            text = self.open_text(path.resolve().as_uri()) if path.is_absolute() else None
            return text if text is not None else read_file(path)

        return WorkspaceStubs(document, self.workspace_root(), read_text)

    # -- completion ---------------------------------------------------------------------------

    def show_new_notices(self) -> None:
        """Tell the user, once each, what the model server made the client adapt to (e.g.
        fewer candidates than ``n``, no log-probs) or why the doctest filter cannot run here
        (no bubblewrap), naming the fix."""
        for notice in [*self.pipeline.backend_notices(), *sandbox_notices()]:
            if notice not in self.notices_shown:
                self.notices_shown.add(notice)
                self.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Warning, message=notice)
                )

    def remember(self, outcome: CompletionOutcome) -> None:
        self.outcomes[outcome.request_id] = outcome
        while len(self.outcomes) > 200:
            self.outcomes.popitem(last=False)

    async def run_completion(
        self, uri: str, position: types.Position, method: str
    ) -> CompletionOutcome | None:
        """Find the site, cancel this document's previous request, run the pipeline."""
        self.engagement.request_started(uri)
        config = await self.settings()
        document = self.workspace.get_text_document(uri)
        offset = document.offset_at_position(position)
        source = document.source
        line = source.count("\n", 0, offset)
        character = offset - (source.rfind("\n", 0, offset) + 1)
        site = self.pipeline.find_site(
            config, source, line, character, workspace_stubs=self.stub_reader(uri)
        )
        request_id = new_request_id()
        current_request_id.set(request_id)  # this handler's own task context
        log = RequestLog(logger, {"request_id": request_id})
        if site is None:
            log.debug("%s at %s:%d:%d: no body wanted here", method, uri, line, character)
            return None
        log.info("%s %s:%d:%d in %s()", method, uri, line, character, site.function_name)

        # "Cancel previous": a new request for a document makes the old one worthless — unless
        # it asks for the same thing (an editor sending inline + completion at once): then
        # both share one computation in the pipeline.
        current = asyncio.current_task()
        previous, previous_prompt = self.inflight.get(uri, (None, None))
        if (
            previous is not None
            and previous is not current
            and not previous.done()
            and previous_prompt != site.prompt
        ):
            log.info("cancelling the previous request for this document")
            previous.cancel()
        if current is not None:
            self.inflight[uri] = (current, site.prompt)
        arm = pick_arm(config, site.prompt, uri=uri, session=self.telemetry.session)
        try:
            outcome = await self.pipeline.complete(
                site,
                config,
                request_id=request_id,
                affinity=uri,
                arm=arm,
                want_all=method == "candidates",
            )
        except BackendFailure as failure:
            if failure.first_of_outage:
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error,
                        message=f"docomplete: {failure.error}",
                    )
                )
            raise RequestFailed(f"docomplete: {failure.error}") from None
        except asyncio.CancelledError:
            log.info("cancelled")
            raise
        finally:
            if current is not None and self.inflight.get(uri, (None, ""))[0] is current:
                del self.inflight[uri]
        self.show_new_notices()
        # A cache entry may have been filled by another arm with the same sampling settings.
        outcome.arm = str(arm["name"]) if arm else None
        self.remember(outcome)
        assignment = {"assignment": config.ab_assignment, "armIndex": arm_index(config, arm)}
        self.engagement.offered(outcome, uri, method, assignment if arm else {})
        return outcome


def _cursor_range(position: types.Position) -> types.Range:
    """The empty range at the cursor, in the client's own position units (UTF-16 for VS Code)."""
    return types.Range(start=position, end=position)


def _accept_command(outcome: CompletionOutcome, index: int) -> types.Command:
    return types.Command(
        title="docomplete: accepted",
        command=ACCEPT_COMMAND,
        arguments=[{"requestId": outcome.request_id, "index": index}],
    )


def _get(params: Any, name: str, default: Any = None) -> Any:
    """Field access for custom methods, whose params arrive as plain objects or dicts."""
    if isinstance(params, Mapping):
        return params.get(name, default)
    return getattr(params, name, default)


def _position_from(params: Any) -> tuple[str, types.Position]:
    document = _get(params, "textDocument")
    position = _get(params, "position")
    uri = _get(document, "uri") if document is not None else None
    line = _get(position, "line") if position is not None else None
    character = _get(position, "character") if position is not None else None
    if not isinstance(uri, str) or not isinstance(line, int) or not isinstance(character, int):
        raise JsonRpcException(
            code=-32602,
            message="docomplete/candidates needs {textDocument: {uri}, position: {line, character}}",
        )
    return uri, types.Position(line=line, character=character)


def create_server(
    *,
    backend_factory: BackendFactory = default_backend_factory,
    log_dir: Path | None = None,
) -> DocompleteServer:
    server = DocompleteServer(backend_factory=backend_factory, log_dir=log_dir)

    @server.feature(types.INITIALIZE)
    def initialize(ls: DocompleteServer, params: types.InitializeParams) -> None:
        ls.config_ready = asyncio.Event()
        use_line_feed_documents(ls.workspace)
        root = ls.workspace_root()
        ls.pipeline.workspace_root = str(root) if root else None
        ls.apply_settings(params.initialization_options)
        # Loading starts now, beside the rest of the handshake; it runs after this answer.
        ls.start_warm_up()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: DocompleteServer, params: types.InitializedParams) -> None:
        try:
            await ls.pull_settings()
        finally:
            if ls.config_ready is not None:
                ls.config_ready.set()
        ls.start_warm_up()  # again only if the workspace settings name another backend

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: DocompleteServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, Mapping) and settings:
            ls.apply_settings(settings)
        else:
            # Clients that only signal "something changed" expect us to pull.
            await ls.pull_settings()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: DocompleteServer, params: None) -> None:
        for task, _prompt in list(ls.inflight.values()):
            task.cancel()
        ls.engagement.close()
        await ls.pipeline.aclose()
        await asyncio.to_thread(ls.telemetry.close)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: DocompleteServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.engagement.document_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: DocompleteServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        outcome = await ls.run_completion(
            params.text_document.uri, params.position, "inlineCompletion"
        )
        if outcome is None:
            return types.InlineCompletionList(items=[])
        shown = ghost_candidates(
            outcome.ranked,
            show_failing=ls.config.show_failing,
            doctest_filter=ls.config.doctest_filter,
        )
        items = [
            types.InlineCompletionItem(
                insert_text=insertion_text(outcome.site, ranked.continuation),
                range=_cursor_range(params.position),
                command=_accept_command(outcome, outcome.ranked.index(ranked)),
            )
            for ranked in shown
        ]
        return types.InlineCompletionList(items=items)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=False),
    )
    async def completion(
        ls: DocompleteServer, params: types.CompletionParams
    ) -> types.CompletionList:
        outcome = await ls.run_completion(params.text_document.uri, params.position, "completion")
        if outcome is None:
            return types.CompletionList(is_incomplete=False, items=[])
        items = []
        listed = picker_candidates(
            outcome.ranked,
            show_failing=ls.config.show_failing,
            doctest_filter=ls.config.doctest_filter,
        )
        for ranked in listed:
            index = outcome.ranked.index(ranked)
            text = insertion_text(outcome.site, ranked.continuation)
            first_line = next((line.strip() for line in text.split("\n") if line.strip()), text)
            documentation = f"**{describe(ranked)}**\n\n```python\n{ranked.source.rstrip()}\n```"
            items.append(
                types.CompletionItem(
                    label=first_line[:60],
                    kind=types.CompletionItemKind.Snippet,
                    detail=f"docomplete #{index + 1}: {describe(ranked)}",
                    documentation=types.MarkupContent(
                        kind=types.MarkupKind.Markdown, value=documentation
                    ),
                    sort_text=f"{index:04d}",
                    filter_text=first_line,
                    insert_text_format=types.InsertTextFormat.PlainText,
                    text_edit=types.TextEdit(range=_cursor_range(params.position), new_text=text),
                    command=_accept_command(outcome, index),
                )
            )
        return types.CompletionList(is_incomplete=True, items=items)

    @server.feature(CANDIDATES_METHOD)
    async def candidates(ls: DocompleteServer, params: Any) -> dict[str, Any]:
        uri, position = _position_from(params)
        outcome = await ls.run_completion(uri, position, "candidates")
        if outcome is None:
            return {"requestId": None, "function": None, "candidates": []}
        config = ls.config
        filter_on = config.doctest_filter
        ghosts = ghost_candidates(
            outcome.ranked, show_failing=config.show_failing, doctest_filter=filter_on
        )
        listed = picker_candidates(
            outcome.ranked, show_failing=config.show_failing, doctest_filter=filter_on
        )
        return {
            "requestId": outcome.request_id,
            "function": outcome.site.function_name,
            "arm": outcome.arm,
            "fromCache": outcome.from_cache,
            "timingsMs": {k: round(v, 1) for k, v in outcome.timings_ms.items()},
            "settings": config_as_json(ls.config),
            "candidates": [
                {
                    "rank": index + 1,
                    "insertText": insertion_text(outcome.site, ranked.continuation),
                    "function": ranked.source,
                    **ranked.as_json(),
                    "verdict": verdict_of(ranked.doctest.status),
                    "verdictLabel": verdict_label(
                        ranked.doctest.passed, ranked.doctest.total, ranked.doctest.status
                    ),
                    "ghostText": ranked in ghosts,
                }
                for index, ranked in enumerate(listed)
            ],
        }

    @server.feature(SHOWN_METHOD)
    def shown(ls: DocompleteServer, params: Any) -> None:
        ls.engagement.shown(_get(params, "requestId"), _get(params, "index", 0))

    @server.command(ACCEPT_COMMAND)
    def accept(ls: DocompleteServer, *arguments: Any) -> None:
        details = arguments[0] if arguments and isinstance(arguments[0], Mapping) else {}
        request_id = details.get("requestId")
        ls.engagement.accepted(
            ls.outcomes.get(str(request_id)), request_id, details.get("index", 0)
        )

    @server.command(ACCEPT_PARTIAL_COMMAND)
    def accept_partial(ls: DocompleteServer, *arguments: Any) -> None:
        details = arguments[0] if arguments and isinstance(arguments[0], Mapping) else {}
        ls.engagement.partially_accepted(
            details.get("requestId"), details.get("index", 0), details.get("acceptedLength")
        )

    @server.feature(TELEMETRY_METHOD)
    async def telemetry(ls: DocompleteServer, params: Any) -> dict[str, Any]:
        # Answer once the events are on disk, so a reader of the database sees them too.
        await asyncio.to_thread(ls.telemetry.flush)
        return {"events": list(ls.telemetry.recent)}

    return server
