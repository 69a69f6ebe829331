"""What the doctest sandbox runs for a site in a real file: the module prelude and programs.

The prelude is the document's other top-level statements, each on its own behind a
``try``, so one that fails there (``import httpx`` without httpx, ``from .helpers import …``
outside a package) is skipped instead of failing every candidate. The names such statements
bind are "may be missing": an example that fails only because one of them is undefined is
*unverifiable*, not failed. A method's program is its class with the method replaced by the
candidate; a nested function's is the function alone, the outer function's names being "may
be missing" too. A virtualenv's site-packages, when given, are added to ``sys.path`` first.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.context import CompletionSite
from server.prompt_builder import top_level_blocks
from server.source_scan import SourceMap

_WORD_RE = re.compile(r"[A-Za-z_]\w*")
_MAIN_GUARD_RE = re.compile(r"^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:")


@dataclass(frozen=True)
class DoctestPlan:
    """Everything one doctest run needs, besides the examples."""

    prelude: str
    programs: list[str | None]  # one per candidate; None: it cannot be run (see build_plan)
    may_be_missing: frozenset[str]  # names (and "module:x" for modules) a skip can leave out


def _bound_names(node: ast.AST) -> set[str]:
    """Names a top-level statement binds (imports, assignments, definitions), also inside
    ``if``/``try`` blocks."""
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            for alias in child.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
            if isinstance(child, ast.Import):
                names.update(f"module:{alias.name.split('.')[0]}" for alias in child.names)
            elif child.module and not child.level:
                names.add(f"module:{child.module.split('.')[0]}")
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(child.name)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
    return names


def _module_statements(site: CompletionSite) -> list[ast.stmt]:
    """The document's top-level statements outside the one holding the cursor."""
    lines = site.document.split("\n")
    blanked = [
        "" if site.top_start <= index < site.top_end else line for index, line in enumerate(lines)
    ]
    try:
        return list(ast.parse("\n".join(blanked)).body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    # Broken elsewhere too: take the statements one by one, dropping those that do not parse.
    statements: list[ast.stmt] = []
    smap = SourceMap(site.document)
    for block in top_level_blocks(smap, range(site.top_start, site.top_end)):
        try:
            statements += ast.parse(block.source).body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return statements


def _is_main_guard(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.If) and bool(
        _MAIN_GUARD_RE.match(ast.unparse(statement).split("\n", 1)[0])
    )


def build_prelude(site: CompletionSite, site_packages: str | None) -> tuple[str, set[str], bool]:
    """The prelude, the names its statements bind, and whether the module uses
    ``from __future__ import annotations``."""
    futures: list[ast.stmt] = []
    body: list[ast.stmt] = []
    names: set[str] = set()
    for statement in _module_statements(site):
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            futures.append(statement)
            continue
        if _is_main_guard(statement) or (
            isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        ):
            continue  # the module docstring (and bare constants) define nothing
        names |= _bound_names(statement)
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), body=[ast.Pass()])
        body.append(ast.Try(body=[statement], handlers=[handler], orelse=[], finalbody=[]))
    head = ast.unparse(ast.Module(body=futures, type_ignores=[])) + "\n" if futures else ""
    if site_packages:
        # addsitedir also reads the .pth files (editable installs) of the environment.
        head += f"import site as _docomplete_site\n_docomplete_site.addsitedir({site_packages!r})\n"
    module = ast.fix_missing_locations(ast.Module(body=body, type_ignores=[]))
    future_annotations = any(
        alias.name == "annotations"
        for statement in futures
        for alias in getattr(statement, "names", [])
    )
    return head + ast.unparse(module) + "\n", names, future_annotations


def _enclosing_names(site: CompletionSite) -> set[str]:
    """Identifiers of the outer functions around a nested one (their parameters and locals)."""
    names: set[str] = set()
    lines = site.document.split("\n")
    for scope in site.scopes:
        if scope.kind == "def":
            names.update(_WORD_RE.findall("\n".join(lines[scope.header : site.start_line])))
    return names


def _dedent(text: str, indent: str) -> str:
    if not indent:
        return text
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line
        for line in text.splitlines(keepends=True)
    )


def method_program(site: CompletionSite, continuation: str) -> str | None:
    """The class around a method, with the method replaced by ``continuation``'s method, at
    module level; None when that does not compile (another member is broken)."""
    scope = site.scopes[-1]
    smap = SourceMap(site.document)
    class_end = smap.block_end(scope.header, len(scope.indent))
    method = site.function_prefix.split("\n", 1)[1] + continuation
    if not site.starts_at_line:
        method += site.rest_of_line
    if not method.endswith("\n"):
        method += "\n"
    before = "".join(smap.lines[scope.start : site.start_line])
    after = "".join(smap.lines[site.end_line : max(class_end, site.end_line)])
    program = _dedent(before + method + after, scope.indent)
    try:
        compile(program, "<class>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return program


def build_plan(
    site: CompletionSite,
    sources: Sequence[str],
    continuations: Sequence[str],
    *,
    site_packages: str | None = None,
) -> DoctestPlan:
    """The prelude and one program per candidate (``sources`` are the dedented functions); a
    method whose class does not compile around it gets None (its examples cannot run)."""
    prelude, names, future_annotations = build_prelude(site, site_packages)
    names |= _enclosing_names(site)
    # A dedented source lost nothing but its indentation; the module's future import applies.
    head = "from __future__ import annotations\n" if future_annotations else ""
    programs: list[str | None]
    if site.is_method:
        programs = [method_program(site, text) for text in continuations]
    else:
        programs = list(sources)
    return DoctestPlan(
        prelude,
        [head + program if program is not None else None for program in programs],
        frozenset(names),
    )
