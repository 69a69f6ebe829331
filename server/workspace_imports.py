"""Light cross-file context: signatures and docstrings of what a function imports from the
workspace (``from .helpers import slugify``, ``from . import helpers``, ``import pkg.util``).

Only names the function mentions are looked up, only modules found as files next to the
document or under the workspace root are read (an open editor buffer wins over the disk), and
what comes back is a stub: decorators, header, docstring, ``...``.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path

from server.source_scan import SourceMap

MAX_FILE_BYTES = 256 << 10
MAX_STUB_CHARS = 1600  # all stubs together: the context budget decides the rest
MAX_CLASS_METHODS = 8

_FROM_RE = re.compile(r"^from[ \t]+(?P<dots>\.*)(?P<module>[\w.]*)[ \t]+import[ \t]+(?P<names>.+)$")
_IMPORT_RE = re.compile(r"^import[ \t]+(?P<names>.+)$")

ReadText = Callable[[Path], str | None]


def read_file(path: Path) -> str | None:
    """A workspace file's text, or None (missing, too large, not text)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _imports(smap: SourceMap) -> list[tuple[int, str, list[tuple[str, str]]]]:
    """Top-level imports as (level, module, [(imported name, local name)])."""
    found: list[tuple[int, str, list[tuple[str, str]]]] = []
    for index, line in enumerate(smap.lines):
        if not line.startswith(("from", "import")) or not smap.is_statement_line(index):
            continue
        end = smap.statement_end(index)
        statement = (
            " ".join(code.strip().rstrip("\\") for code in smap.code[index : end + 1])
            .replace("(", " ")
            .replace(")", " ")
        )
        pairs: list[tuple[str, str]] = []
        if match := _FROM_RE.match(statement):
            for part in match.group("names").split(","):
                words = part.split()
                if words and words[0] != "*":
                    pairs.append((words[0], words[-1]))
            found.append((len(match.group("dots")), match.group("module"), pairs))
        elif match := _IMPORT_RE.match(statement):
            for part in match.group("names").split(","):
                words = part.split()
                if words:
                    found.append((0, words[0], [("", words[-1].split(".")[0])]))
    return found


class WorkspaceStubs:
    """Builds the stubs for one document; callable as ``server.context.StubReader``."""

    def __init__(
        self, document: Path, workspace_root: Path | None, read_text: ReadText = read_file
    ) -> None:
        self.document = document
        self.root = workspace_root
        self.read_text = read_text

    def _allowed(self, path: Path) -> bool:
        bounds = [self.document.parent] + ([self.root] if self.root else [])
        resolved = Path(os.path.normpath(path))
        return any(resolved.is_relative_to(bound) for bound in bounds)

    def _module_file(self, level: int, dotted: str) -> Path | None:
        parts = [part for part in dotted.split(".") if part]
        if level:
            bases = [self.document.parent.joinpath(*([".."] * (level - 1)))]
        else:
            bases = [self.document.parent] + ([self.root, self.root / "src"] if self.root else [])
        for base in bases:
            stem = base.joinpath(*parts) if parts else base
            for path in (stem.with_suffix(".py") if parts else None, stem / "__init__.py"):
                if path is not None and self._allowed(path) and self.read_text(path) is not None:
                    return path
        return None

    def _tree(self, path: Path) -> tuple[ast.Module, list[str]] | None:
        text = self.read_text(path)
        if text is None:
            return None
        try:
            return ast.parse(text), text.split("\n")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def __call__(self, smap: SourceMap, mentioned: set[str]) -> str:
        stubs: list[str] = []
        for level, module, pairs in _imports(smap):
            if not level and not self._inside_workspace(module):
                continue
            for imported, local in pairs:
                if local not in mentioned:
                    continue
                if imported and (path := self._module_file(level, module)) is not None:
                    # ``from .helpers import slugify``: one name, unless it is a submodule.
                    stub = self._stubs_from(path, {imported}, f"{'.' * level}{module}")
                    if not stub and (sub := self._module_file(level, f"{module}.{imported}")):
                        stub = self._stubs_from(sub, mentioned, f"{'.' * level}{module}.{imported}")
                else:
                    dotted = f"{module}.{imported}" if imported else module
                    sub = self._module_file(level, dotted)
                    stub = self._stubs_from(sub, mentioned, "." * level + dotted) if sub else ""
                if stub:
                    stubs.append(stub)
        text = "\n\n".join(stubs)
        return text[:MAX_STUB_CHARS].rsplit("\n\n", 1)[0] if len(text) > MAX_STUB_CHARS else text

    def _inside_workspace(self, module: str) -> bool:
        """An absolute import names a workspace module only when its file is found here."""
        return self._module_file(0, module.split(".")[0]) is not None or (
            self._module_file(0, module) is not None
        )

    def _stubs_from(self, path: Path, names: set[str], label: str) -> str:
        parsed = self._tree(path)
        if parsed is None:
            return ""
        tree, lines = parsed
        pieces = [
            _stub(node, lines)
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name in names
        ]
        if not pieces:
            return ""
        return f"# {label}\n" + "\n\n".join(pieces)


def _header_and_doc(node: ast.AST, lines: list[str]) -> str:
    """Decorators, header and docstring lines of a def/class, ending with a newline."""
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body[0]
    has_doc = (
        isinstance(body, ast.Expr)
        and isinstance(body.value, ast.Constant)
        and isinstance(body.value.value, str)
    )
    last = (body.end_lineno or body.lineno) if has_doc else body.lineno - 1
    if not has_doc and body.lineno == node.lineno:  # ``def f(): return 1`` on one line
        return lines[node.lineno - 1].split(":", 1)[0] + ":\n"
    return "\n".join(lines[first - 1 : last]) + "\n"


def _stub(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str]) -> str:
    text = _header_and_doc(node, lines)
    indent = " " * (node.body[0].col_offset)
    if isinstance(node, ast.ClassDef):
        methods = [
            child
            for child in node.body
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            and (not child.name.startswith("_") or child.name == "__init__")
        ][:MAX_CLASS_METHODS]
        for method in methods:
            text += (
                "\n" + _header_and_doc(method, lines) + " " * method.body[0].col_offset + "...\n"
            )
        return text if methods else text + indent + "...\n"
    return text + indent + "...\n"
