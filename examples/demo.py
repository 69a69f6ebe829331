"""Functions waiting for their bodies: open this file in an editor with docomplete running.

Each function has a signature and a docstring with ``>>>`` examples. Put the cursor at the end
of a docstring (or on the empty line below it) and ask for a completion: docomplete samples
several bodies, drops the ones that do not compile, runs the examples against the rest and
shows the best one. ``docomplete demo`` does exactly that for every function here.
"""

VOWELS = "aeiou"


def total(numbers: list[int]) -> int:
    """Return the sum of the numbers.

    >>> total([1, 2, 3])
    6
    >>> total([])
    0
    """


def reverse_string(text: str) -> str:
    """Return text reversed.

    >>> reverse_string("abc")
    'cba'
    >>> reverse_string("")
    ''
    """


def count_vowels(text: str) -> int:
    """Count the characters of text that are in VOWELS (lower case only).

    >>> count_vowels("banana")
    3
    >>> count_vowels("xyz")
    0
    """


def keep_even(numbers: list[int]) -> list[int]:
    """Return the even numbers, in their original order.

    >>> keep_even([1, 2, 3, 4])
    [2, 4]
    >>> keep_even([7])
    []
    """


def largest(numbers: list[int]) -> int:
    """Return the largest of the numbers (the list is not empty).

    >>> largest([3, 9, 2])
    9
    >>> largest([-5, -2])
    -2
    """


def is_palindrome(text: str) -> bool:
    """Return True if text reads the same backwards.

    >>> is_palindrome("level")
    True
    >>> is_palindrome("hello")
    False
    """


def square_all(numbers: list[int]) -> list[int]:
    """Return the square of each number.

    >>> square_all([1, 2, 3])
    [1, 4, 9]
    """


def count_words(sentence: str) -> int:
    """Return how many words (separated by whitespace) the sentence has.

    >>> count_words("the quick brown fox")
    4
    >>> count_words("")
    0
    """


def factorial(n: int) -> int:
    """Return n! for n >= 0.

    >>> factorial(5)
    120
    >>> factorial(0)
    1
    """


def mean(values: list[float]) -> float:
    """Return the arithmetic mean of a non-empty list.

    >>> mean([1.0, 2.0, 3.0])
    2.0
    """
