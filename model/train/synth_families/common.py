"""The task-family record and the random inputs and parameter names that families draw on."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Family:
    """One task: its candidate names and wordings, correct bodies, and a source of call inputs."""

    names: list[str]
    params: list[tuple[list[str], str]]  # (candidate names, type hint) per parameter
    returns: str
    descriptions: list[str]  # use {a}, {b}, {c} for the parameter names
    bodies: list[str]  # 4-space relative indentation inside; use {a}, {b}, {c}
    inputs: Callable[[random.Random], tuple]


def rand_ints(
    r: random.Random, lo: int = -9, hi: int = 20, n_lo: int = 0, n_hi: int = 7
) -> list[int]:
    """A list of random ints in [lo, hi] with a length in [n_lo, n_hi]."""
    return [r.randint(lo, hi) for _ in range(r.randint(n_lo, n_hi))]


def rand_nonempty(r: random.Random, lo: int = -9, hi: int = 20) -> list[int]:
    """A random list of ints with at least one element."""
    return rand_ints(r, lo, hi, 1, 7)


WORDS = [
    "apple",
    "banana",
    "cherry",
    "dog",
    "cat",
    "house",
    "tree",
    "river",
    "stone",
    "cloud",
    "green",
    "blue",
    "red",
    "sun",
    "moon",
    "star",
    "book",
    "pen",
    "code",
    "data",
    "list",
    "map",
    "key",
    "value",
    "python",
    "hello",
    "world",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "fish",
    "bird",
    "rain",
    "snow",
    "wind",
    "fire",
    "water",
    "light",
    "dark",
    "level",
    "radar",
    "noon",
    "kayak",
    "test",
    "unit",
    "node",
    "edge",
]


def rand_word(r: random.Random) -> str:
    """One word from WORDS."""
    return r.choice(WORDS)


def rand_words(r: random.Random, n_lo: int = 0, n_hi: int = 5) -> list[str]:
    """A list of words from WORDS."""
    return [rand_word(r) for _ in range(r.randint(n_lo, n_hi))]


def rand_sentence(r: random.Random) -> str:
    """One to five words from WORDS joined by spaces."""
    return " ".join(rand_words(r, 1, 5))


def rand_text(r: random.Random) -> str:
    """Up to twelve random letters and spaces, stripped (may be empty)."""
    pool = string.ascii_letters + "   aeiou"
    return "".join(r.choice(pool) for _ in range(r.randint(0, 12))).strip()


# Candidate parameter names: lists of ints, lists of strings, strings, single numbers.
L_INT = ["numbers", "nums", "values", "lst", "xs", "data", "items", "arr"]
L_STR = ["words", "strings", "names", "items", "texts"]
S = ["s", "text", "string", "word", "sentence"]
N = ["n", "num", "number", "x", "k"]
