"""``docomplete demo``: the real LSP server, over stdio, completing ``examples/demo.py``.

For every function in the file it asks the server for ranked candidates (``docomplete/candidates``
at the end of the docstring, where an editor user would be), prints them with their doctest
verdicts and scores, then says how to connect an editor.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO_FILE = REPO / "examples" / "demo.py"
REALISTIC_FILE = REPO / "examples" / "realistic_module.py"


@dataclass(frozen=True)
class FunctionSlot:
    """Where a function's body goes: the end of its docstring (0-based line, column)."""

    name: str
    signature: str
    line: int
    character: int


def function_slots(source: str) -> list[FunctionSlot]:
    """Top-level functions whose body is only a docstring (what the demo file holds)."""
    slots: list[FunctionSlot] = []
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.body:
            continue
        first = node.body[0]
        if not (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
            and first.end_lineno is not None
            and first.end_col_offset is not None
        ):
            continue
        signature = lines[node.lineno - 1].strip().removeprefix("def ").rstrip(":")
        slots.append(FunctionSlot(node.name, signature, first.end_lineno - 1, first.end_col_offset))
    return slots


_CURSOR_RE = re.compile(r"[ \t]*# CURSOR: (?P<label>.*)$")
_AFTER_RE = re.compile(r'after "(?P<text>[^"]+)"')


@dataclass(frozen=True)
class MarkedCursor:
    """An editor state from a ``# CURSOR: label`` comment: the document with that comment
    removed and the cursor where it was (after ``"text"`` on its line when the label says
    ``mid-line, after "text"``)."""

    label: str
    text: str
    line: int
    character: int


def marked_cursors(source: str) -> list[MarkedCursor]:
    """Every ``# CURSOR`` comment of ``source`` as an editor state (0-based positions)."""
    lines = source.split("\n")
    found: list[MarkedCursor] = []
    for index, line in enumerate(lines):
        match = _CURSOR_RE.search(line)
        if match is None:
            continue
        code = line[: match.start()]
        after = _AFTER_RE.search(match.group("label"))
        if code.strip() and after is not None and after.group("text") in code:
            character = code.index(after.group("text")) + len(after.group("text"))
        elif code.strip():
            character = len(code)
        else:
            code = line[: len(line) - len(line.lstrip())]  # the comment's indentation stays
            character = len(code)
        text = "\n".join([*lines[:index], code, *lines[index + 1 :]])
        found.append(MarkedCursor(match.group("label").strip(), text, index, character))
    return found


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def demo_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Server settings for the demo; a clear error when the bundled model is not there."""
    from model.cli_support import CommandError

    settings: dict[str, Any] = {"backend": args.backend, "n": args.n, "doctestFilter": True}
    if args.backend == "embedded":
        from model.paths import default_model_path

        model = (args.model or default_model_path()).expanduser()
        if not (model / "config.json").is_file():
            raise CommandError(
                f"{_relative(model)} missing — build the bundled model with `docomplete train …` "
                "(see README), pass --model PATH, or use a model server: "
                "docomplete demo --backend http://127.0.0.1:8000"
            )
        settings["modelPath"] = str(model)
    return settings


def _print_candidates(
    slot: FunctionSlot, answer: dict[str, Any], elapsed_ms: float, note: str = ""
) -> bool:
    candidates = answer.get("candidates") or []
    print(f"\n── {slot.signature}   ({len(candidates)} candidates, {elapsed_ms:.0f} ms{note})")
    if not candidates:
        print("   no candidate survived (none compiled)")
        return False
    for candidate in candidates:
        doctest = candidate["doctest"]
        if doctest["total"]:
            mark = "✓" if doctest["passed"] == doctest["total"] else "✗"
            verdict = f"{mark} doctests {doctest['passed']}/{doctest['total']}"
        else:
            verdict = f"· {doctest['status']}"
        mean = candidate["meanLogprob"]  # null when the backend gave no log-probs
        score = "no log-probs" if mean is None else f"mean log-prob {mean:.3f}"
        print(f"  #{candidate['rank']}  {verdict:<16} {score}")
        text = candidate["insertText"]
        # At the end of a docstring the insertion starts with a line break: show it dedented.
        body = textwrap.dedent(text.lstrip("\n")) if text.startswith("\n") else text
        for line in body.rstrip().splitlines():
            print(f"       {line}")
    best = candidates[0]["doctest"]
    return bool(best["total"]) and best["passed"] == best["total"]


CONNECT = """
Connect an editor (settings reference: docs/LSP.md):
  VS Code  `make vsix`, then install editors/vscode/docomplete-0.1.0.vsix (Extensions → … →
           Install from VSIX);
           it runs `python -m server.cli lsp` with your selected interpreter.
  Neovim   add editors/nvim to 'runtimepath' and call require("docomplete").setup(), or plainly:
           vim.lsp.start({ name = "docomplete", cmd = { "docomplete", "lsp" },
                           init_options = { backend = "embedded" } })
  Any LSP client: run `docomplete lsp` (stdio) or `docomplete lsp --tcp 127.0.0.1:2087`;
           it serves textDocument/inlineCompletion, textDocument/completion and
           docomplete/candidates.
"""


async def _drive(path: Path, settings: dict[str, Any]) -> int:
    from server.lsp_session import LspSession

    source = path.read_text(encoding="utf-8")
    try:
        slots = function_slots(source)
    except SyntaxError as exc:
        from model.cli_support import CommandError

        raise CommandError(f"{path} does not parse ({exc.msg}, line {exc.lineno})") from exc
    uri = path.resolve().as_uri()
    if cursors := marked_cursors(source):
        return await _drive_cursors(path, uri, cursors, settings)
    print(
        f"docomplete demo: {len(slots)} functions in {_relative(path)}, backend {settings['backend']}"
    )
    print("starting `docomplete lsp` over stdio …")
    passing = 0
    async with LspSession(settings, cwd=REPO) as session:
        session.open(uri, source)
        for slot in slots:
            started = time.perf_counter()
            try:
                answer = await session.candidates(uri, slot.line, slot.character)
            except Exception as exc:  # the server's error names the fix; show it and stop
                message = getattr(exc, "message", str(exc))
                print(f"\nerror from the server: {message}")
                for line in list(session.stderr_tail)[-5:]:
                    print(f"  server: {line}")
                return 1
            elapsed_ms = (time.perf_counter() - started) * 1000
            note = ", incl. loading the model" if slot is slots[0] else ""
            passing += _print_candidates(slot, answer, elapsed_ms, note)
    print(
        f"\n{passing}/{len(slots)} functions: the top candidate passes all of its docstring examples."
    )
    print(CONNECT)
    return 0


def _print_cursor_answer(cursor: MarkedCursor, answer: dict[str, Any], elapsed_ms: float) -> None:
    candidates = answer.get("candidates") or []
    where = f"{answer.get('function') or '-'}() line {cursor.line + 1}:{cursor.character + 1}"
    print(f"\n── {cursor.label}: {where}   ({len(candidates)} candidates, {elapsed_ms:.0f} ms)")
    if not answer.get("function"):
        print("   no body wanted here")
    elif not candidates:
        print("   no candidate survived (none compiled)")
    for candidate in candidates:
        ghost = "ghost" if candidate.get("ghostText") else "picker"
        label = candidate.get("verdictLabel") or candidate["doctest"]["status"]
        mean = candidate.get("meanLogprob")
        score = f"mean log-prob {mean:.3f}" if isinstance(mean, float) else "no log-probs"
        print(f"  #{candidate['rank']}  {label:<16} {ghost:<6} {score}")
        details = candidate["doctest"].get("details") or ""
        if candidate.get("verdict") in ("failed", "unverifiable") and details:
            print(f"       ({details[:100]})")
        for line in candidate["insertText"].strip("\n").splitlines() or [""]:
            print(f"       {line}")


async def _drive_cursors(
    path: Path, uri: str, cursors: list[MarkedCursor], settings: dict[str, Any]
) -> int:
    """One request per ``# CURSOR`` comment of the file, as an editor user would make them."""
    from server.lsp_session import LspSession

    print(
        f"docomplete demo: {len(cursors)} cursors in {_relative(path)}, "
        f"backend {settings['backend']}"
    )
    print("starting `docomplete lsp` over stdio …")
    root = Path.cwd().as_uri()
    settings = {"requestTimeout": 120, **settings}  # one slow answer on a busy CPU is no error
    async with LspSession(settings, cwd=REPO, root_uri=root) as session:
        for cursor in cursors:
            session.open(uri, cursor.text)
            started = time.perf_counter()
            try:
                answer = await session.candidates(uri, cursor.line, cursor.character)
            except Exception as exc:  # the server's error names the fix; show it and stop
                print(f"\nerror from the server: {getattr(exc, 'message', str(exc))}")
                return 1
            _print_cursor_answer(cursor, answer, (time.perf_counter() - started) * 1000)
    print(CONNECT)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError

    path: Path = (args.file or DEMO_FILE).expanduser()
    if not path.is_file():
        raise CommandError(f"{path} not found: pass --file PATH to a Python file")
    settings = demo_settings(args)
    return asyncio.run(_drive(path, settings))
