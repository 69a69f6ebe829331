"""A HumanEval prompt as the editor sees it: a written signature + docstring, cursor at the body.

:func:`site_for_prompt` builds the candidate policy's :class:`~evalkit.candidate_policy.Site`
from a prompt, the way ``server.context.find_completion_site`` builds it from a file: the
``def`` line's indentation (for the scope cut), the indentation the body should start at, the
docstring (for its ``>>>`` examples) and the code above the function (imports, helpers), which
is the prelude the examples run with.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_DEF_RE = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?def[ \t]+(?P<name>\w+)[ \t]*\(", re.M)


@dataclass(frozen=True, kw_only=True)
class PromptSite:
    """The completion site at the end of a prompt (satisfies ``candidate_policy.Site``)."""

    function_name: str
    def_indent: str
    body_indent: str
    docstring: str | None
    module_context: str  # the prompt above the function: the doctest prelude
    function_prefix: str  # the prompt from the def line on
    next_line_indent: str | None
    starts_at_line: bool
    suffix: str = ""
    rest_of_line: str = ""

    @property
    def is_method(self) -> bool:
        return bool(self.def_indent)


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _function_node(prompt: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return None
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            found = node  # the last one, like the entry point of a prompt with helpers
    return found


def site_for_prompt(prompt: str, entry_point: str | None = None) -> PromptSite:
    """The site for a body that continues ``prompt`` (the last ``def`` of ``entry_point``, or
    the last ``def`` of the prompt when it has no such function)."""
    matches = [m for m in _DEF_RE.finditer(prompt) if entry_point in (None, m.group("name"))]
    if not matches:
        matches = list(_DEF_RE.finditer(prompt))
    if not matches:
        # Not a function at all: the whole prompt is the "function", the body at one indent.
        return PromptSite(
            function_name=entry_point or "",
            def_indent="",
            body_indent="    ",
            docstring=None,
            module_context="",
            function_prefix=prompt,
            next_line_indent="    " if prompt.endswith("\n") else None,
            starts_at_line=prompt.endswith("\n"),
        )
    match = matches[-1]
    name = match.group("name")
    def_indent = match.group("indent")
    function_prefix = prompt[match.start() :]
    node = _function_node(prompt, name)
    docstring = ast.get_docstring(node, clean=False) if node is not None else None
    body_lines = function_prefix.split("\n")[1:]
    body_indent = def_indent + ("\t" if def_indent.startswith("\t") else "    ")
    for line in body_lines:
        if line.strip() and len(_indent_of(line)) > len(def_indent):
            body_indent = _indent_of(line)
            break
    last_line = prompt.rsplit("\n", 1)[-1]
    if not last_line.strip():
        # A prompt ending in a newline: the body starts on a fresh line. One ending in
        # indentation: the model goes on after it, as on a line already begun.
        starts_at_line = last_line == ""
        next_line_indent: str | None = _next_indent(node, body_lines, body_indent)
    else:
        # The prompt ends mid-line: the model continues that line first.
        starts_at_line = False
        code = last_line.split("#", 1)[0].rstrip()
        indent = _indent_of(last_line)
        next_line_indent = indent + "    " if code.endswith(":") else indent
    return PromptSite(
        function_name=name,
        def_indent=def_indent,
        body_indent=body_indent,
        docstring=docstring,
        module_context=prompt[: match.start()],
        function_prefix=function_prefix,
        next_line_indent=next_line_indent,
        starts_at_line=starts_at_line,
    )


def _next_indent(
    node: ast.FunctionDef | ast.AsyncFunctionDef | None, body_lines: list[str], body_indent: str
) -> str:
    """Indentation of the next line: body level after the docstring, else from the code above."""
    only_docstring = node is not None and len(node.body) == 1 and ast.get_docstring(node)
    if node is None or only_docstring:
        return body_indent
    for line in reversed(body_lines):
        if line.strip():
            indent = _indent_of(line)
            if line.split("#", 1)[0].rstrip().endswith(":"):
                return indent + "    "
            return indent if len(indent) >= len(body_indent) else body_indent
    return body_indent
