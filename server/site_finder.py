"""Find the function whose body the cursor is in, and the scopes around it.

Works on lines and indentation (``server.source_scan``) rather than ``ast``: the file being
edited rarely parses, the body under the cursor being exactly what is missing. A function is
found with its decorators, its header (one or many lines), its docstring, where its body ends,
and the chain of scopes that enclose it (a class for a method, the outer function for a nested
one), so the prompt can keep them and the doctest run can rebuild them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from server.source_scan import SourceMap, indent_of, is_blank

_DEF_RE = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?def[ \t]+(?P<name>\w+)[ \t]*\(")
_CLASS_RE = re.compile(r"^(?P<indent>[ \t]*)class[ \t]+(?P<name>\w+)")
_DOCSTRING_START_RE = re.compile(r"^[ \t]*(?P<prefix>[rRuU]?)(?P<quote>\"\"\"|'''|\"|')")


@dataclass(frozen=True)
class Scope:
    """A block enclosing the function: ``kind`` is ``class``, ``def`` or ``block`` (if, with…)."""

    kind: str
    name: str
    start: int  # first line, decorators included
    header: int  # the ``class``/``def``/``if`` line
    header_end: int  # last line of the header (the one ending with ':')
    indent: str


@dataclass(frozen=True)
class FunctionShape:
    """Where the function at the cursor lies in the document (0-based lines)."""

    name: str
    start_line: int  # first decorator, or the def line
    def_line: int
    header_end: int
    def_indent: str
    body_indent: str
    indent_unit: str
    docstring: str | None
    body_start_offset: int  # just after the docstring, or after the header's ':'
    end_line: int  # first line after the function (exclusive)
    scopes: tuple[Scope, ...]  # enclosing blocks, outermost first
    top_start: int  # the top-level statement holding the function: first line
    top_end: int  # …and the first line after it


def _find_def(smap: SourceMap, cursor_line: int, cursor_line_prefix: str) -> int | None:
    """The ``def`` line enclosing the cursor: the nearest one above it less indented than
    everything between it and the cursor."""
    min_indent: int | None = None
    if cursor_line_prefix.strip():
        min_indent = len(indent_of(cursor_line_prefix))
    for index in range(cursor_line, -1, -1):
        if index == cursor_line:
            line = cursor_line_prefix
            if is_blank(line) or index in smap.in_string:
                continue
        elif not smap.is_statement_line(index):
            continue
        else:
            line = smap.lines[index]
        if index != cursor_line and smap.code[index].lstrip()[:1] in (")", "]", "}"):
            continue  # closes a bracket opened above: says nothing about the block
        indent = len(indent_of(line))
        if _DEF_RE.match(line) and (min_indent is None or indent < min_indent):
            return index
        if _DEF_RE.match(line) and index == cursor_line:
            return index
        if min_indent is None or indent < min_indent:
            min_indent = indent
        if min_indent == 0 and index != cursor_line:
            # A top-level statement that is not a def: the cursor is not inside a function.
            return None
    return None


def statement_start(smap: SourceMap, index: int) -> int:
    """First line of the statement that line ``index`` belongs to (brackets followed back)."""
    depth = 0
    for line in range(index, -1, -1):
        if line in smap.in_string:
            continue
        depth += smap.bracket_delta(line)
        previous_continues = line > 0 and smap.code[line - 1].rstrip("\r\n").endswith("\\")
        if depth >= 0 and smap.is_statement_line(line) and not previous_continues:
            return line
    return index


def decorated_start(smap: SourceMap, header: int) -> int:
    """The first decorator line above the ``def``/``class`` at ``header`` (or ``header``)."""
    indent = len(indent_of(smap.lines[header]))
    start = header
    index = header - 1
    while index >= 0:
        if not smap.is_statement_line(index):
            index -= 1
            continue
        first = statement_start(smap, index)
        code = smap.code[first]
        if len(indent_of(code)) == indent and code.lstrip().startswith("@"):
            start = first
            index = first - 1
            continue
        break
    return start


def _enclosing_scopes(smap: SourceMap, start_line: int, def_indent: str) -> list[Scope]:
    """Blocks enclosing the line ``start_line`` (indented ``def_indent``), outermost first."""
    scopes: list[Scope] = []
    limit = len(def_indent)
    index = start_line - 1
    while index >= 0 and limit > 0:
        if not smap.is_statement_line(index):
            index -= 1
            continue
        first = statement_start(smap, index)
        indent = len(indent_of(smap.lines[first]))
        if indent >= limit:
            index = first - 1
            continue
        line = smap.lines[first]
        kind, name = "block", ""
        if match := _CLASS_RE.match(line):
            kind, name = "class", match.group("name")
        elif match := _DEF_RE.match(line):
            kind, name = "def", match.group("name")
        begin = decorated_start(smap, first) if kind != "block" else first
        scopes.append(Scope(kind, name, begin, first, smap.header_end(first), indent_of(line)))
        limit = indent
        index = begin - 1
    scopes.reverse()
    return scopes


def _docstring_span(smap: SourceMap, first_line: int) -> tuple[int, str | None] | None:
    """Where the docstring starting at ``first_line`` ends (offset) and its value.

    Returns None when the docstring is not closed (the cursor is probably inside it).
    """
    source, lines = smap.source, smap.lines
    match = _DOCSTRING_START_RE.match(lines[first_line])
    if match is None:
        return None
    quote = match.group("quote")
    start = smap.offsets[first_line] + match.start("prefix")
    body_start = smap.offsets[first_line] + match.end("quote")
    if len(quote) == 3:
        end = source.find(quote, body_start)
        while end != -1 and source[end - 1] == "\\":
            end = source.find(quote, end + 1)
    else:
        line_end = smap.offsets[first_line] + len(lines[first_line])
        end = source.find(quote, body_start, line_end)
    if end == -1:
        return None
    end += len(quote)
    try:
        value = ast.literal_eval(source[start:end])
    except (SyntaxError, ValueError):
        value = None
    return end, value if isinstance(value, str) else None


class InsideDocstring(Exception):
    """The cursor is inside the docstring (or it is not closed yet): no body is wanted."""


def _function_end(smap: SourceMap, cursor_line: int, def_indent: str) -> int:
    """First line after the function: the next statement at or left of the ``def``'s indent,
    with the comments and blank lines just before it left out."""
    end = cursor_line + 1
    while end < len(smap.lines):
        if smap.is_statement_line(end):
            code = smap.code[end]
            if len(indent_of(code)) <= len(def_indent) and code.lstrip()[:1] not in ")]}":
                break
        end += 1
    while end > cursor_line + 1:
        previous = smap.lines[end - 1]
        trailing_comment = previous.lstrip().startswith("#") and len(indent_of(previous)) <= len(
            def_indent
        )
        if not (is_blank(previous) or trailing_comment):
            break
        end -= 1
    return end


def find_function(smap: SourceMap, line: int, character: int) -> FunctionShape | None:
    """The function whose body holds the cursor, or None (outside functions, in the header).

    Raises :class:`InsideDocstring` when the cursor is in the docstring or it is unterminated.
    """
    cursor_text = smap.lines[line].rstrip("\r\n")
    line_prefix = cursor_text[:character]
    cursor_offset = smap.offsets[line] + character
    def_line = _find_def(smap, line, line_prefix)
    if def_line is None:
        return None
    def_text = smap.lines[def_line]
    def_indent = indent_of(def_text)
    indent_unit = "\t" if def_indent.startswith("\t") else "    "
    header_end = smap.header_end(def_line)
    header_end_offset = smap.offsets[header_end] + len(smap.code[header_end].rstrip())
    if cursor_offset < header_end_offset or header_end > line:
        return None

    docstring: str | None = None
    body_start_offset = header_end_offset
    first_body = header_end + 1
    while first_body < len(smap.lines) and is_blank(smap.lines[first_body]) and first_body < line:
        first_body += 1
    body_indent = ""
    if first_body < len(smap.lines) and not is_blank(smap.lines[first_body]):
        indent = indent_of(smap.lines[first_body])
        if len(indent) > len(def_indent):
            body_indent = indent
            if _DOCSTRING_START_RE.match(smap.lines[first_body]):
                span = _docstring_span(smap, first_body)
                if span is None:
                    raise InsideDocstring
                docstring_end, docstring = span
                if cursor_offset < docstring_end:
                    raise InsideDocstring
                body_start_offset = docstring_end
    if not body_indent:
        body_indent = def_indent + indent_unit

    start_line = decorated_start(smap, def_line)
    scopes = tuple(_enclosing_scopes(smap, start_line, def_indent))
    top_start = scopes[0].start if scopes else start_line
    top_header = scopes[0].header if scopes else def_line
    top_end = max(smap.block_end(top_header, 0), line + 1)
    match = _DEF_RE.match(def_text)
    assert match is not None
    return FunctionShape(
        name=match.group("name"),
        start_line=start_line,
        def_line=def_line,
        header_end=header_end,
        def_indent=def_indent,
        body_indent=body_indent,
        indent_unit=indent_unit,
        docstring=docstring,
        body_start_offset=body_start_offset,
        end_line=_function_end(smap, line, def_indent),
        scopes=scopes,
        top_start=top_start,
        top_end=top_end,
    )


def ends_header_or_docstring(source: str, cursor_offset: int, body_start_offset: int) -> bool:
    """True when only whitespace/comments lie between the header or docstring and the cursor."""
    between = source[body_start_offset:cursor_offset]
    return all(not part.strip() or part.lstrip().startswith("#") for part in between.split("\n"))


def next_indent(smap: SourceMap, line: int, header_end: int, body_start_offset: int) -> str | None:
    """Indentation a new line at ``line`` should get from the body line above it."""
    for index in range(line - 1, header_end, -1):
        text = smap.lines[index]
        if is_blank(text) or index in smap.in_string:
            continue
        if smap.offsets[index] + len(text) <= body_start_offset:
            return None  # only the docstring above: body level
        code = smap.code[index].rstrip()
        if not code.strip():
            continue  # a comment line
        first = statement_start(smap, index)
        indent = indent_of(smap.lines[first])
        if code.endswith(":"):
            unit = "\t" if indent.startswith("\t") else "    "
            return indent + unit
        return indent
    return None


def bracket_depth(smap: SourceMap, start_offset: int, end_offset: int) -> int:
    """Brackets opened and not closed between two offsets (strings and comments ignored)."""
    first = smap.line_at(start_offset)
    last = smap.line_at(end_offset)
    depth = 0
    for index in range(first, last + 1):
        begin = start_offset - smap.offsets[index] if index == first else 0
        end = end_offset - smap.offsets[index] if index == last else len(smap.code[index])
        code = smap.code[index][max(0, begin) : end]
        depth += sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")
        depth = max(depth, 0)
    return depth
