"""Context: find the function at the cursor and build the model prompt for its body.

The cursor may be anywhere a body is being written: after the docstring, in a partial body,
mid-line, in a method, in a nested, ``async`` or decorated function. The prompt is the file
context that matters (``server.prompt_builder``: enclosing scopes in place, imports, workspace
signatures, helpers the function mentions, constants) within a token budget, then the function
from its first decorator to the cursor. Lines are counted the way LSP counts them (``\\n``
only, ``server.source_scan``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# Re-exported: the function with a body, as the candidate policy builds it.
from evalkit.candidate_policy import function_source as function_source
from server.prompt_builder import build_module_context, enclosing_context, top_level_blocks
from server.site_finder import (
    InsideDocstring,
    Scope,
    bracket_depth,
    ends_header_or_docstring,
    find_function,
    next_indent,
)
from server.source_scan import SourceMap, indent_of

_WORD_RE = re.compile(r"[A-Za-z_]\w*")

#: Reads a workspace file for cross-file context: (document path, module names) -> stubs.
StubReader = Callable[[SourceMap, set[str]], str]


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
    module_context: str  # imports, workspace signatures, constants, helpers
    function_prefix: str  # from the def (after a method's ``class`` line) to the prompt's end
    prompt: str
    suffix: str  # text after the cursor up to the end of the function
    consumed_prefix: str  # whitespace between the prompt's end and the cursor
    insert_prefix: str  # "\n" when the cursor sits at the end of the header/docstring line
    next_line_indent: str | None  # indentation the first full line of a body should have
    starts_at_line: bool  # the continuation begins at the start of a line
    cursor_line: int
    cursor_character: int
    rest_of_line: str  # text on the cursor line after the cursor
    enclosing_context: str = ""  # the class / outer function around the function, in place
    scopes: tuple[Scope, ...] = ()  # enclosing blocks, outermost first
    start_line: int = 0  # first decorator line (or the def line)
    end_line: int = 0  # first line after the function
    top_start: int = 0  # the top-level statement holding the function (lines)
    top_end: int = 0
    open_brackets: int = 0  # brackets the body opened before the cursor and did not close
    cursor_offset: int = 0
    document: str = field(default="", repr=False, compare=False)

    @property
    def is_method(self) -> bool:
        return bool(self.scopes) and self.scopes[-1].kind == "class"

    @property
    def is_nested(self) -> bool:
        return any(scope.kind == "def" for scope in self.scopes)

    @property
    def text_after_cursor(self) -> str:
        """Everything after the cursor to the end of the document (a FIM suffix)."""
        return self.document[self.cursor_offset :]


def find_completion_site(
    source: str,
    line: int,
    character: int,
    *,
    context_tokens: int = 768,
    count_tokens: Callable[[str], int] | None = None,
    workspace_stubs: StubReader | None = None,
) -> CompletionSite | None:
    """The completion site at ``(line, character)`` (0-based; lines split at ``\\n`` only,
    characters in code points), or None.

    None means "no body wanted here": outside any function, inside the header or inside the
    docstring.
    """
    from model.protocol import estimate_tokens

    count = count_tokens or estimate_tokens
    smap = SourceMap(source)
    lines = smap.lines
    if line >= len(lines) or line < 0:
        return None
    cursor_text = lines[line].rstrip("\r\n")
    character = max(0, min(character, len(cursor_text)))
    line_prefix = cursor_text[:character]
    rest_of_line = cursor_text[character:]
    cursor_offset = smap.offsets[line] + character
    try:
        shape = find_function(smap, line, character)
    except InsideDocstring:
        return None
    if shape is None:
        return None
    def_indent, body_indent = shape.def_indent, shape.body_indent

    suffix = rest_of_line + ("\n" if lines[line].endswith("\n") else "")
    suffix += "".join(lines[line + 1 : shape.end_line])

    at_line_start = not line_prefix.strip()
    insert_prefix = ""
    consumed_prefix = ""
    next_line_indent: str | None
    if at_line_start:
        prompt_end = smap.offsets[line]
        consumed_prefix = line_prefix
        computed = next_indent(smap, line, shape.header_end, shape.body_start_offset)
        computed = computed or body_indent
        if len(line_prefix) >= len(body_indent) and line_prefix.startswith(body_indent[:1]):
            next_line_indent = line_prefix
        else:
            next_line_indent = computed
        starts_at_line = True
    elif (
        not rest_of_line.strip()
        and cursor_offset >= shape.body_start_offset
        and ends_header_or_docstring(source, cursor_offset, shape.body_start_offset)
    ):
        # Cursor right after the header/docstring: the body starts on the next line. Prompt
        # with the newline (the way the model saw functions in training) and insert it.
        prompt_end = cursor_offset
        insert_prefix = "\n"
        next_line_indent = body_indent
        starts_at_line = True
    else:
        prompt_end = cursor_offset
        cursor_indent = indent_of(line_prefix)
        stripped_code = smap.code[line][:character].rstrip()
        next_line_indent = (
            cursor_indent + shape.indent_unit if stripped_code.endswith(":") else cursor_indent
        )
        starts_at_line = False

    start_offset = smap.offsets[shape.start_line]
    own_text = source[start_offset:prompt_end] + insert_prefix
    function_prefix = own_text
    class_scope = shape.scopes[-1] if shape.scopes and shape.scopes[-1].kind == "class" else None
    if class_scope is not None:
        # The class line lets function_source recognise (and drop) the method's class.
        function_prefix = smap.lines[class_scope.header].rstrip("\r\n") + "\n" + own_text

    function_text = source[start_offset : smap.offsets[min(shape.end_line, len(lines) - 1)]]
    mentioned = set(_WORD_RE.findall(function_text + (shape.docstring or "")))
    mentioned.discard(shape.name)
    budget = max(0, context_tokens - count(own_text))
    enclosing = enclosing_context(smap, shape, budget, count)
    budget = max(0, budget - count(enclosing)) if enclosing else budget
    stubs = workspace_stubs(smap, mentioned) if workspace_stubs is not None else ""
    blocks = top_level_blocks(smap, range(shape.top_start, shape.top_end))
    module_context = build_module_context(blocks, mentioned, budget, count, stubs)
    open_brackets = bracket_depth(smap, shape.body_start_offset, cursor_offset)
    return CompletionSite(
        function_name=shape.name,
        def_line=shape.def_line,
        def_indent=def_indent,
        body_indent=body_indent,
        indent_unit=shape.indent_unit,
        docstring=shape.docstring,
        module_context=module_context,
        function_prefix=function_prefix,
        prompt=module_context + enclosing + own_text,
        suffix=suffix,
        consumed_prefix=consumed_prefix,
        insert_prefix=insert_prefix,
        next_line_indent=next_line_indent,
        starts_at_line=starts_at_line,
        cursor_line=line,
        cursor_character=character,
        rest_of_line=rest_of_line,
        enclosing_context=enclosing,
        scopes=shape.scopes,
        start_line=shape.start_line,
        end_line=shape.end_line,
        top_start=shape.top_start,
        top_end=shape.top_end,
        open_brackets=open_brackets,
        cursor_offset=cursor_offset,
        document=source,
    )
