"""The prompt's context: the module's imports, constants and helpers, and the enclosing scopes.

What goes before the function, within a token budget: the scopes that enclose it kept in place
(a method's class with its docstring, attributes, ``__init__`` and its other members'
signatures and docstrings; a nested function's outer function up to it), then the module's
imports, signatures of workspace names it imports (``server.workspace_imports``), helpers its
signature or docstring mention, and constants.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from server.site_finder import FunctionShape, Scope
from server.source_scan import SourceMap, indent_of

_TOP_DEF_RE = re.compile(r"^(?:async[ \t]+)?(?:def|class)[ \t]+(?P<name>\w+)")
_MEMBER_DEF_RE = re.compile(r"^[ \t]*(?:async[ \t]+)?(?P<kind>def|class)[ \t]+(?P<name>\w+)")
_IMPORT_RE = re.compile(r"^(?:import|from)[ \t]+[\w.]")
_CONSTANT_RE = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)[ \t]*(?::[^=]+)?=(?!=)")
_STRING_START_RE = re.compile(r"^[ \t]*[rRuUbB]{0,2}(?:\"\"\"|'''|\"|')")
#: Members whose whole body belongs in a method's prompt: they say what ``self`` holds.
_STATE_METHODS = ("__init__", "__post_init__", "__new__", "__slots__")

CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class Block:
    """A top-level statement: ``kind`` is import, constant, definition or other."""

    kind: str
    name: str
    start: int
    end: int  # exclusive
    source: str


def top_level_blocks(smap: SourceMap, skip: range) -> list[Block]:
    """The file's top-level statements outside the ``skip`` lines, in order."""
    blocks: list[Block] = []
    lines = smap.lines
    index = 0
    while index < len(lines):
        if index in skip:
            index = skip.stop
            continue
        line = lines[index]
        if not smap.is_statement_line(index) or line[0] in " \t":
            index += 1
            continue
        if line.startswith("@") or _TOP_DEF_RE.match(line):
            header = index
            while header < len(lines) and not _TOP_DEF_RE.match(lines[header]):
                header = smap.statement_end(header) + 1
            if header >= len(lines):
                break
            end = min(smap.block_end(header, 0), skip.start if skip.start > index else len(lines))
            while end > header + 1 and not lines[end - 1].strip():
                end -= 1
            name = _TOP_DEF_RE.match(lines[header]).group("name")  # type: ignore[union-attr]
            blocks.append(Block("definition", name, index, end, "".join(lines[index:end])))
            index = max(end, index + 1)
            continue
        end = smap.statement_end(index) + 1
        if skip.start > index:
            end = min(end, skip.start)
        kind, name = "other", ""
        if _IMPORT_RE.match(line):
            kind = "import"
        elif constant := _CONSTANT_RE.match(line):
            kind, name = "constant", constant.group("name")
        blocks.append(Block(kind, name, index, end, "".join(lines[index:end])))
        index = max(end, index + 1)
    return blocks


def _fit(texts: list[tuple[int, str]], budget: int, count: CountTokens) -> tuple[list[int], int]:
    """Indexes of the texts that fit in ``budget``, taken in the given order; tokens used."""
    chosen: list[int] = []
    used = 0
    for index, text in texts:
        cost = count(text)
        if used + cost <= budget:
            chosen.append(index)
            used += cost
    return chosen, used


def build_module_context(
    blocks: list[Block],
    mentioned: set[str],
    budget_tokens: int,
    count: CountTokens,
    workspace_stubs: str = "",
) -> str:
    """Imports, workspace signatures, then helpers the function mentions, then constants —
    as many as fit, in the file's order, laid out the PEP 8 way."""
    imports = [i for i, b in enumerate(blocks) if b.kind == "import"]
    helpers = [i for i, b in enumerate(blocks) if b.kind == "definition" and b.name in mentioned]
    constants = [i for i, b in enumerate(blocks) if b.kind == "constant"]
    # Mentioned constants first, then the rest: they are cheap and often used by a body.
    constants.sort(key=lambda i: blocks[i].name not in mentioned)
    order: list[tuple[int, str]] = [(i, blocks[i].source) for i in imports]
    stub_cost = count(workspace_stubs) if workspace_stubs else 0
    chosen, used = _fit(order, budget_tokens, count)
    with_stubs = bool(workspace_stubs) and used + stub_cost <= budget_tokens
    used += stub_cost if with_stubs else 0
    rest, _ = _fit(
        [(i, blocks[i].source) for i in [*helpers, *constants]], budget_tokens - used, count
    )
    chosen += rest
    if not chosen and not with_stubs:
        return ""
    text = ""
    previous_kind = ""
    last_import = max((i for i in chosen if blocks[i].kind == "import"), default=-1)
    for position in sorted(chosen):
        block = blocks[position]
        if previous_kind and "definition" in (block.kind, previous_kind):
            text += "\n\n"
        elif previous_kind and block.kind != previous_kind:
            text += "\n"
        text += block.source.rstrip("\n") + "\n"
        previous_kind = block.kind
        if position == last_import and with_stubs:
            text += "\n\n" + workspace_stubs.rstrip("\n") + "\n"
            previous_kind = "definition"
    if with_stubs and last_import == -1:
        text = workspace_stubs.rstrip("\n") + "\n" + ("\n\n" + text if text else "")
    return text + "\n\n"


# ------------------------------------------------------------------------------------------
# Enclosing scopes


@dataclass(frozen=True)
class _Member:
    line: int
    full: str
    summary: str  # signature + docstring + "..." for functions; the full text otherwise
    priority: int  # lower is kept first


def _docstring_lines(smap: SourceMap, first_body: int) -> int | None:
    """Last line of the docstring starting at ``first_body`` (None: no docstring there)."""
    if first_body >= len(smap.lines) or not _STRING_START_RE.match(smap.lines[first_body]):
        return None
    end = first_body
    while end + 1 < len(smap.lines) and end + 1 in smap.in_string:
        end += 1
    return end


def _first_statement(smap: SourceMap, after: int, limit: int) -> int:
    index = after
    while index < limit and not smap.is_statement_line(index):
        index += 1
    return index


def _member_summary(smap: SourceMap, start: int, header: int, end: int) -> str:
    """A function or class member as its decorators, header and docstring, then ``...``."""
    header_end = smap.header_end(header)
    text = "".join(smap.lines[start : header_end + 1])
    first = _first_statement(smap, header_end + 1, end)
    body_indent = indent_of(smap.lines[first]) if first < end else indent_of(smap.lines[header])
    if first < end and (doc_end := _docstring_lines(smap, first)) is not None:
        text += "".join(smap.lines[first : doc_end + 1])
        if _first_statement(smap, doc_end + 1, end) >= end:
            return text  # the docstring is the whole body
    if len(body_indent) <= len(indent_of(smap.lines[header])):
        body_indent = indent_of(smap.lines[header]) + "    "
    return text + body_indent + "...\n"


def _class_members(smap: SourceMap, scope: Scope, stop: int) -> list[_Member]:
    """The members of the class ``scope`` from its header to line ``stop``."""
    members: list[_Member] = []
    index = _first_statement(smap, scope.header_end + 1, stop)
    member_indent = indent_of(smap.lines[index]) if index < stop else ""
    first = True
    while index < stop:
        if not smap.is_statement_line(index):
            index += 1
            continue
        line = smap.lines[index]
        if indent_of(line) != member_indent:
            index += 1
            continue
        code = smap.code[index].lstrip()
        if code.startswith("@") or _MEMBER_DEF_RE.match(line):
            header = index
            while header < stop and not _MEMBER_DEF_RE.match(smap.lines[header]):
                header = smap.statement_end(header) + 1
            if header >= stop:
                break
            end = min(smap.block_end(header, len(member_indent)), stop)
            while end > header + 1 and not smap.lines[end - 1].strip():
                end -= 1
            full = "".join(smap.lines[index:end])
            match = _MEMBER_DEF_RE.match(smap.lines[header])
            name = match.group("name") if match else ""
            state = name in _STATE_METHODS
            summary = _member_summary(smap, index, header, end)
            members.append(_Member(index, full if state else summary, summary, 1 if state else 3))
            index = max(end, index + 1)
        else:
            doc_end = _docstring_lines(smap, index) if first else None
            end = (doc_end + 1) if doc_end is not None else smap.statement_end(index) + 1
            end = min(end, stop)
            text = "".join(smap.lines[index:end])
            members.append(_Member(index, text, text, 0 if doc_end is not None else 2))
            index = max(end, index + 1)
        first = False
    return members


def _is_definition(text: str) -> bool:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return first.startswith("@") or bool(_MEMBER_DEF_RE.match(first))


def enclosing_context(
    smap: SourceMap, shape: FunctionShape, budget_tokens: int, count: CountTokens
) -> str:
    """The scopes around the function, in place, from the top-level statement down to the
    function's first line; empty for a top-level function."""
    if not shape.scopes:
        return ""
    headers: list[tuple[int, str]] = []
    members: list[_Member] = []
    inner_starts = [scope.start for scope in shape.scopes[1:]] + [shape.start_line]
    for scope, stop in zip(shape.scopes, inner_starts, strict=True):
        headers.append((scope.start, "".join(smap.lines[scope.start : scope.header_end + 1])))
        if scope.kind == "class":
            members += _class_members(smap, scope, stop)
        elif scope.kind == "def":
            # A nested function reads the outer one's locals: keep its body up to here.
            text = "".join(smap.lines[scope.header_end + 1 : stop])
            if text.strip():
                members.append(_Member(scope.header_end + 1, text, "", 0))
    budget = budget_tokens - sum(count(text) for _line, text in headers)
    ranked = sorted(members, key=lambda m: (m.priority, -m.line))
    pieces: dict[int, str] = {}
    for member in ranked:
        for text in (member.full, member.summary):
            if text and count(text) <= budget:
                pieces[member.line] = text
                budget -= count(text)
                break
    for line, text in headers:
        pieces[line] = text
    out = ""
    header_lines = {line for line, _text in headers}
    previous = -1
    for line in sorted(pieces):
        text = pieces[line]
        blank_before = line > 0 and not smap.lines[line - 1].strip()
        if out and previous not in header_lines and (_is_definition(text) or blank_before):
            out = out.rstrip("\n") + "\n\n"
        out += text if text.endswith("\n") else text + "\n"
        previous = line
    if previous not in header_lines and not out.endswith("\n\n"):
        out += "\n"
    return out
