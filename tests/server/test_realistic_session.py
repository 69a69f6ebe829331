"""A real pygls client session on a realistic module (examples/realistic_module.py): a package
the sandbox lacks, a relative import, a class, a nested function, decorated and async
functions, a partial body with code below the cursor, a half-written line.

The backend is the scripted server (a real model's output cannot be asserted on); the server
process, the protocol, the prompts, the post-processing and the doctest sandbox are real.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from server.demo import MarkedCursor, marked_cursors
from tests.fixtures.scripted_backend import Reply, ScriptedBackend
from tests.server.test_lsp_session import custom_request

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "examples" / "realistic_module.py"
URI = MODULE.as_uri()

REPLIES = [
    Reply(
        ["    return c * 9 / 5 + 32\n", "    return c + 273.15\n"],
        [-0.1, -0.5],
        match='def celsius_to_kelvin(c: float) -> float:\n    """Convert',
    ),
    Reply(['    return f"{slugify(title)}-{page}"\n'], [-0.2], match="def page_slug("),
    Reply(["    return httpx.codes.get_reason_phrase(code)\n"], [-0.2], match="def status_text("),
    Reply(
        ["        return len(self.items)\n", "        return 3\n"],
        [-0.4, -0.1],
        match="    def size(self) -> int:",
    ),
    Reply(["        return line.lower().split()\n"], [-0.2], match="    def words(line: str)"),
    Reply(
        ["    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n"],
        [-0.2],
        match="def fibonacci(",
    ),
    Reply(
        ["        response.raise_for_status()\n    return response.json()\n"],
        [-0.2],
        match="async def fetch_json(",
    ),
    Reply(
        ["    return list(await asyncio.gather(*(fetch_json(u) for u in urls)))\n"],
        [-0.2],
        match="async def fetch_all(",
    ),
    Reply([", high))\n"], [-0.2], match="def clamp("),
    Reply(["    pass\n"], [-1.0]),
]

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "server", "lsp", "-v"])


def cursor(name: str) -> MarkedCursor:
    """The editor state at the ``# CURSOR`` comment inside function ``name``."""
    source = MODULE.read_text(encoding="utf-8")
    for marked in marked_cursors(source):
        before = marked.text.split("\n")[: marked.line + 1]
        defs = [line for line in before if line.lstrip().startswith(("def ", "async def "))]
        if defs and f"def {name}(" in defs[-1]:
            return marked
    raise AssertionError(f"no cursor in {name}()")


@pytest.fixture
def backend():
    with ScriptedBackend(REPLIES) as server:
        yield server


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, backend: ScriptedBackend):
    lsp_client.set_configuration({"docomplete": {}})
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            # "off": the repository's own .venv (which has httpx) must not be bound here; the
            # venv-bound case has its own test (test_real_file_doctests.py).
            initialization_options={"backend": backend.url, "n": 2, "sandboxSitePackages": "off"},
            root_uri=REPO.as_uri(),
        )
    )
    yield
    await lsp_client.shutdown_session()


def show(client: LanguageClient, state: MarkedCursor, version: int = 1) -> None:
    if version == 1:
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=URI, language_id="python", version=1, text=state.text
                )
            )
        )
    else:
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=state.text)],
            )
        )


async def ask(client: LanguageClient, state: MarkedCursor) -> tuple[dict, list[str]]:
    """The picker's answer and the ghost texts at ``state``'s cursor."""
    position = {"line": state.line, "character": state.character}
    answer = await custom_request(
        client, "docomplete/candidates", {"textDocument": {"uri": URI}, "position": position}
    )
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(**position),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    return answer, [item.insert_text for item in inline.items]  # type: ignore[union-attr]


def verdicts(answer: dict) -> list[tuple[str, str, bool]]:
    return [
        (c["insertText"].strip(), c["verdictLabel"], c["ghostText"]) for c in answer["candidates"]
    ]


async def test_every_cursor_of_the_realistic_module(
    client: LanguageClient, backend: ScriptedBackend
):
    results = {}
    for version, name in enumerate(
        (
            "celsius_to_kelvin",
            "page_slug",
            "status_text",
            "size",
            "words",
            "fibonacci",
            "fetch_json",
            "fetch_all",
            "clamp",
        ),
        start=1,
    ):
        show(client, cursor(name), version)
        answer, ghosts = await ask(client, cursor(name))
        assert answer["function"] == name
        prompt = next(
            r["prompt"][0] for r in reversed(backend.requests) if f"def {name}(" in r["prompt"][0]
        )
        results[name] = (verdicts(answer), ghosts, prompt)

    # The body that contradicts its docstring is listed, marked failed, and never ghost text.
    assert results["celsius_to_kelvin"][0] == [
        ("return c + 273.15", "passed 2/2", True),
        ("return c * 9 / 5 + 32", "failed 0/2", False),
    ]
    assert results["celsius_to_kelvin"][1] == ["return c + 273.15"]
    # A relative import and a missing package: the prelude skips them, the verdict says so.
    slug_prompt = results["page_slug"][2]
    assert "# .helpers\ndef slugify(text: str) -> str:\n" in slug_prompt
    assert "...\n" in slug_prompt and '"-".join' not in slug_prompt  # signature, not body
    assert results["page_slug"][0] == [('return f"{slugify(title)}-{page}"', "unverifiable", True)]
    assert results["status_text"][0] == [
        ("return httpx.codes.get_reason_phrase(code)", "unverifiable", True)
    ]
    # The method runs its examples inside its class; one class header in the prompt.
    assert results["size"][0] == [
        ("return len(self.items)", "passed 3/3", True),
        ("return 3", "failed 2/3", False),
    ]
    assert results["size"][2].count("class Stack:") == 1
    assert "    def push(self, item: int) -> None:\n" in results["size"][2]
    # The nested function: its outer function is in the prompt, its example runs.
    assert results["words"][0] == [("return line.lower().split()", "passed 1/1", True)]
    assert "def word_counts(lines: list[str])" in results["words"][2]
    assert "class Stack" not in results["words"][2]
    assert results["fibonacci"][2].count("@functools.cache\ndef fibonacci(") == 1
    assert results["fibonacci"][0][0][1] == "passed 1/1"
    # The partial body stops where the code below resumes.
    assert results["fetch_json"][1] == ["response.raise_for_status()"]
    assert results["fetch_json"][0] == [("response.raise_for_status()", "skipped", True)]
    assert results["fetch_all"][1] == [
        "return list(await asyncio.gather(*(fetch_json(u) for u in urls)))"
    ]
    # Mid-line: one line, the closing brackets already there are not doubled.
    assert results["clamp"][1] == [", high"]
    assert results["clamp"][0] == [(", high", "passed 2/2", True)]


async def test_show_failing_when_every_candidate_fails(
    client: LanguageClient, backend: ScriptedBackend
):
    backend.set_replies([Reply(["    return c * 9 / 5 + 32\n", "    return c\n"], [-0.1, -0.2])])
    state = cursor("celsius_to_kelvin")
    show(client, state)
    answer, ghosts = await ask(client, state)  # default: picker
    assert ghosts == []
    assert [c["verdict"] for c in answer["candidates"]] == ["failed", "failed"]
    for setting, expected_ghosts, listed in (("never", 0, 0), ("always", 2, 2), ("picker", 0, 2)):
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"showFailing": setting})
        )
        await asyncio.sleep(0.2)
        answer, ghosts = await ask(client, state)
        assert (len(ghosts), len(answer["candidates"])) == (expected_ghosts, listed), setting


async def test_form_feed_and_line_separator_then_an_incremental_edit(
    client: LanguageClient, backend: ScriptedBackend
):
    backend.set_replies([Reply(["    return x * 2\n"], [-0.1])])
    text = 'import os\n\x0c\n\ndef double(x):\n    """Twice x \u2028 here.\n\n    >>> double(2)\n    4\n    """\n'
    uri = "file:///work/formfeed.py"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    # Type four spaces on the last (empty) line: an incremental edit after the form feed.
    last = text.count("\n")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=last, character=0),
                        end=types.Position(line=last, character=0),
                    ),
                    text="    ",
                )
            ],
        )
    )
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=last, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert [item.insert_text for item in result.items] == ["return x * 2"]
    assert backend.requests[-1]["prompt"][0].endswith('    4\n    """\n')
