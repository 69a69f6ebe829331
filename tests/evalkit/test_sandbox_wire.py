"""The plain-data encoding between the candidate's process and the verifier (no sandbox).

What a candidate sends is decoded into builtin objects only; anything malformed is refused
rather than guessed at.
"""

from __future__ import annotations

import json
import math
from collections import Counter, OrderedDict, namedtuple
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction

import pytest

from evalkit.sandbox_wire import Unsupported, WireError, decode, encode, loads


def _round_trip(value: object) -> object:
    return decode(loads(json.dumps(encode(value)).encode()))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        2**50_000,
        1.5,
        "tab\t\u00e9\ud800",
        b"\x00\xff",
        bytearray(b"ab"),
        3 - 2j,
        [1, [2, [3]]],
        (1, (2,), ()),
        {"a": 1, 2: (3, 4), (5, 6): None},
        {1, "x", (2, 3)},
        frozenset({frozenset({1})}),
        Fraction(-7, 3),
        Decimal("1.10"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_plain_data_round_trips_with_its_type(value: object) -> None:
    back = _round_trip(value)
    assert back == value and type(back) is type(value)


def test_nan_and_infinities_survive() -> None:
    back = _round_trip([math.nan, math.inf, -math.inf])
    assert isinstance(back, list) and math.isnan(back[0]) and back[1:] == [math.inf, -math.inf]


def test_subclasses_arrive_as_their_builtin_base() -> None:
    Pair = namedtuple("Pair", "a b")

    class Level(IntEnum):
        HIGH = 3

    class Shout(str):
        def __eq__(self, other: object) -> bool:  # never consulted: only the base value goes
            return True

        __hash__ = str.__hash__

    sent = [Counter("aab"), OrderedDict(b=2, a=1), Pair(1, 2), Level.HIGH, Shout("hi")]
    back = _round_trip(sent)
    assert back == [{"a": 2, "b": 1}, {"b": 2, "a": 1}, (1, 2), 3, "hi"]
    assert [type(item) for item in back] == [dict, dict, tuple, int, str]  # type: ignore[union-attr]
    assert list(back[1]) == ["b", "a"]  # type: ignore[index]


def test_objects_that_are_not_data_are_refused() -> None:
    class Point:
        pass

    for value in (Point(), [1, Point()], len, iter([1]), {1: object()}):
        with pytest.raises(Unsupported):
            encode(value)
    nested: list[object] = []
    nested.append(nested)
    with pytest.raises(Unsupported):
        encode(nested)


@pytest.mark.parametrize(
    "raw",
    [
        {"t": [1], "extra": 2},
        {"zz": 1},
        {"d": [[1]]},
        {"d": [[[1], 2]]},  # a list as a key: unhashable
        {"s": [[1]]},
        {"q": [1, 0]},
        {"q": ["1", 2]},
        {"i": "xyz"},
        {"c": [1, "2"]},
        {"b": 12},
        {"m": "1" * 20_000},
    ],
)
def test_malformed_values_are_refused(raw: object) -> None:
    with pytest.raises(WireError):
        decode(raw)


def test_nesting_is_bounded_on_both_sides() -> None:
    deep: object = 1
    for _ in range(250):
        deep = [deep, 2]
    with pytest.raises(Unsupported):
        encode(deep)
    with pytest.raises(WireError):
        decode(deep)
