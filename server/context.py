"""Context: find the function at the cursor and build the model prompt for its body.

Works line by line (indentation + a few regular expressions) rather than with ``ast``, because
the file being edited rarely parses: the body under the cursor is exactly what is missing. The
prompt is the file context that matters (imports, module constants, helpers the docstring or
signature mention) within a token budget, then the function from its ``def`` line to the cursor.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

# Re-exported: the function with a body, as the candidate policy builds it.
from evalkit.candidate_policy import function_source as function_source

_DEF_RE = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?def[ \t]+(?P<name>\w+)[ \t]*\(")
_TOP_DEF_RE = re.compile(r"^(?:async[ \t]+)?(?:def|class)[ \t]+(?P<name>\w+)")
_IMPORT_RE = re.compile(r"^(?:import|from)[ \t]+[\w.]")
_CONSTANT_RE = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)[ \t]*(?::[^=]+)?=(?!=)")
_DOCSTRING_START_RE = re.compile(r"^[ \t]*(?P<prefix>[rRuU]?)(?P<quote>\"\"\"|'''|\"|')")
_CLASS_RE = re.compile(r"^(?P<indent>[ \t]*)class[ \t]+\w+")
_WORD_RE = re.compile(r"[A-Za-z_]\w*")
_STRING_RE = re.compile(r"\"\"\".*?\"\"\"|'''.*?'''|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'")


@dataclass(frozen=True, kw_only=True)
class CompletionSite:
    """Where a body is wanted, and everything later stages need to know about it.

    Candidate texts are "continuations": what the model writes right after ``prompt``. The
    editor inserts ``insert_prefix + continuation[len(consumed_prefix):]`` at the cursor.
    """

    function_name: str
    def_line: int  # 0-based line of the ``def``
    def_indent: str
    body_indent: str
    indent_unit: str
    docstring: str | None
    module_context: str  # imports, constants, helpers (also the doctest prelude)
    function_prefix: str  # from the def line to where the prompt ends
    prompt: str
    suffix: str  # text after the cursor up to the end of the function
    consumed_prefix: str  # whitespace between the prompt's end and the cursor
    insert_prefix: str  # "\n" when the cursor sits at the end of the header/docstring line
    next_line_indent: str | None  # indentation the first full line of a body should have
    starts_at_line: bool  # the continuation begins at the start of a line
    cursor_line: int
    cursor_character: int
    rest_of_line: str  # text on the cursor line after the cursor

    @property
    def is_method(self) -> bool:
        return bool(self.def_indent)


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _is_blank(line: str) -> bool:
    return not line.strip()


def _strip_code_line(line: str) -> str:
    """The line with string literals and comments removed (for bracket counting)."""
    without_strings = _STRING_RE.sub('""', line)
    return without_strings.split("#", 1)[0]


def _bracket_delta(line: str) -> int:
    code = _strip_code_line(line)
    return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")


def _statement_end(lines: list[str], start: int) -> int:
    """Index of the last line of the (possibly multi-line) statement starting at ``start``."""
    depth = 0
    index = start
    while index < len(lines):
        depth += _bracket_delta(lines[index])
        continues = lines[index].rstrip("\r\n").endswith("\\")
        if depth <= 0 and not continues:
            return index
        index += 1
    return len(lines) - 1


def _find_def(lines: list[str], cursor_line: int, cursor_line_prefix: str) -> int | None:
    """The ``def`` line enclosing the cursor: the nearest one above it less indented than
    everything between it and the cursor."""
    min_indent: int | None = None
    if cursor_line_prefix.strip():
        min_indent = len(_indent_of(cursor_line_prefix))
    for index in range(cursor_line, -1, -1):
        line = cursor_line_prefix if index == cursor_line else lines[index]
        if _is_blank(line):
            continue
        indent = len(_indent_of(line))
        match = _DEF_RE.match(line)
        if match and (min_indent is None or indent < min_indent or index == cursor_line):
            return index
        if min_indent is None or indent < min_indent:
            min_indent = indent
        if min_indent == 0 and index != cursor_line:
            # A top-level statement that is not a def: the cursor is not inside a function.
            return None
    return None


def _docstring_span(
    source: str, lines: list[str], line_offsets: list[int], first_line: int
) -> tuple[int, str | None] | None:
    """Where the docstring starting at ``first_line`` ends (offset) and its value.

    Returns None when the docstring is not closed (the cursor is probably inside it).
    """
    match = _DOCSTRING_START_RE.match(lines[first_line])
    if match is None:
        return None
    quote = match.group("quote")
    start = line_offsets[first_line] + match.start("prefix")
    body_start = line_offsets[first_line] + match.end("quote")
    if len(quote) == 3:
        end = source.find(quote, body_start)
        while end != -1 and source[end - 1] == "\\":
            end = source.find(quote, end + 1)
    else:
        line_end = line_offsets[first_line] + len(lines[first_line])
        end = source.find(quote, body_start, line_end)
    if end == -1:
        return None
    end += len(quote)
    literal = source[start:end]
    try:
        value = ast.literal_eval(literal)
    except (SyntaxError, ValueError):
        value = None
    return end, value if isinstance(value, str) else None


def _header_end(lines: list[str], def_line: int) -> int:
    """Last line of a (possibly multi-line) ``def`` header: brackets balanced, ends with ':'."""
    depth = 0
    for index in range(def_line, len(lines)):
        depth += _bracket_delta(lines[index])
        code = _strip_code_line(lines[index]).rstrip()
        if depth <= 0 and code.endswith(":"):
            return index
    return len(lines) - 1


def _top_level_blocks(lines: list[str], skip: range) -> list[tuple[str, str, str]]:
    """Top-level ``(kind, name, source)`` items of the file outside ``skip`` lines."""
    blocks: list[tuple[str, str, str]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if index in skip or _is_blank(line) or line[0] in " \t#":
            index += 1
            continue
        if _IMPORT_RE.match(line):
            end = _statement_end(lines, index)
            blocks.append(("import", "", "".join(lines[index : end + 1])))
            index = end + 1
            continue
        constant = _CONSTANT_RE.match(line)
        if constant:
            end = _statement_end(lines, index)
            blocks.append(("constant", constant.group("name"), "".join(lines[index : end + 1])))
            index = end + 1
            continue
        start = index
        while index < len(lines) and lines[index].startswith("@"):
            index = _statement_end(lines, index) + 1
        if index < len(lines) and (definition := _TOP_DEF_RE.match(lines[index])):
            end = index + 1
            while end < len(lines) and end not in skip:
                candidate = lines[end]
                if not _is_blank(candidate) and candidate[0] not in " \t)]}":
                    break
                end += 1
            while end > index + 1 and _is_blank(lines[end - 1]):
                end -= 1
            blocks.append(("definition", definition.group("name"), "".join(lines[start:end])))
            index = end
            continue
        index = max(index, start + 1)
    return blocks


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def build_module_context(
    lines: list[str],
    function_lines: range,
    mentioned: set[str],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> str:
    """Imports, then helpers the function mentions, then constants — as many as fit."""
    blocks = _top_level_blocks(lines, function_lines)
    imports = [source for kind, _name, source in blocks if kind == "import"]
    helpers = [
        source for kind, name, source in blocks if kind == "definition" and name in mentioned
    ]
    constants = [source for kind, name, source in blocks if kind == "constant"]
    # Mentioned constants first, then the rest: they are cheap and often used by a body.
    constants.sort(key=lambda source: _CONSTANT_RE.match(source).group("name") not in mentioned)  # type: ignore[union-attr]
    chosen: dict[int, tuple[str, str]] = {}
    order = {id(source): position for position, (_k, _n, source) in enumerate(blocks)}
    kinds = {id(source): kind for kind, _n, source in blocks}
    used = 0
    for source in [*imports, *helpers, *constants]:
        cost = count_tokens(source)
        if used + cost > budget_tokens:
            continue
        used += cost
        chosen[order[id(source)]] = (kinds[id(source)], source.rstrip("\n") + "\n")
    if not chosen:
        return ""
    # The file's own order, laid out the PEP 8 way: groups apart, two blank lines around defs.
    text = ""
    previous_kind = ""
    for position in sorted(chosen):
        kind, source = chosen[position]
        if previous_kind and "definition" in (kind, previous_kind):
            text += "\n\n"
        elif previous_kind and kind != previous_kind:
            text += "\n"
        text += source
        previous_kind = kind
    return text + "\n\n"


def find_completion_site(
    source: str,
    line: int,
    character: int,
    *,
    context_tokens: int = 768,
    count_tokens: Callable[[str], int] | None = None,
) -> CompletionSite | None:
    """The completion site at ``(line, character)`` (0-based, in characters), or None.

    None means "no body wanted here": outside any function, inside the header or inside the
    docstring.
    """
    from model.protocol import estimate_tokens

    count = count_tokens or estimate_tokens
    lines = source.splitlines(keepends=True)
    if not lines or source.endswith(("\n", "\r")):
        lines.append("")
    if line >= len(lines):
        return None
    line_offsets: list[int] = []
    offset = 0
    for text in lines:
        line_offsets.append(offset)
        offset += len(text)
    cursor_text = lines[line].rstrip("\r\n")
    character = min(character, len(cursor_text))
    line_prefix = cursor_text[:character]
    rest_of_line = cursor_text[character:]
    cursor_offset = line_offsets[line] + character

    def_line = _find_def(lines, line, line_prefix)
    if def_line is None:
        return None
    def_indent = _indent_of(lines[def_line])
    indent_unit = "\t" if def_indent.startswith("\t") else "    "
    header_end = _header_end(lines, def_line)
    header_end_offset = line_offsets[header_end] + len(_strip_code_line(lines[header_end]).rstrip())
    if cursor_offset < header_end_offset or header_end > line:
        return None

    # Docstring: the first statement after the header, when it is a string literal.
    docstring: str | None = None
    body_start_offset = header_end_offset
    first_body = header_end + 1
    while first_body < len(lines) and _is_blank(lines[first_body]) and first_body < line:
        first_body += 1
    body_indent = ""
    if first_body < len(lines) and not _is_blank(lines[first_body]):
        indent = _indent_of(lines[first_body])
        if len(indent) > len(def_indent):
            body_indent = indent
            if _DOCSTRING_START_RE.match(lines[first_body]):
                span = _docstring_span(source, lines, line_offsets, first_body)
                if span is None:
                    return None  # unterminated docstring: the user is still writing it
                docstring_end, docstring = span
                if cursor_offset < docstring_end:
                    return None
                body_start_offset = docstring_end
    if not body_indent:
        body_indent = def_indent + indent_unit

    # Function end: the first non-blank line after the cursor at or left of the def's indent.
    end_line = line + 1
    while end_line < len(lines):
        text = lines[end_line]
        if not _is_blank(text) and len(_indent_of(text)) <= len(def_indent):
            break
        end_line += 1
    suffix = rest_of_line + ("\n" if lines[line].endswith("\n") else "")
    suffix += "".join(lines[line + 1 : end_line])

    def_start_offset = line_offsets[def_line]
    at_line_start = not line_prefix.strip()
    insert_prefix = ""
    consumed_prefix = ""
    next_line_indent: str | None
    if at_line_start:
        prompt_end = line_offsets[line]
        consumed_prefix = line_prefix
        computed = _next_indent(lines, line, header_end, body_start_offset, line_offsets)
        computed = computed or body_indent
        if len(line_prefix) >= len(body_indent) and line_prefix.startswith(body_indent[:1]):
            next_line_indent = line_prefix
        else:
            next_line_indent = computed
        starts_at_line = True
    elif (
        not rest_of_line.strip()
        and cursor_offset >= body_start_offset
        and (_ends_header_or_docstring(source, cursor_offset, body_start_offset))
    ):
        # Cursor right after the header/docstring: the body starts on the next line. Prompt
        # with the newline (the way the model saw functions in training) and insert it.
        prompt_end = cursor_offset
        insert_prefix = "\n"
        next_line_indent = body_indent
        starts_at_line = True
    else:
        prompt_end = cursor_offset
        stripped_code = _strip_code_line(line_prefix).rstrip()
        cursor_indent = _indent_of(line_prefix)
        next_line_indent = (
            cursor_indent + indent_unit if stripped_code.endswith(":") else (cursor_indent)
        )
        starts_at_line = False

    function_prefix = source[def_start_offset:prompt_end] + insert_prefix
    if def_indent:
        function_prefix = _enclosing_header(lines, def_line, def_indent) + function_prefix

    header_and_doc = source[def_start_offset:body_start_offset] + (docstring or "")
    mentioned = set(_WORD_RE.findall(header_and_doc))
    function_name = _DEF_RE.match(lines[def_line]).group("name")  # type: ignore[union-attr]
    mentioned.discard(function_name)
    budget = max(0, context_tokens - count(function_prefix))
    module_context = build_module_context(
        lines, range(def_line, end_line), mentioned, budget, count
    )
    return CompletionSite(
        function_name=function_name,
        def_line=def_line,
        def_indent=def_indent,
        body_indent=body_indent,
        indent_unit=indent_unit,
        docstring=docstring,
        module_context=module_context,
        function_prefix=function_prefix,
        prompt=module_context + function_prefix,
        suffix=suffix,
        consumed_prefix=consumed_prefix,
        insert_prefix=insert_prefix,
        next_line_indent=next_line_indent,
        starts_at_line=starts_at_line,
        cursor_line=line,
        cursor_character=character,
        rest_of_line=rest_of_line,
    )


def _ends_header_or_docstring(source: str, cursor_offset: int, body_start_offset: int) -> bool:
    """True when only whitespace/comments lie between the header or docstring and the cursor."""
    between = source[body_start_offset:cursor_offset]
    return all(not part.strip() or part.lstrip().startswith("#") for part in between.split("\n"))


def _next_indent(
    lines: list[str],
    line: int,
    header_end: int,
    body_start_offset: int,
    line_offsets: list[int],
) -> str | None:
    """Indentation a new line at ``line`` should get from the body line above it."""
    for index in range(line - 1, header_end, -1):
        text = lines[index]
        if _is_blank(text):
            continue
        if line_offsets[index] + len(text) <= body_start_offset:
            return None  # only the docstring above: body level
        code = _strip_code_line(text).rstrip()
        indent = _indent_of(text)
        if code.endswith(":"):
            unit = "\t" if indent.startswith("\t") else "    "
            return indent + unit
        return indent
    return None


def _enclosing_header(lines: list[str], def_line: int, def_indent: str) -> str:
    """For a method: the ``class …:`` line that encloses it, so the prompt's indentation makes
    sense to the model."""
    for index in range(def_line - 1, -1, -1):
        match = _CLASS_RE.match(lines[index])
        if match and len(match.group("indent")) < len(def_indent):
            return lines[index] if lines[index].endswith("\n") else lines[index] + "\n"
    return ""
