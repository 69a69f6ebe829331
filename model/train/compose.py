"""Compositional fine-tuning tasks: type-checked chains of 1-4 primitive operations.

Each task is a function whose meaning is only recoverable from its docstring: the docstring
is written from per-operation phrases, the body is idiomatic Python for the same chain
(``compose_code``), and the doctest outputs are computed by running that body and checked
against the operations' reference semantics. ``generate`` then runs every task's doctests in
evalkit's sandbox and keeps the passing ones. Nothing here is modelled on an eval task: the
operations are generic primitives and HumanEval's (and the held-out set's) function names
are never used.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from model.train.compose_code import Emitter
from model.train.compose_ops import (
    ANY_LIST,
    BOOL,
    CONST_DRAWS,
    DI,
    DL,
    INT,
    INT_OPS,
    LI,
    LIST_OPS,
    LS,
    NUMBER_OPS,
    SAME,
    STR,
    TYPE_DRAWS,
    Op,
)
from model.train.compose_ops_text import DICT_OPS, PAIR_OPS, TEXT_OPS
from model.train.compose_text import (
    Wording,
    describe,
    function_name,
    param_names,
    signature,
    typing_header,
    wrap,
)

OPS: list[Op] = NUMBER_OPS + LIST_OPS + INT_OPS + TEXT_OPS + DICT_OPS + PAIR_OPS
LENGTHS = (1, 2, 3, 4)
LENGTH_WEIGHTS = (0.03, 0.22, 0.4, 0.35)  # long chains fail more often
PROMOTE_P = 0.2  # chance a constant becomes a function argument
MAX_LINE, MAX_ARGS, MAX_WANT = 88, 60, 70  # doctest lines stay within 88 columns
_ELEMENTWISE = ("map", "filter")
# An operation carrying the key tag makes an earlier one carrying any of the value tags
# pointless when only element-wise steps lie between them (sorting before summing, ...).
REJECT_AFTER = {"orderless": {"order"}, "dupless": {"dup", "order"}}
_IMPORTS = (("math.", "import math"), ("itertools.", "import itertools"))
_COUNTER = "from collections import Counter"


def accepts(op: Op, type_: str) -> bool:
    """Whether ``op`` (as a non-first step) can take a value of ``type_``."""
    if len(op.takes) != 1:
        return False
    want = op.takes[0]
    if want == ANY_LIST:
        return type_ in (LI, LS)
    if want == "dict":
        return type_ in (DI, DL)
    return want == type_


def result_type(op: Op, type_: str) -> str:
    return type_ if op.gives == SAME else op.gives


def allowed(previous: Sequence[Op], op: Op) -> bool:
    """The chain rules: no repeated operation, one case change, no step made pointless."""
    if any(p.key == op.key for p in previous):
        return False
    if "case" in op.tags and any("case" in p.tags for p in previous):
        return False
    blockers = set().union(*(REJECT_AFTER[t] for t in op.tags if t in REJECT_AFTER))
    for p in reversed(previous):
        if p.tags & blockers:
            return False
        if p.kind not in _ELEMENTWISE:
            break
    return True


OPS_TAKING = {t: [op for op in OPS if accepts(op, t)] for t in (LI, LS, INT, STR, DI, DL, BOOL)}
CONTINUABLE = [op for op in OPS if op.gives == SAME or OPS_TAKING[op.gives]]


def sample_chain(r: random.Random) -> tuple[list[Op], list[str]]:
    """Operations and the input type of each, plus the final type (types has one more)."""
    length = r.choices(LENGTHS, LENGTH_WEIGHTS)[0]
    first = r.choice(OPS if length == 1 else CONTINUABLE)
    start = first.takes[0]
    if start == ANY_LIST:
        start = r.choice((LI, LS))
    elif start == "dict":
        start = r.choice((DI, DL))
    ops, types = [first], [start, result_type(first, start)]
    while len(ops) < length:
        options = [op for op in OPS_TAKING[types[-1]] if allowed(ops, op)]
        if not options:
            break
        op = r.choice(options)
        ops.append(op)
        types.append(result_type(op, types[-1]))
    return ops, types


@dataclass
class Example:
    """One drawn call: the data inputs, promoted constants and every intermediate value."""

    inputs: tuple
    promoted: tuple
    trace: list[Any]  # value after each step (trace[-1] is the output)
    call_args: str
    consts: list[list[Any]]  # every step's constants for this call (promoted ones drawn)


def _run_chain(ops: Sequence[Op], consts: Sequence[Sequence[Any]], inputs: tuple) -> list[Any]:
    trace: list[Any] = []
    value: Any = None
    for i, op in enumerate(ops):
        args = inputs if i == 0 else (value,)
        value = op.run(*args, *consts[i])  # reference runs never mutate their inputs
        trace.append(value)
    return trace


def _oversized(value: Any) -> bool:
    if isinstance(value, int):
        return abs(value) >= 10**7
    return isinstance(value, list | dict | str) and len(value) > 40


def _is_empty(value: Any) -> bool:
    return value in (0, "", [], {}) and not isinstance(value, bool)


def _informative(chosen: Sequence[Example], ops: Sequence[Op], types: Sequence[str]) -> bool:
    outputs = [repr(e.trace[-1]) for e in chosen]
    if types[-1] == BOOL:
        if len(set(outputs)) < 2:
            return False
    elif len(set(outputs)) < len(outputs) or sum(_is_empty(e.trace[-1]) for e in chosen) > 1:
        return False
    for i, op in enumerate(ops):
        if "splits" in op.tags and all(len(e.trace[i]) < 2 for e in chosen):
            return False
        if "tally" in op.tags and all(max(e.trace[i].values(), default=0) < 2 for e in chosen):
            return False  # a tally of distinct items says nothing
        if len(op.takes) == 1 and types[i] == types[i + 1]:  # must change something somewhere
            before = [e.inputs[0] if i == 0 else e.trace[i - 1] for e in chosen]
            if all(b == e.trace[i] for b, e in zip(before, chosen, strict=True)):
                return False
            if not _matters(i, chosen, ops):
                return False
    return True


def _matters(step: int, chosen: Sequence[Example], ops: Sequence[Op]) -> bool:
    """Whether leaving out a type-preserving step changes some output (a later step may
    undo it: scaling values before listing only the keys, sorting before summing)."""
    rest = [op for i, op in enumerate(ops) if i != step]
    for example in chosen:
        consts = [c for i, c in enumerate(example.consts) if i != step]
        inputs = example.inputs if step > 0 else (example.inputs[0],)
        try:
            if _run_chain(rest, consts, inputs)[-1] != example.trace[-1]:
                return True
        except Exception:
            return True  # the step is needed for the rest to run at all
    return False


def draw_examples(
    r: random.Random,
    ops: Sequence[Op],
    types: Sequence[str],
    consts: Sequence[list[Any]],
    promoted: Sequence[tuple[int, int]],
) -> list[Example] | None:
    """2-3 calls whose outputs differ and show every step at work, or None."""
    inputs_types = ops[0].takes if len(ops[0].takes) == 2 else (types[0],)
    candidates: list[Example] = []
    seen: set[str] = set()
    for _ in range(40):
        values = [list(c) for c in consts]
        extra = []
        for step, index in promoted:
            kind = ops[step].consts[index].kind
            values[step][index] = CONST_DRAWS[kind](r)
            extra.append(values[step][index])
        if ops[0].draw is not None:
            inputs = ops[0].draw(r, tuple(values[0]))
        else:
            inputs = tuple(TYPE_DRAWS[t](r) for t in inputs_types)
        args = ", ".join(repr(v) for v in (*inputs, *extra))
        if args in seen:
            continue
        seen.add(args)
        try:
            trace = _run_chain(ops, values, inputs)
        except (ValueError, IndexError, ZeroDivisionError, TypeError, KeyError):
            continue
        if len(repr(trace[-1])) > MAX_WANT or len(args) > MAX_ARGS or "\\" in args:
            continue
        if any(_oversized(value) for value in trace):
            continue
        candidates.append(Example(inputs, tuple(extra), trace, args, values))
        if len(candidates) >= 6:
            break
    want = r.choice((2, 3, 3))
    if len(candidates) < want:
        return None
    for _ in range(12):
        chosen = r.sample(candidates, want)
        if _informative(chosen, ops, types):
            return chosen
    return None


@dataclass
class Outcome:
    """A finished task record, or the reason there is none."""

    record: dict | None
    reason: str = ""


def make_task(r: random.Random, reserved: set[str]) -> Outcome:
    """One task: chain, names, docstring, idiomatic body and checked doctest outputs."""
    ops, types = sample_chain(r)
    consts: list[list[Any]] = [[CONST_DRAWS[c.kind](r) for c in op.consts] for op in ops]
    promotable = [(s, i) for s, op in enumerate(ops) for i, c in enumerate(op.consts) if c.params]
    promoted = [r.choice(promotable)] if promotable and r.random() < PROMOTE_P else []
    examples = draw_examples(r, ops, types, consts, promoted)
    if examples is None:
        return Outcome(None, "no_informative_examples")
    input_types = list(ops[0].takes) if len(ops[0].takes) == 2 else [types[0]]
    data_names = param_names(r, input_types)
    extras: list[tuple[str, str]] = []
    for step, index in promoted:
        pool = [p for p in ops[step].consts[index].params if p not in data_names]
        value = consts[step][index]
        extras.append((r.choice(pool), INT if isinstance(value, int) else STR))
    longest_call = max(len(e.call_args) for e in examples)
    taken = reserved | set(data_names) | {p for p, _ in extras}
    name = function_name(r, ops, taken, max_len=min(40, MAX_LINE - 10 - longest_call))
    params = [*zip(data_names, input_types, strict=True), *extras]
    wording = Wording(r)
    code_consts: list[list[str]] = []
    said_consts: list[list[str]] = []
    for step, op in enumerate(ops):
        code_row, said_row = [], []
        for index, const in enumerate(op.consts):
            if (step, index) in promoted:
                param = extras[promoted.index((step, index))][0]
                code_row.append(param)
                said_row.append(wording.ref(param))
            else:
                code_row.append(repr(consts[step][index]))
                said_row.append(wording.const(const.kind, consts[step][index]))
        code_consts.append(code_row)
        said_consts.append(said_row)
    emitter = Emitter(r, [name, *(p for p, _ in params)], steps=r.random() < 0.3)
    val = emitter.bind_input(data_names[0], types[0])
    for step, op in enumerate(ops):
        second = data_names[1] if step == 0 and len(data_names) > 1 else ""
        val = emitter.apply(op, val, code_consts[step], types[step], types[step + 1], second)
        if step < len(ops) - 1:
            val = emitter.settle(val)
    body = emitter.finish(val)
    imports = [line for marker, line in _IMPORTS if marker in body]
    imports += [_COUNTER] if "Counter(" in body else []
    sig = signature(name, params, types[-1], r)
    header_lines = imports + ([typing_header(sig).rstrip()] if typing_header(sig) else [])
    header = "\n".join(header_lines) + "\n\n\n" if header_lines else ""
    calls = [(f"{name}({e.call_args})", repr(e.trace[-1])) for e in examples]
    if not _body_matches(header + sig + "\n" + body, name, examples):
        return Outcome(None, "body_mismatch")
    steps = [(op, said_consts[i], types[i]) for i, op in enumerate(ops)]
    text = describe(
        r, wording, steps, list(zip(data_names, input_types, strict=True)), extras, types[-1]
    )
    prompt = header + sig + "\n" + docstring(r, text, calls)
    chain = ">".join(op.key for op in ops)
    key = chain + "|" + repr(consts) + "|" + repr(promoted)
    return Outcome({"prompt": prompt, "completion": body, "source": f"compose:{name}",
                    "ops": chain, "task_key": key})  # fmt: skip


def _body_matches(source: str, name: str, examples: Sequence[Example]) -> bool:
    """The emitted body computes what the reference semantics computed, on every example."""
    namespace: dict[str, Any] = {}
    try:
        exec(compile(source, "<compose>", "exec"), namespace)
        func: Callable[..., Any] = namespace[name]
        return all(
            func(*copy.deepcopy(e.inputs), *e.promoted) == e.trace[-1]
            and type(func(*copy.deepcopy(e.inputs), *e.promoted)) is type(e.trace[-1])
            for e in examples
        )
    except Exception:
        return False


def docstring(r: random.Random, text: list[str], calls: Sequence[tuple[str, str]]) -> str:
    """The indented docstring with its examples, in one of four layouts."""
    indent = "    "
    lines = [piece for line in text for piece in wrap(line, 88 - 8)]
    style = r.choice(("plain", "space", "block", "example"))
    doc: list[str] = []
    if style == "block":
        doc.append(f'{indent}"""')
        doc += [indent + line if line else "" for line in lines]
    else:
        lead = " " if style == "space" else ""
        doc.append(f'{indent}"""{lead}{lines[0]}')
        doc += [indent + line if line else "" for line in lines[1:]]
    doc.append("")
    if style == "example" or r.random() < 0.3:
        doc.append(indent + r.choice(("For example:", "Examples:", "Example:")))
    for call, want in calls:
        doc += [f"{indent}>>> {call}", f"{indent}{want}"]
    doc.append(f'{indent}"""')
    return "\n".join(doc) + "\n"


def iter_tasks(seed: int, reserved: set[str], stats: dict[str, int]) -> Iterator[dict]:
    """Candidate task records forever (not deduplicated); ``stats`` counts the rejections."""
    r = random.Random(seed)
    while True:
        outcome = make_task(r, reserved)
        if outcome.record is None:
            stats[outcome.reason] = stats.get(outcome.reason, 0) + 1
            continue
        yield outcome.record
