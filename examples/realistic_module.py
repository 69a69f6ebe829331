"""A module as people write them, to try docomplete on (see docs/LSP.md, "Real files").

It imports a package the doctest sandbox may lack (``httpx``) and a sibling module with a
relative import (``.helpers``), has a class, a nested function, decorated and ``async``
functions, a partial body with code below the cursor and a half-written line. Each function
marked CURSOR is waiting for its body where that comment says.
"""

from __future__ import annotations

import asyncio  # noqa: F401 (for the bodies to be written)
import functools

import httpx

from .helpers import slugify  # noqa: F401

DEFAULT_TIMEOUT = 5.0


def celsius_to_kelvin(c: float) -> float:
    """Convert degrees Celsius to kelvin.

    >>> celsius_to_kelvin(0)
    273.15
    >>> celsius_to_kelvin(100)
    373.15
    """
    # CURSOR: after the docstring


def page_slug(title: str, page: int) -> str:
    """The URL slug of a page: slugify(title), a hyphen, the page number.

    >>> page_slug("Hello World", 2)
    'hello-world-2'
    """
    # CURSOR: after the docstring (uses the relative import)


def status_text(code: int) -> str:
    """The reason phrase of an HTTP status code.

    >>> status_text(404)
    'Not Found'
    """
    # CURSOR: after the docstring (needs httpx in the sandbox)


class Stack:
    """A last-in, first-out stack of integers."""

    def __init__(self) -> None:
        self.items: list[int] = []

    def push(self, item: int) -> None:
        """Put item on top."""
        self.items.append(item)

    def size(self) -> int:
        """How many items the stack holds.

        >>> s = Stack()
        >>> s.push(1); s.push(2)
        >>> s.size()
        2
        """
        # CURSOR: a method

    def peek(self) -> int:
        """The top item, left in place."""
        return self.items[-1]


def word_counts(lines: list[str]) -> dict[str, int]:
    """Count the words of all lines, case-insensitively."""

    def words(line: str) -> list[str]:
        """The lower-cased words of line.

        >>> words("A b")
        ['a', 'b']
        """
        # CURSOR: a nested function

    counts: dict[str, int] = {}
    for line in lines:
        for word in words(line):
            counts[word] = counts.get(word, 0) + 1
    return counts


@functools.cache
def fibonacci(n: int) -> int:
    """The n-th Fibonacci number.

    >>> fibonacci(10)
    55
    """
    # CURSOR: a decorated function


async def fetch_json(url: str) -> dict:
    """GET url and decode its JSON body."""
    async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as client:
        response = await client.get(url)
        # CURSOR: a partial body, with code below
    return response.json()


async def fetch_all(urls: list[str]) -> list[dict]:
    """Fetch every url concurrently."""
    # CURSOR: an async function


def clamp(value: int, low: int, high: int) -> int:
    """Value limited to the range low..high.

    >>> clamp(15, 0, 10)
    10
    >>> clamp(-3, 0, 10)
    0
    """
    return max(low, min(value))  # CURSOR: mid-line, after "value"
