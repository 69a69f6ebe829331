"""Typed primitive operations for the compositional task generator: numbers, lists and integers.

Each :class:`Op` says what it takes and gives, how Python runs it (``run``, the reference
semantics), how idiomatic code writes it (``code`` templates, optional loop forms) and how
English says it (imperative ``say``/``then`` phrases and ``noun`` phrases). The string, word and
dictionary operations live in ``compose_ops_text``; ``ALL_OPS`` gathers both tables.

Code templates use ``$name`` placeholders (no brace escaping inside dict comprehensions):
``$e``/``$pe`` the element (``$pe`` parenthesised when compound), ``$v``/``$pv`` the whole
value, ``$g`` what an aggregate iterates (a generator body or the value), ``$w`` a second
input, ``$a``/``$b`` constants, ``$x``/``$px`` the element in a loop form, and
``$y``/``$z``/``$key``/``$val``/``$acc``/``$out``/``$i``/``$c`` fresh variable names.
Phrases use ``{x}`` (the object), ``{y}`` (a second input), ``{a}``/``{b}`` (constants) and
``{items}``/``{item}`` (what the list holds).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LI, LS, INT, STR, BOOL = "list[int]", "list[str]", "int", "str", "bool"
DI, DL = "dict[str, int]", "dict[str, list[str]]"
ANY_LIST, SAME = "list", "same"  # wildcards: any list type / the input's own type


@dataclass(frozen=True)
class Const:
    """A constant an operation uses: its kind (how it is drawn and said) and, when it may
    become a function argument instead of a literal, the names that argument can take."""

    kind: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Op:
    """One typed primitive operation with its semantics, code forms and wordings."""

    key: str
    takes: tuple[str, ...]
    gives: str
    kind: str  # "map" | "filter" | "agg" | "expr" | "dictmap" | "loop"
    run: Callable[..., Any]
    code: tuple[str, ...]
    say: tuple[str, ...]
    then: tuple[str, ...]
    noun: tuple[str, ...]
    names: tuple[str, ...]
    var: tuple[str, ...]
    consts: tuple[Const, ...] = ()
    loop: tuple[tuple[str, str], ...] = ()  # (setup, per-element body) statement forms
    pre: str = ""  # agg only: element expression applied before aggregating
    tags: frozenset[str] = field(default_factory=frozenset)
    draw: Callable[[random.Random, tuple], tuple] | None = None  # inputs when it comes first


# ---------------------------------------------------------------- constants and inputs

JOINERS = (", ", "-", " ", "", "; ", "|", "/", " + ")
SPLITTERS = (",", ";", "-", "|", "/", ":")
CONST_DRAWS: dict[str, Callable[[random.Random], Any]] = {
    "count": lambda r: r.randint(2, 4),
    "factor": lambda r: r.randint(2, 5),
    "offset": lambda r: r.randint(1, 9),
    "thresh": lambda r: r.randint(0, 9),
    "div": lambda r: r.randint(2, 5),
    "lo": lambda r: r.randint(0, 3),
    "hi": lambda r: r.randint(5, 9),
    "letter": lambda r: r.choice("aeinorstl"),
    "mark": lambda r: r.choice("*_-#."),
    "joiner": lambda r: r.choice(JOINERS),
    "splitter": lambda r: r.choice(SPLITTERS),
    "wordlen": lambda r: r.randint(3, 6),
}

WORDS = (
    "apple", "anchor", "arrow", "atlas", "banana", "basil", "berry", "bridge", "cactus", "candle",
    "cedar", "cloud", "comet", "copper", "delta", "desk", "dune", "eagle", "echo", "ember",
    "falcon", "fern", "forest", "frost", "garden", "glass", "granite", "harbor", "hazel", "honey",
    "iris", "island", "ivory", "jade", "jasmine", "kettle", "kiwi", "lantern", "lemon", "lily",
    "maple", "marble", "meadow", "mint", "nectar", "needle", "north", "oak", "ocean", "olive",
    "orbit", "pebble", "pepper", "pine", "planet", "quartz", "quill", "raven", "river", "ruby",
    "saddle", "salt", "silver", "stone", "tiger", "tulip", "tundra", "umbra", "velvet", "violet",
    "walnut", "willow", "yarrow", "zephyr", "ant", "bee", "cat", "dog", "elk", "fig", "gem",
    "ink", "jam", "log", "map", "net", "owl", "pea", "ray", "sun", "tea", "urn", "van", "yak",
    "area", "idea", "radar", "level", "noon", "kayak", "rotor", "eerie", "aloe", "oasis",
)  # fmt: skip


def draw_int_list(r: random.Random) -> list[int]:
    lo, hi = r.choice([(-9, 20), (0, 9), (-5, 5), (1, 30), (0, 12)])
    return [r.randint(lo, hi) for _ in range(r.randint(3, 8))]


def draw_words(r: random.Random) -> list[str]:
    pool = WORDS if r.random() < 0.6 else r.sample(WORDS, 5)  # a small pool repeats words
    words = [r.choice(pool) for _ in range(r.randint(3, 7))]
    if r.random() < 0.25:
        words = [w.upper() if r.random() < 0.3 else w.capitalize() for w in words]
    return words


def _word_variant(r: random.Random, word: str) -> str:
    roll = r.random()
    if roll < 0.15:
        return word.upper()
    if roll < 0.35:
        return word.capitalize()
    if roll < 0.42:
        return word + r.choice("0123456789!?.,")
    return word


def draw_text(r: random.Random) -> str:
    words = [_word_variant(r, w) for w in r.sample(WORDS, r.randint(2, 5))]
    text = " ".join(words) if r.random() < 0.7 else "  ".join(words)
    if r.random() < 0.25:
        text = r.choice(["  ", " "]) + text + r.choice(["  ", " ", ""])
    return text


def draw_counts(r: random.Random) -> dict[str, int]:
    return {w: r.randint(0, 9) for w in r.sample(WORDS, r.randint(3, 5))}


def draw_groups(r: random.Random) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for word in draw_words(r):
        groups.setdefault(word[0], []).append(word)
    return groups


TYPE_DRAWS: dict[str, Callable[[random.Random], Any]] = {
    LI: draw_int_list,
    LS: draw_words,
    STR: draw_text,
    INT: lambda r: r.randint(0, 30),
    DI: draw_counts,
    DL: draw_groups,
}


def small(n: int, limit: int = 60) -> int:
    """``n`` itself, or ValueError when a reference run would build something huge from it."""
    if n > limit:
        raise ValueError(f"{n} is too large for a docstring example")
    return n


def _natural(n: int) -> int:
    if n < 0:
        raise ValueError("binary digits of a negative number")
    return n


def _maybe_sorted(r: random.Random, _consts: tuple) -> tuple:
    numbers = draw_int_list(r)
    return (sorted(numbers) if r.random() < 0.5 else numbers,)


def _one(draw: Callable[[random.Random], Any]) -> Callable[[random.Random, tuple], tuple]:
    return lambda r, _consts: (draw(r),)


# ---------------------------------------------------------------- numbers (list[int])

_NUMBER_MAPS = [
    Op("scale", (LI,), LI, "map", lambda xs, a: [x * a for x in xs], ("$pe * $a", "$a * $pe"),
       ("multiply every number in {x} by {a}", "scale each element of {x} by a factor of {a}",
        "multiply each item of {x} by {a}"),
       ("multiply each by {a}", "scale every value by {a}", "multiply the values by {a}"),
       ("{x} with every element multiplied by {a}", "each number of {x} times {a}"),
       ("scaled", "multiplied", "times"), ("scaled",),
       (Const("factor", ("factor", "k", "multiplier")),)),
    Op("shift", (LI,), LI, "map", lambda xs, a: [x + a for x in xs], ("$pe + $a",),
       ("add {a} to every number in {x}", "increase each element of {x} by {a}"),
       ("add {a} to each", "increase every value by {a}", "shift the values up by {a}"),
       ("{x} with {a} added to every element", "each element of {x} increased by {a}"),
       ("shifted", "incremented", "plus"), ("shifted",),
       (Const("offset", ("offset", "delta", "step", "amount")),)),
    Op("square", (LI,), LI, "map", lambda xs: [x * x for x in xs], ("$pe ** 2", "$pe * $pe"),
       ("square every number in {x}", "replace each element of {x} by its square"),
       ("square each", "square every value", "replace each value by its square"),
       ("the squares of {x}", "{x} squared element by element"),
       ("squares", "squared"), ("squares",)),
    Op("absolute", (LI,), LI, "map", lambda xs: [abs(x) for x in xs], ("abs($e)",),
       ("take the absolute value of each number in {x}",
        "make every element of {x} non-negative by dropping its sign"),
       ("take absolute values", "drop the sign of each value", "replace each by its absolute value"),
       ("the absolute values of {x}", "the magnitudes of the numbers in {x}"),
       ("absolute", "magnitudes"), ("magnitudes",)),
    Op("negate", (LI,), LI, "map", lambda xs: [-x for x in xs], ("-$pe",),
       ("negate every number in {x}", "flip the sign of each element of {x}"),
       ("negate each", "flip every sign", "change the sign of each value"),
       ("{x} with every sign flipped", "the negatives of the numbers in {x}"),
       ("negated", "flipped"), ("negated",)),
    Op("modulo", (LI,), LI, "map", lambda xs, a: [x % a for x in xs], ("$pe % $a",),
       ("replace each number in {x} by its remainder modulo {a}",
        "reduce every element of {x} modulo {a}"),
       ("take each modulo {a}", "keep only the remainder after dividing each by {a}"),
       ("the remainders of {x} modulo {a}", "each element of {x} reduced modulo {a}"),
       ("remainders", "mod", "residues"), ("remainders",),
       (Const("div", ("m", "modulus", "base")),)),
    Op("floordiv", (LI,), LI, "map", lambda xs, a: [x // a for x in xs], ("$pe // $a",),
       ("divide every number in {x} by {a}, rounding down", "floor-divide each element of {x} by {a}"),
       ("divide each by {a}, rounding down", "integer-divide the values by {a}"),
       ("{x} floor-divided by {a}", "the quotients of the elements of {x} divided by {a}, rounded down"),
       ("quotients", "divided"), ("quotients",),
       (Const("div", ("divisor", "d")),)),
    Op("clamp", (LI,), LI, "map", lambda xs, a, b: [min(max(x, a), b) for x in xs],
       ("min(max($e, $a), $b)", "max($a, min($e, $b))"),
       ("clamp every number in {x} into the range {a} to {b}",
        "limit each element of {x} to at least {a} and at most {b}"),
       ("clamp each into the range {a} to {b}", "cap the values at {b} and raise those below {a} to {a}"),
       ("{x} clamped to the range {a}..{b}", "the elements of {x} limited to lie between {a} and {b}"),
       ("clamped", "bounded"), ("clamped",), (Const("lo"), Const("hi"))),
]  # fmt: skip

_NUMBER_FILTERS = [
    Op("keep_above", (LI,), LI, "filter", lambda xs, a: [x for x in xs if x > a], ("$pe > $a",),
       ("keep only the numbers in {x} that are greater than {a}",
        "drop every element of {x} that is not above {a}", "select the values of {x} larger than {a}"),
       ("keep those greater than {a}", "discard anything not above {a}", "keep only the values above {a}"),
       ("the numbers in {x} greater than {a}", "the elements of {x} that exceed {a}"),
       ("above", "large", "over"), ("large", "above"),
       (Const("thresh", ("threshold", "limit", "cutoff", "lower")),)),
    Op("keep_below", (LI,), LI, "filter", lambda xs, a: [x for x in xs if x < a], ("$pe < $a",),
       ("keep only the numbers in {x} that are less than {a}",
        "drop every element of {x} that is {a} or more", "select the values of {x} below {a}"),
       ("keep those less than {a}", "discard anything {a} or larger", "keep only the values below {a}"),
       ("the numbers in {x} less than {a}", "the elements of {x} that stay below {a}"),
       ("below", "small", "under"), ("small", "below"),
       (Const("thresh", ("threshold", "limit", "upper", "cap")),)),
    Op("keep_even", (LI,), LI, "filter", lambda xs: [x for x in xs if x % 2 == 0], ("$pe % 2 == 0",),
       ("keep only the even numbers in {x}", "remove the odd numbers from {x}",
        "select the even elements of {x}"),
       ("keep the even ones", "drop the odd values", "keep only even numbers"),
       ("the even numbers in {x}", "the even elements of {x}"),
       ("even", "evens"), ("evens",)),
    Op("keep_odd", (LI,), LI, "filter", lambda xs: [x for x in xs if x % 2], ("$pe % 2 == 1", "$pe % 2 != 0"),
       ("keep only the odd numbers in {x}", "remove the even numbers from {x}",
        "select the odd elements of {x}"),
       ("keep the odd ones", "drop the even values", "keep only odd numbers"),
       ("the odd numbers in {x}", "the odd elements of {x}"),
       ("odd", "odds"), ("odds",)),
    Op("keep_positive", (LI,), LI, "filter", lambda xs: [x for x in xs if x > 0], ("$pe > 0",),
       ("keep only the positive numbers in {x}", "remove every number from {x} that is zero or negative"),
       ("keep the positive ones", "drop zeros and negatives", "throw away anything that is not positive"),
       ("the positive numbers in {x}", "the strictly positive elements of {x}"),
       ("positive", "positives"), ("positives",)),
    Op("keep_multiples", (LI,), LI, "filter", lambda xs, a: [x for x in xs if x % a == 0], ("$pe % $a == 0",),
       ("keep only the numbers in {x} divisible by {a}", "select the multiples of {a} from {x}"),
       ("keep the multiples of {a}", "drop everything not divisible by {a}"),
       ("the multiples of {a} in {x}", "the elements of {x} divisible by {a}"),
       ("multiples", "divisible"), ("multiples",),
       (Const("div", ("divisor", "d", "k")),)),
    Op("drop_value", (LI,), LI, "filter", lambda xs, a: [x for x in xs if x != a], ("$pe != $a",),
       ("remove every occurrence of {a} from {x}", "drop all elements of {x} equal to {a}"),
       ("remove every {a}", "drop the values equal to {a}"),
       ("{x} without any {a}", "the elements of {x} other than {a}"),
       ("without", "remove", "drop"), ("kept", "rest"),
       (Const("thresh", ("value", "target", "unwanted")),)),
]  # fmt: skip


def _differences(xs: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(xs)]


_NUMBER_WHOLES = [
    Op("sort_up", (LI,), LI, "expr", sorted, ("sorted($v)",),
       ("sort {x} in ascending order", "order {x} from smallest to largest"),
       ("sort them in ascending order", "order the result from smallest to largest", "sort the values"),
       ("{x} sorted in ascending order", "{x} from smallest to largest"),
       ("sorted", "ascending"), ("ordered",), tags=frozenset({"order", "orderless"})),
    Op("sort_down", (LI,), LI, "expr", lambda xs: sorted(xs, reverse=True),
       ("sorted($v, reverse=True)",),
       ("sort {x} in descending order", "order {x} from largest to smallest"),
       ("sort them in descending order", "order the result from largest to smallest"),
       ("{x} sorted in descending order", "{x} from largest to smallest"),
       ("descending", "sorted_desc"), ("ordered",), tags=frozenset({"order", "orderless"})),
    Op("running_sum", (LI,), LI, "expr", lambda xs: list(itertools.accumulate(xs)),
       ("list(itertools.accumulate($v))",),
       ("compute the running totals of {x}", "replace {x} by its cumulative sums"),
       ("take running totals", "turn them into cumulative sums", "compute prefix sums"),
       ("the running totals of {x}", "the cumulative sums of {x}"),
       ("running_totals", "cumulative", "prefix_sums"), ("totals", "running"),
       loop=(("$acc = 0\n$out = []", "$acc += $x\n$out.append($acc)"),)),
    Op("differences", (LI,), LI, "expr", _differences,
       ("[$z - $y for $y, $z in zip($v, $pv[1:])]", "[$pv[$i + 1] - $pv[$i] for $i in range(len($v) - 1)]"),
       ("compute the differences between consecutive numbers in {x}",
        "subtract each element of {x} from the one after it"),
       ("take the differences between neighbours", "compute the gaps between consecutive values"),
       ("the differences between consecutive elements of {x}",
        "the steps between neighbouring numbers of {x}"),
       ("differences", "deltas", "gaps"), ("deltas",)),
    Op("unique_sorted", (ANY_LIST,), SAME, "expr", lambda xs: sorted(set(xs)), ("sorted(set($v))",),
       ("collect the distinct {items} of {x} in increasing order", "sort {x} and remove duplicates"),
       ("keep each value once, in sorted order", "remove duplicates and sort"),
       ("the distinct {items} of {x} in sorted order", "the sorted set of {items} in {x}"),
       ("unique_sorted", "distinct_sorted"), ("distinct",), tags=frozenset({"orderless", "dupless"})),
]  # fmt: skip

_NUMBER_AGGS = [
    Op("total", (LI,), INT, "agg", sum, ("sum($g)",),
       ("add up the numbers in {x}", "compute the sum of {x}", "return the total of {x}"),
       ("add them up", "sum the result", "return their sum", "take the total"),
       ("the sum of {x}", "the total of {x}"), ("sum", "total"), ("total",),
       loop=(("$out = 0", "$out += $x"),), tags=frozenset({"orderless"})),
    Op("product", (LI,), INT, "agg", math.prod, ("math.prod($g)",),
       ("multiply the numbers in {x} together", "compute the product of {x}"),
       ("multiply them together", "return their product", "take the product"),
       ("the product of {x}", "the result of multiplying the numbers of {x} together"),
       ("product", "prod"), ("product",),
       loop=(("$out = 1", "$out *= $x"),), tags=frozenset({"orderless"})),
    Op("maximum", (LI,), INT, "agg", max, ("max($g)",),
       ("find the largest number in {x}", "return the maximum of {x}"),
       ("take the largest", "return the maximum", "find the biggest value"),
       ("the largest element of {x}", "the maximum of {x}"),
       ("max", "largest", "biggest", "highest"), ("largest",), tags=frozenset({"orderless"})),
    Op("minimum", (LI,), INT, "agg", min, ("min($g)",),
       ("find the smallest number in {x}", "return the minimum of {x}"),
       ("take the smallest", "return the minimum", "find the lowest value"),
       ("the smallest element of {x}", "the minimum of {x}"),
       ("min", "smallest", "lowest"), ("smallest",), tags=frozenset({"orderless"})),
    Op("spread", (LI,), INT, "expr", lambda xs: max(xs) - min(xs), ("max($v) - min($v)",),
       ("compute the difference between the largest and smallest number in {x}",
        "find the range (maximum minus minimum) of {x}"),
       ("take the difference between the largest and the smallest", "compute max minus min"),
       ("the spread of {x} (largest minus smallest)", "the difference between the maximum and minimum of {x}"),
       ("spread", "span", "value_range"), ("spread",), tags=frozenset({"orderless"})),
    Op("argmax", (LI,), INT, "expr", lambda xs: xs.index(max(xs)),
       ("$pv.index(max($v))", "max(range(len($v)), key=$pv.__getitem__)"),
       ("find the position of the largest number in {x} (the first one if it occurs more than once)",
        "return the index of the maximum of {x}, counting from 0"),
       ("return the index of the largest value (its first occurrence)",
        "find where the maximum sits, counting from 0"),
       ("the index of the first largest element of {x}", "the position of the maximum in {x}"),
       ("argmax", "index_of_max", "peak_index", "max_position"), ("peak",)),
    Op("any_above", (LI,), BOOL, "agg", lambda xs, a: any(x > a for x in xs), ("any($g)",),
       ("check whether any number in {x} is greater than {a}", "tell whether {x} contains a value above {a}"),
       ("check whether any of them exceeds {a}", "report whether some value is above {a}"),
       ("whether any element of {x} is greater than {a}", "whether {x} has a value above {a}"),
       ("any_above", "has_large", "exceeds"), ("found",),
       (Const("thresh", ("threshold", "limit", "bound")),), pre="$pe > $a",
       tags=frozenset({"orderless"})),
    Op("all_positive", (LI,), BOOL, "agg", lambda xs: all(x > 0 for x in xs), ("all($g)",),
       ("check whether every number in {x} is positive", "tell whether {x} holds only positive values"),
       ("check that all of them are positive", "report whether every value is above zero"),
       ("whether all elements of {x} are positive", "whether {x} is free of zeros and negatives"),
       ("all_positive", "only_positive"), ("ok",), pre="$pe > 0", tags=frozenset({"orderless"})),
    Op("is_sorted", (LI,), BOOL, "expr", lambda xs: all(a <= b for a, b in itertools.pairwise(xs)),
       ("all($y <= $z for $y, $z in zip($v, $pv[1:]))", "$v == sorted($v)"),
       ("check whether {x} is sorted in non-decreasing order", "tell whether the numbers of {x} never decrease"),
       ("check whether the result is sorted", "report whether the values are in non-decreasing order"),
       ("whether {x} is in non-decreasing order", "whether the values of {x} never go down"),
       ("is_sorted", "in_order", "is_ordered"), ("ordered",), draw=_maybe_sorted),
    Op("join_numbers", (LI,), STR, "agg", lambda xs, a: a.join(str(x) for x in xs), ("$a.join($g)",),
       ("join the numbers of {x} into one string separated by {a}",
        "write {x} out as text with {a} between the numbers"),
       ("join them into a string with {a} between", "turn them into text separated by {a}"),
       ("the numbers of {x} written out and joined by {a}", "{x} as text, separated by {a}"),
       ("joined", "as_text", "render"), ("text",),
       (Const("joiner", ("sep", "separator", "delimiter", "glue")),), pre="str($e)"),
]  # fmt: skip

# ---------------------------------------------------------------- any list


def _dedupe(xs: list) -> list:
    return list(dict.fromkeys(xs))


_LIST_OPS = [
    Op("reverse", (ANY_LIST,), SAME, "expr", lambda xs: xs[::-1], ("$pv[::-1]", "list(reversed($v))"),
       ("reverse {x}", "put the {items} of {x} in reverse order"),
       ("reverse them", "reverse the order", "flip the order"),
       ("{x} in reverse order", "{x} reversed"), ("reversed", "backwards"), ("backwards",),
       tags=frozenset({"order"})),
    Op("take_first", (ANY_LIST,), SAME, "expr", lambda xs, a: xs[:a], ("$pv[:$a]",),
       ("keep only the first {a} {items} of {x}", "take the first {a} {items} of {x}"),
       ("keep the first {a}", "take the first {a} of them", "cut the result down to its first {a} {items}"),
       ("the first {a} {items} of {x}", "the leading {a} {items} of {x}"),
       ("first", "head", "top", "leading"), ("head",),
       (Const("count", ("n", "k", "count", "limit")),)),
    Op("drop_first", (ANY_LIST,), SAME, "expr", lambda xs, a: xs[a:], ("$pv[$a:]",),
       ("skip the first {a} {items} of {x}", "drop the first {a} {items} of {x}"),
       ("skip the first {a}", "drop the first {a} of them"),
       ("{x} without its first {a} {items}", "all but the first {a} {items} of {x}"),
       ("rest", "tail", "after", "skip"), ("rest",),
       (Const("count", ("n", "k", "skip", "offset")),)),
    Op("take_last", (ANY_LIST,), SAME, "expr", lambda xs, a: xs[-a:], ("$pv[-$a:]",),
       ("keep only the last {a} {items} of {x}", "take the final {a} {items} of {x}"),
       ("keep the last {a}", "take the last {a} of them"),
       ("the last {a} {items} of {x}", "the final {a} {items} of {x}"),
       ("last", "final", "trailing"), ("last",),
       (Const("count", ("n", "k", "count")),)),
    Op("every_other", (ANY_LIST,), SAME, "expr", lambda xs: xs[::2], ("$pv[::2]",),
       ("keep every other {item} of {x}, starting with the first",
        "take the {items} of {x} at even positions (0, 2, 4, ...)"),
       ("keep every second one, starting with the first", "take every other {item}"),
       ("every other {item} of {x}", "the {items} of {x} at even indices"),
       ("every_other", "alternate", "even_positions"), ("alternate",)),
    Op("dedupe", (ANY_LIST,), SAME, "expr", _dedupe, ("list(dict.fromkeys($v))",),
       ("remove duplicates from {x}, keeping the first occurrence of each",
        "drop repeated {items} from {x} while keeping their order"),
       ("remove duplicates (keep first occurrences)", "drop repeats, keeping the original order"),
       ("the distinct {items} of {x} in order of first appearance", "{x} with duplicates removed"),
       ("unique", "distinct", "deduped"), ("unique",),
       loop=(("$out = []", "if $x not in $out:\n    $out.append($x)"),), tags=frozenset({"dup"})),
    Op("rotate", (ANY_LIST,), SAME, "expr", lambda xs, a: xs[a:] + xs[:a], ("$pv[$a:] + $pv[:$a]",),
       ("rotate {x} left by {a} places", "move the first {a} {items} of {x} to the end"),
       ("rotate left by {a}", "move the first {a} to the end"),
       ("{x} rotated left by {a} positions", "{x} with its first {a} {items} moved to the back"),
       ("rotated", "rotate_left"), ("rotated",),
       (Const("count", ("k", "n", "shift")),), tags=frozenset({"order"})),
    Op("count", (ANY_LIST,), INT, "agg", len, ("len($v)",),
       ("count the {items} in {x}", "find how many {items} {x} has"),
       ("count them", "return how many are left", "count what remains"),
       ("the number of {items} in {x}", "how many {items} {x} contains"),
       ("count", "num", "how_many", "number_of"), ("count",),
       loop=(("$out = 0", "$out += 1"),), tags=frozenset({"orderless"})),
]  # fmt: skip

# ---------------------------------------------------------------- integers

_INT_OPS = [
    Op("digits", (INT,), LI, "expr", lambda n: [int(d) for d in str(n)],
       ("[int($c) for $c in str($v)]", "list(map(int, str($v)))"),
       ("split {x} into its decimal digits", "list the digits of {x}, most significant first"),
       ("split it into digits", "list its digits"),
       ("the decimal digits of {x}", "the digits of {x} from left to right"),
       ("digits",), ("digits",), draw=_one(lambda r: r.randint(10, 99999))),
    Op("upto", (INT,), LI, "expr", lambda n: list(range(1, small(n) + 1)),
       ("list(range(1, $v + 1))",),
       ("list the whole numbers from 1 up to {x}", "build the list 1, 2, ..., {x}"),
       ("list the numbers from 1 up to it",),
       ("the numbers from 1 to {x}", "the integers 1 through {x}"),
       ("upto", "one_to", "range_to"), ("numbers",), draw=_one(lambda r: r.randint(0, 12))),
    Op("divisors", (INT,), LI, "expr", lambda n: [d for d in range(1, small(n, 10_000) + 1) if n % d == 0],
       ("[$i for $i in range(1, $v + 1) if $v % $i == 0]",),
       ("list the positive divisors of {x} in increasing order", "find every number that divides {x} evenly"),
       ("list its divisors",),
       ("the divisors of {x}", "the positive divisors of {x}"),
       ("divisors", "factors"), ("divisors",), draw=_one(lambda r: r.randint(1, 60))),
    Op("binary", (INT,), STR, "expr", lambda n: bin(_natural(n))[2:],
       ("bin($v)[2:]", "format($v, 'b')"),
       ("write {x} in binary without a prefix", "convert {x} to a string of binary digits"),
       ("write it in binary",),
       ("the binary representation of {x} (no '0b' prefix)", "{x} written in base 2"),
       ("binary", "to_binary", "bits"), ("bits",), draw=_one(lambda r: r.randint(0, 200))),
]  # fmt: skip

NUMBER_OPS: list[Op] = _NUMBER_MAPS + _NUMBER_FILTERS + _NUMBER_WHOLES + _NUMBER_AGGS
LIST_OPS: list[Op] = _LIST_OPS
INT_OPS: list[Op] = _INT_OPS
