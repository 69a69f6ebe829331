"""Write a chain of compose operations as idiomatic Python: fused comprehensions, named steps.

Element-wise maps and filters accumulate in one pending comprehension; aggregates consume it
as a generator (``sum(x * x for x in xs if x % 2 == 0)``); whole-value operations receive it
as a list or, when they need the value twice or as a postfix target, as a named variable.
Some operations also have loop forms (an accumulator, ``setdefault``), picked at random.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.train.compose_ops import DI, DL, LI, LS, STR, Op

_PLACEHOLDER = re.compile(r"\$(acc|key|val|out|pe|pv|px|[abceigvwxyz])(?![A-Za-z0-9_])")
_COMPOUND = (
    ast.BinOp,
    ast.BoolOp,
    ast.Compare,
    ast.UnaryOp,
    ast.IfExp,
    ast.Lambda,
    ast.NamedExpr,
    ast.GeneratorExp,
)
RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins))
_ELEMENT_NAMES = {
    "int": ("x", "n", "v", "num", "value"),
    "str": ("w", "word", "s", "item", "text"),
}
_PAIR_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    LI: (("a", "b"), ("x", "y"), ("prev", "cur"), ("p", "q"), ("left", "right")),
    LS: (("w", "u"), ("word", "other"), ("s", "t")),
    DI: (("k", "v"), ("key", "value"), ("name", "count")),
    DL: (("k", "v"), ("key", "group"), ("letter", "words")),
}
_ITEM_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    DI: (("k", "v"), ("key", "value"), ("name", "count"), ("word", "n")),
    DL: (("k", "v"), ("key", "group"), ("letter", "words")),
}
_SINGULAR = {
    "data": "item", "xs": "x", "ys": "y", "nums": "num", "lst": "item", "arr": "item",
    "seq": "item", "entries": "entry", "cities": "city", "series": "value", "vals": "val",
    "ns": "n", "texts": "text", "vocab": "word", "readings": "reading",
}  # fmt: skip
# Calls whose only argument may be a bare generator expression.
_ITERABLE_ARG = re.compile(
    r"(?<![\w.])(sorted|set|Counter|dict\.fromkeys|itertools\.accumulate)\(\$v\)"
)
_SIMPLE_SOURCE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def fill(template: str, values: dict[str, str]) -> str:
    """Substitute ``$name`` placeholders (see ``compose_ops``)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def paren(code: str) -> str:
    """``code`` wrapped in parentheses when it would bind loosely as an operand or target."""
    try:
        node = ast.parse(code, mode="eval").body
    except SyntaxError:
        return f"({code})"
    return f"({code})" if isinstance(node, _COMPOUND) else code


def singular(name: str) -> str:
    """A loop-variable name for the elements of a collection called ``name`` ('' if none)."""
    if name in _SINGULAR:
        return _SINGULAR[name]
    if name.endswith("ies") and len(name) > 4:
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss") and len(name) > 3:
        return name[:-1]
    return ""


@dataclass
class Comp:
    """A pending comprehension: ``[elt for var in src if conds...]``."""

    elt: str
    var: str
    src: str
    conds: list[str] = field(default_factory=list)

    def body(self) -> str:
        ifs = f" if {' and '.join(self.conds)}" if self.conds else ""
        return f"{self.elt} for {self.var} in {self.src}{ifs}"


@dataclass
class Val:
    """The value so far: an expression, or a comprehension not yet written out."""

    code: str = ""
    comp: Comp | None = None
    elem: str = "int"  # element type when it is a list
    hints: tuple[str, ...] = ("result",)  # names for it if it must be stored


class Emitter:
    """Accumulates the statements of one function body."""

    def __init__(self, r: random.Random, taken: Sequence[str], *, steps: bool) -> None:
        self.r = r
        self.steps = steps  # name intermediate results instead of fusing into one expression
        self.taken: set[str] = set(taken)
        self.lines: list[str] = []

    # ------------------------------------------------------------ names

    def fresh(self, candidates: Sequence[str], *, reserve: bool = True) -> str:
        for name in candidates:
            if name not in self.taken and name not in RESERVED:
                if reserve:
                    self.taken.add(name)
                return name
        base = candidates[0] if candidates else "value"
        number = 2
        while f"{base}{number}" in self.taken:
            number += 1
        name = f"{base}{number}"
        if reserve:
            self.taken.add(name)
        return name

    def _pair(self, pools: Sequence[tuple[str, str]]) -> tuple[str, str]:
        options = [p for p in pools if not set(p) & (self.taken | RESERVED)]
        first, second = self.r.choice(options) if options else ("first_", "second_")
        return first, second

    def element_var(self, src: str, elem: str) -> str:
        own = singular(src) if _SIMPLE_SOURCE.fullmatch(src) else ""
        candidates = ([own] if own else []) + list(_ELEMENT_NAMES.get(elem, ("item", "x")))
        inside = set(re.findall(r"[A-Za-z_]\w*", src))  # no shadowing inside the source
        return self.fresh([c for c in candidates if c not in inside] or ["item"], reserve=False)

    # ------------------------------------------------------------ writing values out

    def expr(self, val: Val) -> str:
        """The value as one expression (a list comprehension when pending)."""
        if val.comp is None:
            return val.code
        comp = val.comp
        if comp.elt == comp.var and not comp.conds:  # sources are always lists
            return comp.src if comp.src.isidentifier() else f"list({comp.src})"
        return f"[{comp.body()}]"

    def name(self, val: Val) -> str:
        """The value stored in a variable (written out now unless it already is one)."""
        if val.comp is None and val.code.isidentifier():
            return val.code
        if val.comp is not None:
            self.taken.add(val.comp.var)  # the target must not be the element's name
        target = self.fresh(val.hints)
        if val.comp is not None and val.comp.elt != val.comp.var and self.r.random() < 0.3:
            self._loop_append(target, val.comp)
        else:
            self.lines.append(f"{target} = {self.expr(val)}")
        return target

    def _loop_append(self, target: str, comp: Comp) -> None:
        self.lines.append(f"{target} = []")
        self._loop(comp, [f"{target}.append({comp.elt})"])

    def _loop(self, comp: Comp, body: list[str]) -> None:
        self.lines.append(f"for {comp.var} in {comp.src}:")
        indent = "    "
        if comp.conds:
            self.lines.append(f"    if {' and '.join(comp.conds)}:")
            indent = "        "
        self.lines += [indent + line for line in body]

    def as_comp(self, val: Val, elem: str) -> Comp:
        """A comprehension over the value, to extend with a map or a filter."""
        if val.comp is not None:
            return val.comp
        src = val.code
        if not (src.isidentifier() or src.endswith(")")) or "\n" in src:
            src = self.name(val)
        var = self.element_var(src, elem)
        return Comp(var, var, src)

    # ------------------------------------------------------------ applying one operation

    def apply(
        self,
        op: Op,
        val: Val,
        consts: Sequence[str],
        in_type: str,
        out_type: str,
        second: str = "",
    ) -> Val:
        """The value after ``op``; ``consts`` are the constants as code (literals or names) and
        ``second`` the second argument of a two-input first step."""
        values = {"a": consts[0] if consts else "", "b": consts[1] if len(consts) > 1 else ""}
        values["w"] = second
        pair_pool = _PAIR_NAMES.get(in_type, _PAIR_NAMES[LI])
        values["y"], values["z"] = self._pair(pair_pool)
        values["key"], values["val"] = self._pair(_ITEM_NAMES.get(in_type, _ITEM_NAMES[DI]))
        values["i"] = self.fresh(("i", "j", "idx"), reserve=False)
        values["c"] = self.fresh(("c", "ch", "char"), reserve=False)
        elem = in_type[5:-1] if in_type.startswith("list[") else "int"
        out_elem = out_type[5:-1] if out_type.startswith("list[") else "int"
        hints = (*op.var, "result")
        template = self.r.choice(op.code) if op.code else ""
        use_loop = bool(op.loop) and (not op.code or self.r.random() < 0.35)
        if op.kind == "map":
            comp = self.as_comp(val, elem)
            if comp.elt != comp.var and (self.steps or self.r.random() < 0.2):
                comp = self.as_comp(Val(code=self.name(val), hints=val.hints), elem)
            elt = fill(template, {**values, "e": comp.elt, "pe": paren(comp.elt)})
            return Val(comp=Comp(elt, comp.var, comp.src, comp.conds), elem=out_elem, hints=hints)
        if op.kind in ("filter", "dictmap"):
            comp = self.as_comp(val, elem)
            if comp.elt != comp.var:  # filter the stored mapped values, not a recomputation
                comp = self.as_comp(Val(code=self.name(val), hints=val.hints), elem)
            element = {**values, "e": comp.var, "pe": comp.var}
            if op.kind == "filter":
                conds = [*comp.conds, fill(template, element)]
                return Val(comp=Comp(comp.var, comp.var, comp.src, conds), elem=elem, hints=hints)
            ifs = f" if {' and '.join(comp.conds)}" if comp.conds else ""
            pair = fill(template, element)
            return Val(code=f"{{{pair} for {comp.var} in {comp.src}{ifs}}}", hints=hints)
        if op.kind == "agg" and op.pre:
            comp = self.as_comp(val, elem)
            elt = fill(op.pre, {**values, "e": comp.elt, "pe": paren(comp.elt)})
            val = Val(comp=Comp(elt, comp.var, comp.src, comp.conds), elem=elem)
        if use_loop:
            return self._apply_loop(op, val, values, elem, hints)
        return self._apply_whole(op, template, val, values, out_elem, hints)

    def _apply_loop(
        self, op: Op, val: Val, values: dict[str, str], elem: str, hints: tuple[str, ...]
    ) -> Val:
        setup, body = self.r.choice(op.loop)
        comp = self.as_comp(val, elem)
        self.taken.add(comp.var)  # a loop variable outlives its loop
        out = self.fresh(hints)
        acc = self.fresh(("total", "running", "acc", "so_far")) if "$acc" in setup else ""
        element = {**values, "out": out, "acc": acc, "x": comp.elt, "px": paren(comp.elt)}
        self.lines += fill(setup, element).splitlines()
        self._loop(comp, fill(body, element).splitlines())
        return Val(code=out, hints=hints)

    def _apply_whole(
        self,
        op: Op,
        template: str,
        val: Val,
        values: dict[str, str],
        out_elem: str,
        hints: tuple[str, ...],
    ) -> Val:
        uses = len(re.findall(r"\$p?v(?![A-Za-z0-9_])", template))
        if val.comp is not None and op.kind == "agg" and "$g" in template:
            comp = val.comp
            values["g"] = comp.src if comp.elt == comp.var and not comp.conds else comp.body()
            values["v"] = values["pv"] = self.expr(val)
        elif val.comp is not None and _ITERABLE_ARG.search(template) and uses == 1:
            body = val.comp.body()  # sorted(x * x for x in xs): no list in between
            values["g"] = values["v"] = values["pv"] = body
        else:
            code = self.expr(val)
            displayed = val.comp is not None or code[:1] in "[{"
            if uses > 1 or ("$pv" in template and displayed) or len(code) > 48:
                code = self.name(val)
            values["g"], values["v"], values["pv"] = code, code, paren(code)
        return Val(code=fill(template, values), elem=out_elem, hints=hints)

    def bind_input(self, name: str, type_: str) -> Val:
        """The function's (first) argument as the starting value."""
        elem = type_[5:-1] if type_.startswith("list[") else ("str" if type_ == STR else "int")
        return Val(code=name, elem=elem, hints=(name,))

    def settle(self, val: Val) -> Val:
        """In step-by-step style, store an intermediate result under a telling name."""
        if self.steps and (val.comp is not None or not val.code.isidentifier()):
            return Val(code=self.name(val), elem=val.elem, hints=val.hints)
        return val

    def finish(self, val: Val) -> str:
        """The body, 4-space indented, ending with the return statement."""
        lines = [*self.lines, f"return {self.expr(val)}"]
        return "".join(f"    {line}\n" for line in lines)
