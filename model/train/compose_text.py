"""The words of a composed task: function and parameter names, signature and docstring.

A docstring is written from the chain's per-operation phrases in one of several shapes
(a nested noun phrase, a run of imperative clauses with varied connectives, numbered steps,
a "Given ..." sentence) and registers (optional type sentence, Google or Sphinx sections).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from model.train.compose_code import RESERVED
from model.train.compose_ops import BOOL, DI, DL, INT, LI, LS, STR, Op

PARAM_POOLS: dict[str, tuple[str, ...]] = {
    LI: ("numbers", "nums", "values", "xs", "data", "items", "arr", "seq", "scores", "readings",
         "ints", "lst", "sample", "measurements", "ages", "prices", "heights", "marks", "amounts",
         "points", "temps", "weights", "series", "vals", "ns", "elements", "counts", "levels"),
    LS: ("words", "names", "tokens", "strings", "labels", "tags", "lines", "entries", "titles",
         "items", "terms", "fruits", "cities", "colors", "animals", "texts", "phrases", "vocab",
         "keywords", "codes", "ids", "parts"),
    STR: ("s", "text", "sentence", "line", "phrase", "message", "word", "raw", "source", "label",
          "title", "content", "string", "msg", "txt", "name", "caption", "record", "value"),
    INT: ("n", "num", "number", "x", "value", "count", "size", "limit", "k", "m", "amount", "total"),
    DI: ("counts", "scores", "inventory", "stock", "table", "mapping", "tally", "votes", "freq",
         "prices", "ages", "points", "totals", "d", "lookup", "histogram", "stats"),
    DL: ("groups", "buckets", "index", "by_letter", "clusters", "categories"),
}  # fmt: skip
PAIR_POOLS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    (LI, LI): (("xs", "ys"), ("first", "second"), ("left", "right"), ("nums1", "nums2"),
               ("list1", "list2"), ("a", "b"), ("values", "others"), ("this", "other")),
    (LS, LS): (("words", "more_words"), ("first", "second"), ("left", "right"), ("names", "extra"),
               ("list1", "list2")),
    (LS, LI): (("keys", "values"), ("names", "scores"), ("words", "counts"), ("labels", "numbers"),
               ("items", "amounts")),
}  # fmt: skip
TYPE_NOUNS = {
    LI: ("a list of integers", "a list of numbers", "a list of ints"),
    LS: ("a list of strings", "a list of words"),
    STR: ("a string", "a piece of text"),
    INT: ("an integer", "a whole number", "a non-negative integer"),
    DI: ("a dictionary from strings to integers", "a dict mapping strings to counts"),
    DL: ("a dictionary from letters to lists of words", "a dict of string lists"),
    BOOL: ("a boolean",),
}
ITEM_NOUNS = {LI: ("numbers", "elements", "values"), LS: ("strings", "words", "items")}
PRONOUNS = {
    LI: ("them", "the result"),
    LS: ("them", "the result"),
    STR: ("it", "the result"),
    INT: ("it", "the result"),
    DI: ("it", "the result"),
    DL: ("it", "the result"),
}
RETURN_SENTENCES = {
    LI: ("Return the result.", "Return the resulting list.", "Return what is left.",
         "The result is a new list."),
    LS: ("Return the result.", "Return the resulting list.", "Return the list that remains."),
    STR: ("Return the resulting string.", "Return the result.", "The result is a new string."),
    INT: ("Return that number.", "Return the result.", "Return it as an integer."),
    DI: ("Return the dictionary.", "Return the result.", "Return the resulting mapping."),
    DL: ("Return the dictionary of lists.", "Return the result."),
    BOOL: ("Return True or False accordingly.", "Return the answer as a bool.",
           "Return a boolean."),
}  # fmt: skip
GENERIC_NAMES = (
    "transform", "process", "solve", "compute", "pipeline", "apply_steps", "func", "task",
    "helper", "convert", "calc", "run_steps", "evaluate", "handle", "f", "g", "do_work",
)  # fmt: skip
VERB_PREFIXES = ("get_", "compute_", "make_", "find_", "to_", "build_", "calc_", "")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_JOINER_WORDS = {
    ", ": ("a comma and a space",),
    "-": ("a hyphen", "dashes"),
    " ": ("a single space", "spaces"),
    "|": ("a vertical bar",),
    "/": ("a slash",),
    ",": ("a comma",),
    ";": ("a semicolon",),
    ":": ("a colon",),
}


def say_const(kind: str, value: Any, r: random.Random, number_words: bool = False) -> str:
    """A constant as words: digits or number words, quoted characters, named separators."""
    if isinstance(value, int):
        return _NUMBER_WORDS[value] if number_words and 0 <= value < 10 else str(value)
    if kind in ("joiner", "splitter") and value in _JOINER_WORDS and r.random() < 0.4:
        return r.choice(_JOINER_WORDS[value])
    return repr(value) if r.random() < 0.75 else f'"{value}"'


def param_names(r: random.Random, inputs: Sequence[str]) -> list[str]:
    """Names for the function's data inputs (one or two)."""
    if len(inputs) == 2:
        return list(r.choice(PAIR_POOLS[(inputs[0], inputs[1])]))
    return [r.choice(PARAM_POOLS[inputs[0]])]


def function_name(
    r: random.Random, ops: Sequence[Op], reserved: set[str], max_len: int = 40
) -> str:
    """A snake_case name from the operations' fragments, sometimes deliberately generic."""
    for _ in range(20):
        roll = r.random()
        fragments = [r.choice(op.names) for op in ops]
        if roll < 0.14:
            name = r.choice(GENERIC_NAMES)
        elif roll < 0.45 and len(ops) > 1:
            name = f"{fragments[-1]}_of_{'_'.join(fragments[:-1][-2:])}"
        elif roll < 0.8:
            picked = fragments[-3:] if r.random() < 0.7 else fragments[:3]
            name = "_".join(picked)
        else:
            name = r.choice(VERB_PREFIXES) + "_".join(fragments[-2:])
        words = name.split("_")
        name = "_".join(w for i, w in enumerate(words) if w and (i == 0 or w != words[i - 1]))
        if len(name) <= max_len and name.isidentifier() and name not in RESERVED | reserved:
            return name
    return r.choice(GENERIC_NAMES[:-4])


def hint(type_: str, modern: bool) -> str:
    if modern:
        return type_
    return type_.replace("list[", "List[").replace("dict[", "Dict[")


def signature(name: str, params: Sequence[tuple[str, str]], returns: str, r: random.Random) -> str:
    """``def name(...) -> ...:`` with type hints (builtin or ``typing`` style) or none."""
    roll = r.random()
    if roll < 0.35:
        return f"def {name}({', '.join(p for p, _ in params)}):"
    modern = roll < 0.7
    args = ", ".join(f"{p}: {hint(t, modern)}" for p, t in params)
    return f"def {name}({args}) -> {hint(returns, modern)}:"


def typing_header(sig: str) -> str:
    needed = [t for t in ("Dict", "List") if f"{t}[" in sig]
    return f"from typing import {', '.join(needed)}\n" if needed else ""


class Wording:
    """How one task refers to things: parameter style, constants, element nouns."""

    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.quote = r.choice(["", "", "`", "``"])
        self.number_words = r.random() < 0.2

    def const(self, kind: str, value: Any) -> str:
        return say_const(kind, value, self.r, self.number_words)

    def ref(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def fields(self, type_: str) -> dict[str, str]:
        items = self.r.choice(ITEM_NOUNS.get(type_, ("items",)))
        return {"items": items, "item": items[:-1]}


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _clause(
    w: Wording, op: Op, first: bool, obj: str, consts: list[str], in_type: str, second: str
) -> str:
    options = op.say if first or not op.then or w.r.random() < 0.1 else op.then
    pattern = w.r.choice(options)
    if not first and "{x}" in pattern:
        obj = w.r.choice(PRONOUNS.get(in_type, ("it",)))
    return pattern.format(x=obj, y=second, **w.fields(in_type), **_consts(consts))


def describe(
    r: random.Random,
    w: Wording,
    steps: Sequence[tuple[Op, list[str], str]],
    inputs: Sequence[tuple[str, str]],
    extras: Sequence[tuple[str, str]],
    returns: str,
) -> list[str]:
    """Docstring lines (unindented, before the examples) for a chain of ``(op, consts, type)``.

    ``inputs`` are the data parameters ``(name, type)``; ``extras`` the constants promoted to
    parameters; constants arrive already worded.
    """
    obj = w.ref(inputs[0][0])
    second = w.ref(inputs[1][0]) if len(inputs) > 1 else ""
    shape = r.random()
    if shape < 0.3 and len(steps) <= 2:
        phrase = obj
        for op, consts, in_type in steps:
            values = {"x": phrase, "y": second, **w.fields(in_type), **_consts(consts)}
            phrase = r.choice(op.noun).format(**values)
        leads = ("Return", "Report") if returns == BOOL else ("Return", "Compute", "Find", "Get")
        lead = r.choice(leads)
        if r.random() < 0.2:
            lead = lead + "s" if lead != "Find" else "Finds"
        lines = [_sentence(f"{lead} {phrase}")]
    else:
        given = len(steps) > 1 and len(inputs) == 1 and r.random() < 0.25
        first = r.choice(PRONOUNS[inputs[0][1]][:1]) if given else obj
        clauses = [
            _clause(w, op, i == 0 and not given, first, consts, in_type, second)
            for i, (op, consts, in_type) in enumerate(steps)
        ]
        if given:
            noun = r.choice(TYPE_NOUNS[inputs[0][1]])
            lines = [_sentence(f"Given {noun} {obj}, {_run_on(r, clauses)}")]
        else:
            lines = _join_clauses(r, clauses, obj)
        if r.random() < 0.5:
            lines.append(r.choice(RETURN_SENTENCES[returns]))
    return lines + _parameter_notes(r, w, [*inputs, *extras], returns)


def _consts(consts: list[str]) -> dict[str, str]:
    return {"a": consts[0] if consts else "", "b": consts[1] if len(consts) > 1 else ""}


def _join_clauses(r: random.Random, clauses: list[str], obj: str) -> list[str]:
    if len(clauses) == 1:
        return [_sentence(clauses[0])]
    shape = r.random()
    if shape < 0.2:
        head = r.choice(["Steps:", "Do the following, in order:", f"Process {obj} step by step:"])
        return [head] + [f"{i}. {_sentence(c)}" for i, c in enumerate(clauses, 1)]
    if shape < 0.5:
        sentences = [_sentence(clauses[0])]
        for i, clause in enumerate(clauses[1:], 1):
            last = i == len(clauses) - 1
            lead = "Finally, " if last and r.random() < 0.5 else r.choice(LEADS)
            sentences.append(_sentence(lead + clause))
        return [" ".join(sentences)]
    return [_sentence(_run_on(r, clauses))]


LEADS = ("Then ", "Next, ", "After that, ", "")


def _run_on(r: random.Random, clauses: list[str]) -> str:
    joiners = [", then ", "; then ", ", ", ", and then "] + ([" and "] if len(clauses) == 2 else [])
    joiner = r.choice(joiners)
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        return clauses[0] + joiner + clauses[1]
    last = r.choice([", and finally ", ", and then ", ", then ", " and "])
    return joiner.join(clauses[:-1]) + last + clauses[-1]


def _parameter_notes(
    r: random.Random, w: Wording, params: Sequence[tuple[str, str]], returns: str
) -> list[str]:
    roll = r.random()
    if roll < 0.15:
        lines = ["", "Args:"]
        lines += [f"    {p}: {r.choice(TYPE_NOUNS[t])}." for p, t in params]
        return [*lines, "", "Returns:", f"    {r.choice(TYPE_NOUNS[returns])}."]
    if roll < 0.22:
        lines = [""] + [f":param {p}: {r.choice(TYPE_NOUNS[t])}" for p, t in params]
        return [*lines, f":returns: {r.choice(TYPE_NOUNS[returns])}"]
    if roll < 0.35:
        p, t = params[0]
        lead = r.choice(("Here", "The argument", "The parameter", "Note that"))
        return [f"{lead} {w.ref(p)} is {r.choice(TYPE_NOUNS[t])}."]
    return []


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap that keeps an indented list or section line as it is."""
    if len(text) <= width or re.match(r"\s", text):
        return [text]
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current]
