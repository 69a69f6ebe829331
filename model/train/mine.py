"""Mine every documented function and method of the corpus as a fine-tuning example, in context.

A top-level function's prompt carries what its body needs from the module: the import
statements, one-line constants, and short helpers (longer ones and classes as signature
stubs). A method's prompt is its class: the header, the class docstring, short class
attributes and every other member's signature, then the method itself. The completion is the
body. Functions whose names resolve nowhere (star imports, names bound only in other scopes)
are skipped. ``verify_doctests`` runs the doctests of the examples that have them in
evalkit's sandbox: first as the example itself, then (for what needs more of its module) in
the whole module, and keeps only those that pass.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import json
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_DOC_CHARS = 10
MAX_BODY_LINES = 60
MAX_ASSIGN_LINES = 10
MAX_CONTEXT_CHARS = 2500
MAX_CLASS_DOC_LINES = 12
MAX_MEMBER_STUBS = 12
SHORT_HELPER_LINES = 12
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__class__"}
_STDLIB = frozenset(sys.stdlib_module_names)
_FUNCS = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class ModuleIndex:
    """What a module binds at top level, and how to write each binding into a prompt."""

    lines: list[str]
    imports: dict[str, str] = field(default_factory=dict)  # name -> import statement
    stdlib: set[str] = field(default_factory=set)  # names imported from the stdlib
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = field(
        default_factory=dict
    )
    constants: dict[str, str] = field(default_factory=dict)  # name -> one-line assignment
    other: set[str] = field(default_factory=set)  # bound some other way (loops, multi-line)


def index_module(tree: ast.Module, lines: list[str]) -> ModuleIndex:
    index = ModuleIndex(lines)
    _index_block(index, tree.body)
    return index


def _index_block(index: ModuleIndex, body: Sequence[ast.stmt]) -> None:
    """Record the bindings of a top-level block, looking into ``try``/``if`` (the usual homes
    of optional imports); the first binding of a name wins."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            _index_import(index, node)
        elif isinstance(node, _FUNCS | ast.ClassDef):
            index.defs.setdefault(node.name, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            end = node.end_lineno or node.lineno
            text = textwrap.dedent("\n".join(index.lines[node.lineno - 1 : end]))
            small = end - node.lineno < MAX_ASSIGN_LINES and len(text) <= 600
            for name in (t.id for t in targets if isinstance(t, ast.Name)):
                if small:
                    index.constants.setdefault(name, text)
                else:
                    index.other.add(name)
        elif isinstance(node, ast.Try):
            _index_block(index, node.body)
            for handler in node.handlers:
                _index_block(index, handler.body)
            _index_block(index, node.orelse + node.finalbody)
        elif isinstance(node, ast.If) and "__name__" not in ast.unparse(node.test):
            _index_block(index, node.body + node.orelse)
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    index.other.add(sub.id)


def _index_import(index: ModuleIndex, node: ast.Import | ast.ImportFrom) -> None:
    module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
    for alias in node.names:
        if alias.name == "*":
            continue
        as_part = f" as {alias.asname}" if alias.asname else ""
        if isinstance(node, ast.Import):
            name = (alias.asname or alias.name).split(".")[0]
            statement = f"import {alias.name}{as_part}"
            top = alias.name.split(".")[0]
        else:
            name = alias.asname or alias.name
            statement = f"from {'.' * node.level}{module} import {alias.name}{as_part}"
            top = module.split(".")[0] if node.level == 0 else ""
        if name not in index.imports:
            index.imports[name] = statement
            if top in _STDLIB:
                index.stdlib.add(name)


def _bound_inside(func: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, _FUNCS | ast.ClassDef) and node is not func:
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
    return names


def free_names(func: ast.AST) -> list[str]:
    """Names the function reads that it does not bind and that are not builtins, in order."""
    local = _bound_inside(func)
    seen: list[str] = []
    for node in ast.walk(func):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        if node.id not in local and node.id not in _BUILTINS and node.id not in seen:
            seen.append(node.id)
    return seen


def stub(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, indent: str = "") -> str:
    """A one-line signature with ``...`` for a body (decorators kept)."""
    lines = [f"{indent}@{ast.unparse(d)}" for d in node.decorator_list]
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in [*node.bases, *node.keywords])
        lines.append(f"{indent}class {node.name}{f'({bases})' if bases else ''}: ...")
    else:
        prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        lines.append(f"{indent}{prefix} {node.name}({ast.unparse(node.args)}){returns}: ...")
    return "\n".join(lines)


def _context(index: ModuleIndex, names: Sequence[str], own: str) -> tuple[str, bool] | None:
    """The module lines the names need (imports first, the rest in module order; helpers
    copied in full bring their own needs), and whether only the stdlib is used; None when a
    name cannot be resolved or the context grows too long."""
    imports: list[str] = []
    rest: dict[str, tuple[int, str]] = {}
    standalone = True
    todo = list(names)
    done: set[str] = {own}
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        done.add(name)
        if name in index.imports:
            imports.append(index.imports[name])
            standalone = standalone and name in index.stdlib
        elif name in index.constants:
            rest[name] = (_line_of(index, name), index.constants[name])
            standalone = False
        elif name in index.defs:
            node = index.defs[name]
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            if isinstance(node, _FUNCS) and size <= SHORT_HELPER_LINES:
                rest[name] = (start, "\n".join(index.lines[start - 1 : node.end_lineno]))
                todo += [n for n in free_names(node) if n not in done]
            else:
                rest[name] = (start, stub(node))
            standalone = False
        else:
            return None
    blocks = ["\n".join(dict.fromkeys(imports))] if imports else []
    blocks += list(dict.fromkeys(text for _, text in sorted(rest.values())))
    context = "\n\n\n".join(blocks)
    return (context, standalone) if len(context) <= MAX_CONTEXT_CHARS else None


def _line_of(index: ModuleIndex, name: str) -> int:
    text = index.constants[name].splitlines()[0]
    try:
        return index.lines.index(text) + 1
    except ValueError:
        return 0


def _split(
    index: ModuleIndex, func: ast.FunctionDef | ast.AsyncFunctionDef, depth: int
) -> tuple[str, str] | None:
    """(def line(s) through the docstring, body) as source text, or None when unusable."""
    lines = index.lines
    doc = func.body[0]
    if not (
        isinstance(doc, ast.Expr)
        and isinstance(doc.value, ast.Constant)
        and isinstance(doc.value.value, str)
        and len(doc.value.value.strip()) >= MIN_DOC_CHARS
        and len(func.body) > 1
    ):
        return None
    doc_end = doc.end_lineno or doc.lineno
    if not lines[doc_end - 1].rstrip().endswith(('"""', "'''")):
        return None
    body = lines[doc_end : func.end_lineno]
    code = [line for line in body if line.strip()]
    indent = " " * (4 * (depth + 1))
    if not (1 <= len(code) <= MAX_BODY_LINES) or any("\t" in line for line in body):
        return None
    if not code[0].startswith(indent) or code[0].startswith(indent + " "):
        return None
    start = func.decorator_list[0].lineno if func.decorator_list else func.lineno
    head = "\n".join(lines[start - 1 : doc_end]) + "\n"
    return head, "\n".join(body).rstrip() + "\n"


def _class_header(index: ModuleIndex, cls: ast.ClassDef, target: ast.AST) -> str:
    """Class line, docstring (cut if long), short attributes, other members' signatures
    (``__init__`` and the nearest others when the class is big)."""
    lines = index.lines
    first = cls.body[0]
    start = cls.decorator_list[0].lineno if cls.decorator_list else cls.lineno
    header_end = first.lineno - 1
    parts = ["\n".join(lines[start - 1 : header_end])]
    members = cls.body
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        doc = lines[first.lineno - 1 : first.end_lineno]
        if len(doc) > MAX_CLASS_DOC_LINES:  # keep the head of a long class docstring
            indent = doc[0][: len(doc[0]) - len(doc[0].lstrip())]
            quote = '"""' if '"""' in doc[0] else "'''"
            doc = [*doc[: MAX_CLASS_DOC_LINES - 1], f"{indent}...{quote}"]
        parts.append("\n".join(doc))
        members = cls.body[1:]
    attributes = []
    others: list[tuple[int, int, str]] = []  # (distance from the target, position, stub)
    position = members.index(target) if target in members else 0
    for i, node in enumerate(members):
        if node is target:
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno == node.end_lineno:
            attributes.append(lines[node.lineno - 1])
        elif isinstance(node, _FUNCS | ast.ClassDef):
            distance = -1 if node.name == "__init__" else abs(i - position)
            others.append((distance, i, stub(node, "    ")))
    # A big class keeps __init__ and the members nearest the target, in class order.
    nearest = sorted(others)[:MAX_MEMBER_STUBS]
    signatures = [text for _, _, text in sorted(nearest, key=lambda item: item[1])]
    if attributes:
        parts.append("\n".join(attributes[:10]))
    if signatures:
        parts.append("\n".join(signatures))
    return "\n\n".join(parts) + "\n\n"


def mine_module(text: str, source: str, *, methods: bool = True) -> list[dict]:
    """Every documented top-level function (and method of a top-level class) in ``text``."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    index = index_module(tree, lines)
    found: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef | None]] = []
    for node in tree.body:
        if isinstance(node, _FUNCS):
            found.append((node, None))
        elif methods and isinstance(node, ast.ClassDef):
            found += [(m, node) for m in node.body if isinstance(m, _FUNCS)]
    examples: list[dict] = []
    for func, cls in found:
        split = _split(index, func, depth=0 if cls is None else 1)
        if split is None:
            continue
        head, body = split
        needs = free_names(func)
        for decorator in func.decorator_list:
            needs += [n for n in free_names(decorator) if n not in needs]
        if cls is not None:
            needs = [n for n in needs if n != cls.name]  # the class is written out below
        context = _context(index, needs, func.name if cls is None else "")
        if context is None:
            continue
        context_text, standalone = context
        prefix = context_text + "\n\n\n" if context_text else ""
        if cls is not None:
            prefix += _class_header(index, cls, func)
        qualname = func.name if cls is None else f"{cls.name}.{func.name}"
        docstring = ast.get_docstring(func) or ""
        examples.append(
            {
                "prompt": prefix + head,
                "completion": body,
                "source": f"mined:{source}:{qualname}",
                "kind": "function" if cls is None else "method",
                "standalone": standalone and cls is None,
                "has_doctest": ">>>" in docstring,
            }
        )
    return examples


def mine_corpus_all(
    corpus_jsonl: Path, *, methods: bool = True
) -> tuple[list[dict], dict[str, str]]:
    """Mined examples of every corpus file (exact duplicates, e.g. vendored copies, dropped),
    and the text of each module that has doctest-bearing examples (for verification)."""
    seen: set[bytes] = set()
    examples: list[dict] = []
    modules: dict[str, str] = {}
    for path, text in _corpus_files(corpus_jsonl):
        for example in mine_module(text, path, methods=methods):
            digest = hashlib.sha1((example["prompt"] + example["completion"]).encode()).digest()
            if digest in seen:
                continue
            seen.add(digest)
            examples.append(example)
            if example["has_doctest"]:
                modules[path] = text
    return examples, modules


def _corpus_files(corpus_jsonl: Path) -> Iterator[tuple[str, str]]:
    with open(corpus_jsonl, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield record["path"], record["text"]


# ---------------------------------------------------------------- doctest verification

# Runs in the sandbox after a program that defines the function (the example itself, or its
# whole module); QUALNAME is filled in per example.
_DOCTEST_TEST = """
import doctest as _doctest

_globs = dict(globals())
_obj = _globs[QUALNAME[0]]
for _part in QUALNAME[1:]:
    _obj = vars(_obj)[_part]
_obj = getattr(_obj, "__func__", _obj)
_obj = getattr(_obj, "fget", _obj)
_test = _doctest.DocTestParser().get_doctest(_obj.__doc__ or "", _globs, QUALNAME[-1], None, 0)
_runner = _doctest.DocTestRunner(verbose=False, optionflags=0)
_runner.run(_test, out=lambda _text: None)
assert _runner.tries > 0
assert _runner.failures == 0
"""


def without_main_block(text: str) -> str:
    """The module source with top-level ``if __name__ == "__main__":`` blocks removed."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return text
    lines = text.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines) + "\n"


def _test_for(example: dict) -> str:
    qualname = example["source"].rsplit(":", 1)[1].split(".")
    return f"QUALNAME = {qualname!r}\n{_DOCTEST_TEST}"


def verify_doctests(
    examples: Sequence[dict],
    modules: dict[str, str],
    *,
    timeout_s: float = 5.0,
    workers: int | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Keep examples without doctests, and those whose doctests pass in the sandbox, run first
    as the example itself and, failing that, in their whole module (marked
    ``doctest_verified``: "example" or "module")."""
    from evalkit.sandbox import check_many

    # The test introspects the mined function itself (its __doc__), so it must run beside it:
    # strict_compare=False. Forgery is no concern here (library code, not a model's sample).
    check_many = functools.partial(check_many, strict_compare=False)
    checked = [e for e in examples if e["has_doctest"]]
    as_written = check_many(
        [(e["prompt"] + e["completion"], _test_for(e)) for e in checked],
        workers=workers,
        timeout_s=timeout_s,
    )
    verdict: dict[int, str] = {}
    retry: list[dict] = []
    for example, result in zip(checked, as_written, strict=True):
        if result.status == "passed":
            verdict[id(example)] = "example"
        else:
            retry.append(example)
    # Most modules that fail here cannot even be imported in the sandbox (third-party or
    # relative imports): find those with one run per module, not one per function.
    paths = sorted({_path(e) for e in retry})
    loads = check_many(
        [(without_main_block(modules[p]), "pass\n") for p in paths],
        workers=workers,
        timeout_s=timeout_s,
    )
    loadable = {p for p, result in zip(paths, loads, strict=True) if result.status == "passed"}
    retry = [e for e in retry if _path(e) in loadable]
    in_module = check_many(
        [(without_main_block(modules[_path(e)]), _test_for(e)) for e in retry],
        workers=workers,
        timeout_s=timeout_s,
    )
    for example, result in zip(retry, in_module, strict=True):
        if result.status == "passed":
            verdict[id(example)] = "module"
    kept: list[dict] = []
    for example in examples:
        if not example["has_doctest"]:
            kept.append(example)
        elif id(example) in verdict:
            kept.append({**example, "doctest_verified": verdict[id(example)]})
    counts = {
        "checked": len(checked),
        "passed_as_example": sum(v == "example" for v in verdict.values()),
        "passed_in_module": sum(v == "module" for v in verdict.values()),
        "failed": len(checked) - len(verdict),
        "modules_not_importable_in_sandbox": len(paths) - len(loadable),
    }
    return kept, counts


def _path(example: dict) -> str:
    """The corpus path in ``mined:PATH:QUALNAME`` (paths may hold colons: ``stdlib:x.py``)."""
    return example["source"].removeprefix("mined:").rsplit(":", 1)[0]
