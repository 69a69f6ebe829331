"""What the verifier learns from a test before running it (parsing only, nothing is run).

A plan is made once per test text: its compiled code; the names it reads from the program
(each becomes a proxy or a copied value); the ``ENTRY`` of a final ``check(ENTRY)``; and,
for HumanEval's shape, the calls ``check`` makes with literal arguments before any other use
of its parameter, which the verifier sends to the candidate in one batch instead of one round
trip each. ``prompt_prefix`` finds the prompt's own helpers in a program.
"""

from __future__ import annotations

import builtins
import collections
import marshal
import traceback
import types
from typing import TYPE_CHECKING

from evalkit.sandbox_wire import Unsupported, encode

if TYPE_CHECKING:  # imported when a plan is made: doctest-only sandboxes start faster
    import ast
    import symtable

PLAN_CACHE_SIZE = 256  # HumanEval has 164 tests; a batch may cycle through all of them


class TestPlan:
    """A test compiled once: its code, the program names it reads, its ``check(ENTRY)``, and
    the request bodies of the literal calls ``check`` makes first (in order)."""

    __slots__ = ("code", "entry", "error", "names", "prefetch")

    def __init__(
        self,
        code: types.CodeType | None,
        error: str,
        names: tuple[str, ...],
        entry: str | None,
        prefetch: tuple[bytes, ...] = (),
    ) -> None:
        self.code = code
        self.error = error
        self.names = names
        self.entry = entry
        self.prefetch = prefetch


_plans: collections.OrderedDict[str, TestPlan] = collections.OrderedDict()


def plan_test(test: str) -> TestPlan:
    """The plan for ``test`` (cached: evalkit checks many samples against each test)."""
    plan = _plans.pop(test, None)
    if plan is None:
        plan = _make_plan(test)
    _plans[test] = plan
    while len(_plans) > PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return plan


def _global_reads(table: symtable.SymbolTable) -> set[str]:
    reads: set[str] = set()
    scopes = [table]
    while scopes:
        scope = scopes.pop()
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (scope is table or symbol.is_global()):
                reads.add(symbol.get_name())
        scopes.extend(scope.get_children())
    return reads


def _make_plan(test: str) -> TestPlan:
    import ast
    import symtable

    try:
        tree = ast.parse(test, "<test>")
        code = compile(tree, "<test>", "exec")
        table = symtable.symtable(test, "<test>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return TestPlan(None, traceback.format_exception_only(type(exc), exc)[-1], (), None)
    bound = {
        symbol.get_name()
        for symbol in table.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    }
    names = tuple(sorted(_global_reads(table) - bound - set(dir(builtins))))
    last = tree.body[-1] if tree.body else None
    if not (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and len(last.value.args) == 1
        and not last.value.keywords
        and isinstance(last.value.args[0], ast.Name)
        and last.value.args[0].id in names
    ):
        return TestPlan(code, "", names, None)
    entry = last.value.args[0].id
    prefetch: tuple[bytes, ...] = ()
    checker = last.value.func
    if isinstance(checker, ast.Name):
        prefetch = _literal_calls(tree, checker.id, entry)
    return TestPlan(code, "", names, entry, prefetch)


def _literal(node: ast.AST) -> tuple[bool, object]:
    import ast

    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _literal_calls(tree: ast.Module, checker: str, entry: str) -> tuple[bytes, ...]:
    """Request bodies for the calls ``checker(param)`` makes to ``param`` with literal
    arguments, in order, up to the first statement that uses ``param`` any other way (or is
    not a plain ``assert`` / expression: no loop, branch or ``try`` can reorder them)."""
    import ast

    functions = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == checker
    ]
    if len(functions) != 1 or not functions[0].args.args or functions[0].decorator_list:
        return ()
    function = functions[0]
    param = function.args.args[0].arg
    bodies: list[bytes] = []
    for statement in function.body:
        uses = [n for n in ast.walk(statement) if isinstance(n, ast.Name) and n.id == param]
        if not uses:
            continue
        if not isinstance(statement, (ast.Assert, ast.Expr)):
            break
        calls = [
            n
            for n in ast.walk(statement)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == param
        ]
        if len(calls) != len(uses) or len(calls) != 1:
            break  # several calls in one statement: their order is Python's, keep it simple
        (call,) = calls
        if any(isinstance(arg, ast.Starred) for arg in call.args) or any(
            keyword.arg is None for keyword in call.keywords
        ):
            break
        values = [_literal(arg) for arg in call.args]
        keywords = {k.arg: _literal(k.value) for k in call.keywords if k.arg is not None}
        if not all(ok for ok, _ in values) or not all(ok for ok, _ in keywords.values()):
            break
        try:
            args = [encode(value) for _, value in values]
            kwargs = {key: encode(value) for key, (_, value) in keywords.items()}
        except (Unsupported, RecursionError):
            break
        bodies.append(marshal.dumps(("call", [entry], args, kwargs), 2))
    return tuple(bodies)


def prompt_prefix(program: str, entry: str) -> tuple[str, frozenset[str]] | None:
    """The program's text before the first top-level ``def ENTRY`` and the names it binds.

    In a HumanEval program (prompt + completion) that text is the prompt's own: the completion
    only continues the body of ``ENTRY``. Parsing never runs any of it.
    """
    import ast
    import symtable

    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    node = next((n for n in tree.body if isinstance(n, definitions) and n.name == entry), None)
    if node is None:
        return None
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    # splitlines knows more line breaks than the tokenizer: the cut can only land earlier
    # than the def, never inside it.
    prefix = "".join(program.splitlines(keepends=True)[: first - 1])
    try:
        table = symtable.symtable(prefix, "<prompt>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = frozenset(
        s.get_name()
        for s in table.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    )
    return prefix, names
