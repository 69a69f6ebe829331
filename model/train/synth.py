"""Generated fine-tuning data: small docstring tasks with doctests and verified bodies.

Each task family has several names, argument names, wordings and correct bodies. Doctest outputs
are computed by running the body on random inputs, and every finished function is then checked
by running its own doctests in a separate process: only functions whose doctests pass are kept.
None of this text comes from HumanEval.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Family:
    names: list[str]
    params: list[tuple[list[str], str]]  # (candidate names, type hint) per parameter
    returns: str
    descriptions: list[str]  # use {a}, {b}, {c} for the parameter names
    bodies: list[str]  # 4-space relative indentation inside; use {a}, {b}, {c}
    inputs: Callable[[random.Random], tuple]


def _ints(r: random.Random, lo: int = -9, hi: int = 20, n_lo: int = 0, n_hi: int = 7) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(n_lo, n_hi))]


def _nonempty(r: random.Random, lo: int = -9, hi: int = 20) -> list[int]:
    return _ints(r, lo, hi, 1, 7)


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


def _word(r: random.Random) -> str:
    return r.choice(WORDS)


def _words(r: random.Random, n_lo: int = 0, n_hi: int = 5) -> list[str]:
    return [_word(r) for _ in range(r.randint(n_lo, n_hi))]


def _sentence(r: random.Random) -> str:
    return " ".join(_words(r, 1, 5))


def _text(r: random.Random) -> str:
    pool = string.ascii_letters + "   aeiou"
    return "".join(r.choice(pool) for _ in range(r.randint(0, 12))).strip()


L_INT = ["numbers", "nums", "values", "lst", "xs", "data", "items", "arr"]
L_STR = ["words", "strings", "names", "items", "texts"]
S = ["s", "text", "string", "word", "sentence"]
N = ["n", "num", "number", "x", "k"]

FAMILIES: list[Family] = [
    Family(
        ["sum_list", "total", "list_sum", "sum_of_numbers", "add_all"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the sum of all numbers in {a}.",
            "Add up the elements of {a} and return the total.",
            "Compute the total of the integers in the list {a}.",
            "Given a list of integers {a}, return their sum.",
        ],
        ["return sum({a})", "total = 0\nfor x in {a}:\n    total += x\nreturn total"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["product", "multiply_all", "list_product", "product_of"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the product of all numbers in {a}. The product of an empty list is 1.",
            "Multiply together every element of {a} and return the result (1 for an empty list).",
        ],
        ["result = 1\nfor x in {a}:\n    result *= x\nreturn result"],
        lambda r: (_ints(r, -5, 9, 0, 5),),
    ),
    Family(
        ["largest", "max_value", "biggest", "largest_item"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the largest number in the non-empty list {a}.",
            "Find the maximum element of {a}.",
            "Given a non-empty list {a}, return its biggest value.",
        ],
        [
            "return max({a})",
            "best = {a}[0]\nfor x in {a}[1:]:\n    if x > best:\n        best = x\nreturn best",
        ],
        lambda r: (_nonempty(r),),
    ),
    Family(
        ["smallest", "min_value", "find_min", "minimum"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the smallest number in the non-empty list {a}.",
            "Find the minimum element of {a}.",
        ],
        [
            "return min({a})",
            "best = {a}[0]\nfor x in {a}[1:]:\n    if x < best:\n        best = x\nreturn best",
        ],
        lambda r: (_nonempty(r),),
    ),
    Family(
        ["reverse_list", "reversed_list", "reverse_items", "backwards"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a new list with the elements of {a} in reverse order.", "Reverse the list {a}."],
        ["return {a}[::-1]", "return list(reversed({a}))"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["reverse_string", "reverse_text", "backwards_string", "flip"],
        [(S, "str")],
        "str",
        [
            "Return {a} reversed.",
            "Return the characters of {a} in reverse order.",
            "Reverse the string {a}.",
        ],
        ["return {a}[::-1]", "return ''.join(reversed({a}))"],
        lambda r: (_text(r),),
    ),
    Family(
        ["count_occurrences", "count_of", "how_many", "count_value"],
        [(L_INT, "List[int]"), (["target", "value", "x", "item"], "int")],
        "int",
        [
            "Count how many times {b} appears in {a}.",
            "Return the number of elements of {a} equal to {b}.",
        ],
        [
            "return {a}.count({b})",
            "count = 0\nfor x in {a}:\n    if x == {b}:\n        count += 1\nreturn count",
        ],
        lambda r: (_ints(r, 0, 4, 0, 8), r.randint(0, 4)),
    ),
    Family(
        ["filter_even", "even_numbers", "get_evens", "only_even", "keep_even"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return only the even numbers from {a}, in their original order.",
            "Given a list of integers {a}, return a list of the even ones.",
            "Filter {a} so that only even numbers remain.",
        ],
        [
            "return [x for x in {a} if x % 2 == 0]",
            "result = []\nfor x in {a}:\n    if x % 2 == 0:\n        result.append(x)\nreturn result",
        ],
        lambda r: (_ints(r),),
    ),
    Family(
        ["filter_odd", "odd_numbers", "get_odds", "only_odd"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return only the odd numbers from {a}.",
            "Return a list of the odd elements of {a}, keeping their order.",
        ],
        ["return [x for x in {a} if x % 2 == 1]", "return [x for x in {a} if x % 2 != 0]"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["positives", "filter_positive", "only_positive"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the numbers in {a} that are strictly greater than zero.",
            "Keep only the positive numbers of {a}.",
        ],
        ["return [x for x in {a} if x > 0]"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["greater_than", "above", "filter_greater", "bigger_than"],
        [(L_INT, "List[int]"), (["limit", "threshold", "bound", "k"], "int")],
        "List[int]",
        [
            "Return the elements of {a} that are greater than {b}.",
            "Given a list {a} and a number {b}, return the items larger than {b}.",
        ],
        ["return [x for x in {a} if x > {b}]"],
        lambda r: (_ints(r), r.randint(0, 10)),
    ),
    Family(
        ["count_even", "number_of_evens", "even_count"],
        [(L_INT, "List[int]")],
        "int",
        ["Return how many even numbers are in {a}.", "Count the even integers in {a}."],
        ["return sum(1 for x in {a} if x % 2 == 0)", "return len([x for x in {a} if x % 2 == 0])"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["square_all", "squares", "square_each", "squared"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a list with the square of each number in {a}.", "Square every element of {a}."],
        ["return [x * x for x in {a}]", "return [x ** 2 for x in {a}]"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["double_all", "doubled", "times_two"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return a new list where every element of {a} is multiplied by 2.",
            "Double each number in {a}.",
        ],
        ["return [2 * x for x in {a}]"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["is_even", "even", "check_even"],
        [(N, "int")],
        "bool",
        ["Return True if {a} is even, False otherwise.", "Check whether the integer {a} is even."],
        ["return {a} % 2 == 0"],
        lambda r: (r.randint(-20, 50),),
    ),
    Family(
        ["prime", "check_prime", "is_prime_number"],
        [(N, "int")],
        "bool",
        ["Return True if {a} is a prime number, otherwise False.", "Check whether {a} is prime."],
        [
            "if {a} < 2:\n    return False\nfor d in range(2, int({a} ** 0.5) + 1):\n    if {a} % d == 0:\n        return False\nreturn True",
            "if {a} < 2:\n    return False\ni = 2\nwhile i * i <= {a}:\n    if {a} % i == 0:\n        return False\n    i += 1\nreturn True",
        ],
        lambda r: (r.randint(0, 60),),
    ),
    Family(
        ["factorial", "fact"],
        [(N, "int")],
        "int",
        ["Return the factorial of {a}.", "Compute {a}! (the product of 1..{a}); 0! is 1."],
        [
            "result = 1\nfor i in range(2, {a} + 1):\n    result *= i\nreturn result",
            "if {a} <= 1:\n    return 1\nreturn {a} * factorial({a} - 1)",
        ],
        lambda r: (r.randint(0, 10),),
    ),
    Family(
        ["fibonacci", "nth_fibonacci", "fibonacci_number"],
        [(N, "int")],
        "int",
        [
            "Return the {a}-th Fibonacci number, where fib(0) = 0 and fib(1) = 1.",
            "Compute the Fibonacci number at index {a} (starting 0, 1, 1, 2, ...).",
        ],
        ["a, b = 0, 1\nfor _ in range({a}):\n    a, b = b, a + b\nreturn a"],
        lambda r: (r.randint(0, 20),),
    ),
    Family(
        ["fizzbuzz", "fizz_buzz_word", "fizzbuzz_value"],
        [(N, "int")],
        "str",
        [
            "Return 'FizzBuzz' if {a} is divisible by 3 and 5, 'Fizz' if only by 3, 'Buzz' if only by 5, otherwise {a} as a string."
        ],
        [
            "if {a} % 15 == 0:\n    return 'FizzBuzz'\nif {a} % 3 == 0:\n    return 'Fizz'\nif {a} % 5 == 0:\n    return 'Buzz'\nreturn str({a})"
        ],
        lambda r: (r.randint(1, 40),),
    ),
    Family(
        ["running_total", "cumulative_sum", "prefix_sums", "running_sum"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the running totals of {a}: element i is the sum of the first i + 1 numbers.",
            "Compute the cumulative sum of {a}.",
        ],
        [
            "result = []\ntotal = 0\nfor x in {a}:\n    total += x\n    result.append(total)\nreturn result"
        ],
        lambda r: (_ints(r),),
    ),
    Family(
        ["count_vowels", "vowel_count", "num_vowels"],
        [(S, "str")],
        "int",
        [
            "Return the number of vowels (a, e, i, o, u, either case) in {a}.",
            "Count the vowels in the string {a}.",
        ],
        [
            "return sum(1 for ch in {a}.lower() if ch in 'aeiou')",
            "count = 0\nfor ch in {a}.lower():\n    if ch in 'aeiou':\n        count += 1\nreturn count",
        ],
        lambda r: (_text(r),),
    ),
    Family(
        ["palindrome", "reads_same_backwards", "check_palindrome"],
        [(S, "str")],
        "bool",
        [
            "Return True if {a} reads the same forwards and backwards.",
            "Check whether the string {a} is a palindrome.",
        ],
        ["return {a} == {a}[::-1]"],
        lambda r: (r.choice([_word(r), _text(r), "abba", "racecar", "ab"]),),
    ),
    Family(
        ["capitalize_words", "title_words", "capitalize_each"],
        [(S, "str")],
        "str",
        [
            "Return {a} with the first letter of every word capitalized; words are separated by single spaces."
        ],
        ["return ' '.join(w.capitalize() for w in {a}.split(' '))"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["count_words", "word_count", "number_of_words"],
        [(S, "str")],
        "int",
        [
            "Return the number of words in {a}; words are separated by whitespace.",
            "Count the words in the sentence {a}.",
        ],
        ["return len({a}.split())"],
        lambda r: (r.choice([_sentence(r), ""]),),
    ),
    Family(
        ["word_lengths", "lengths_of_words"],
        [(S, "str")],
        "List[int]",
        [
            "Return a list with the length of each word in {a}.",
            "Split {a} on whitespace and return the length of every word.",
        ],
        ["return [len(w) for w in {a}.split()]"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["char_frequency", "letter_counts", "count_chars", "character_histogram"],
        [(S, "str")],
        "Dict[str, int]",
        [
            "Return a dictionary mapping each character of {a} to the number of times it occurs.",
            "Count how often every character appears in {a}.",
        ],
        ["counts = {{}}\nfor ch in {a}:\n    counts[ch] = counts.get(ch, 0) + 1\nreturn counts"],
        lambda r: (_word(r),),
    ),
    Family(
        ["word_frequencies", "count_each_word", "tally_words"],
        [(L_STR, "List[str]")],
        "Dict[str, int]",
        [
            "Return a dictionary that maps each string in {a} to how many times it appears.",
            "Count the occurrences of every word in {a}.",
        ],
        [
            "counts = {{}}\nfor w in {a}:\n    if w in counts:\n        counts[w] += 1\n    else:\n        counts[w] = 1\nreturn counts"
        ],
        lambda r: ([r.choice(WORDS[:5]) for _ in range(r.randint(0, 6))],),
    ),
    Family(
        ["sort_ascending", "sorted_list", "ascending"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the numbers of {a} sorted from smallest to largest.",
            "Sort {a} in ascending order and return the new list.",
        ],
        ["return sorted({a})"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["sort_descending", "descending", "sort_reverse"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the numbers of {a} sorted from largest to smallest.",
            "Sort {a} in descending order.",
        ],
        ["return sorted({a}, reverse=True)"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["unique_sorted", "sorted_unique", "distinct_sorted"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the distinct values of {a} in increasing order.",
            "Remove duplicates from {a} and return the result sorted.",
        ],
        ["return sorted(set({a}))"],
        lambda r: (_ints(r, 0, 6, 0, 8),),
    ),
    Family(
        ["dedupe", "unique_in_order", "drop_repeats"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return {a} without duplicates, keeping the first occurrence of each value in its original order.",
            "Remove repeated elements from {a}, preserving order.",
        ],
        [
            "seen = set()\nresult = []\nfor x in {a}:\n    if x not in seen:\n        seen.add(x)\n        result.append(x)\nreturn result"
        ],
        lambda r: (_ints(r, 0, 6, 0, 8),),
    ),
    Family(
        ["average", "mean", "mean_value", "list_average"],
        [(L_INT, "List[float]")],
        "float",
        [
            "Return the arithmetic mean of the non-empty list {a}.",
            "Compute the average of the numbers in {a}.",
        ],
        ["return sum({a}) / len({a})"],
        lambda r: (_nonempty(r, 0, 20),),
    ),
    Family(
        ["value_range", "spread", "max_minus_min"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the difference between the largest and the smallest number in {a}.",
            "Compute max({a}) - min({a}) for the non-empty list {a}.",
        ],
        ["return max({a}) - min({a})"],
        lambda r: (_nonempty(r),),
    ),
    Family(
        ["second_largest", "runner_up"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the second largest distinct value in {a}; {a} has at least two distinct values."],
        ["return sorted(set({a}))[-2]"],
        lambda r: ([1, 5, *_ints(r, 0, 9, 0, 4)],),
    ),
    Family(
        ["gcd", "highest_common_factor", "common_divisor"],
        [(["a", "x", "m"], "int"), (["b", "y", "n"], "int")],
        "int",
        ["Return the greatest common divisor of the positive integers {a} and {b}."],
        ["while {b}:\n    {a}, {b} = {b}, {a} % {b}\nreturn {a}"],
        lambda r: (r.randint(1, 60), r.randint(1, 60)),
    ),
    Family(
        ["sum_digits", "digit_sum", "sum_of_digits"],
        [(N, "int")],
        "int",
        [
            "Return the sum of the decimal digits of the non-negative integer {a}.",
            "Add up the digits of {a}.",
        ],
        [
            "return sum(int(d) for d in str({a}))",
            "total = 0\nwhile {a} > 0:\n    total += {a} % 10\n    {a} //= 10\nreturn total",
        ],
        lambda r: (r.randint(0, 99999),),
    ),
    Family(
        ["count_digits", "num_digits", "digit_count"],
        [(N, "int")],
        "int",
        [
            "Return how many decimal digits the non-negative integer {a} has.",
            "Count the digits of {a}.",
        ],
        ["return len(str({a}))"],
        lambda r: (r.randint(0, 10 ** r.randint(1, 7)),),
    ),
    Family(
        ["reverse_words", "words_backwards", "flip_word_order"],
        [(S, "str")],
        "str",
        [
            "Return {a} with the order of its words reversed; words are separated by single spaces.",
            "Reverse the order of the words in {a}.",
        ],
        ["return ' '.join({a}.split(' ')[::-1])", "return ' '.join(reversed({a}.split(' ')))"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["remove_spaces", "strip_spaces", "without_spaces"],
        [(S, "str")],
        "str",
        ["Return {a} with every space character removed.", "Delete all spaces from {a}."],
        ["return {a}.replace(' ', '')", "return ''.join(ch for ch in {a} if ch != ' ')"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["starting_with", "filter_prefix", "with_prefix"],
        [(L_STR, "List[str]"), (["prefix", "start", "p"], "str")],
        "List[str]",
        [
            "Return the strings in {a} that start with {b}.",
            "Keep only the strings of {a} beginning with the prefix {b}.",
        ],
        ["return [w for w in {a} if w.startswith({b})]"],
        lambda r: (_words(r, 0, 6), r.choice("abcdrst")),
    ),
    Family(
        ["longest_word", "longest_string", "longest_item"],
        [(L_STR, "List[str]")],
        "str",
        [
            "Return the longest string in the non-empty list {a}; on a tie return the first one.",
            "Find the longest word in {a} (the first if several share the length).",
        ],
        [
            "best = {a}[0]\nfor w in {a}:\n    if len(w) > len(best):\n        best = w\nreturn best",
            "return max({a}, key=len)",
        ],
        lambda r: (_words(r, 1, 6),),
    ),
    Family(
        ["string_lengths", "lengths", "len_each"],
        [(L_STR, "List[str]")],
        "List[int]",
        ["Return a list containing the length of each string in {a}."],
        ["return [len(w) for w in {a}]"],
        lambda r: (_words(r),),
    ),
    Family(
        ["add_lists", "elementwise_sum", "pairwise_sum"],
        [(["a", "xs", "first"], "List[int]"), (["b", "ys", "second"], "List[int]")],
        "List[int]",
        [
            "Return a list whose i-th element is {a}[i] + {b}[i]; both lists have the same length.",
            "Add the two equally long lists {a} and {b} element by element.",
        ],
        ["return [x + y for x, y in zip({a}, {b})]"],
        lambda r: (
            lambda n: ([r.randint(-5, 9) for _ in range(n)], [r.randint(-5, 9) for _ in range(n)])
        )(r.randint(0, 5)),
    ),
    Family(
        ["dot_product", "dot", "inner_product"],
        [(["a", "u", "xs"], "List[int]"), (["b", "v", "ys"], "List[int]")],
        "int",
        ["Return the dot product of the equally long lists {a} and {b}."],
        ["return sum(x * y for x, y in zip({a}, {b}))"],
        lambda r: (
            lambda n: ([r.randint(-5, 9) for _ in range(n)], [r.randint(-5, 9) for _ in range(n)])
        )(r.randint(0, 5)),
    ),
    Family(
        ["index_of", "find_index", "position"],
        [(L_INT, "List[int]"), (["target", "value", "x"], "int")],
        "int",
        [
            "Return the index of the first occurrence of {b} in {a}, or -1 if {b} is not there.",
            "Find where {b} first appears in {a}; return -1 when it is missing.",
        ],
        [
            "for i, x in enumerate({a}):\n    if x == {b}:\n        return i\nreturn -1",
            "if {b} in {a}:\n    return {a}.index({b})\nreturn -1",
        ],
        lambda r: (_ints(r, 0, 6), r.randint(0, 6)),
    ),
    Family(
        ["clamp", "limit", "bound_value"],
        [
            (["value", "x", "n"], "int"),
            (["low", "lo", "minimum"], "int"),
            (["high", "hi", "maximum"], "int"),
        ],
        "int",
        [
            "Return {a} limited to the range [{b}, {c}].",
            "Clamp {a} so that it is at least {b} and at most {c}.",
        ],
        [
            "return max({b}, min({a}, {c}))",
            "if {a} < {b}:\n    return {b}\nif {a} > {c}:\n    return {c}\nreturn {a}",
        ],
        lambda r: (r.randint(-10, 20), r.randint(-5, 0), r.randint(1, 10)),
    ),
    Family(
        ["absolute_values", "abs_all", "magnitudes"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a list of the absolute values of the numbers in {a}."],
        ["return [abs(x) for x in {a}]"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["celsius_to_fahrenheit", "to_fahrenheit", "c_to_f"],
        [(["celsius", "c", "degrees"], "float")],
        "float",
        [
            "Convert the temperature {a} from Celsius to Fahrenheit.",
            "Return {a} degrees Celsius expressed in Fahrenheit.",
        ],
        ["return {a} * 9 / 5 + 32"],
        lambda r: (r.choice([0, 100, -40, 37, 25, 10]),),
    ),
    Family(
        ["count_uppercase", "num_capitals", "uppercase_count"],
        [(S, "str")],
        "int",
        ["Return the number of uppercase letters in {a}.", "Count the capital letters in {a}."],
        ["return sum(1 for ch in {a} if ch.isupper())"],
        lambda r: (_text(r),),
    ),
    Family(
        ["flatten", "flatten_once", "concat_lists"],
        [(["lists", "nested", "rows"], "List[List[int]]")],
        "List[int]",
        [
            "Flatten a list of lists {a} into a single list, keeping the order.",
            "Return all elements of the inner lists of {a} in one list.",
        ],
        [
            "return [x for inner in {a} for x in inner]",
            "result = []\nfor inner in {a}:\n    result.extend(inner)\nreturn result",
        ],
        lambda r: ([_ints(r, 0, 9, 0, 3) for _ in range(r.randint(0, 4))],),
    ),
    Family(
        ["is_ascending", "in_order", "check_sorted"],
        [(L_INT, "List[int]")],
        "bool",
        [
            "Return True if {a} is sorted in non-decreasing order.",
            "Check whether every element of {a} is at least the one before it.",
        ],
        [
            "return all({a}[i] <= {a}[i + 1] for i in range(len({a}) - 1))",
            "return {a} == sorted({a})",
        ],
        lambda r: (r.choice([sorted(_ints(r)), _ints(r)]),),
    ),
    Family(
        ["all_positive", "every_positive"],
        [(L_INT, "List[int]")],
        "bool",
        ["Return True if every number in {a} is greater than zero."],
        ["return all(x > 0 for x in {a})"],
        lambda r: (r.choice([_ints(r, 1, 9), _ints(r)]),),
    ),
    Family(
        ["has_negative", "any_negative", "contains_negative"],
        [(L_INT, "List[int]")],
        "bool",
        ["Return True if at least one number in {a} is negative."],
        ["return any(x < 0 for x in {a})"],
        lambda r: (r.choice([_ints(r, 0, 9), _ints(r)]),),
    ),
    Family(
        ["sum_of_squares", "square_sum"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the sum of the squares of the numbers in {a}."],
        ["return sum(x * x for x in {a})"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["first_even", "find_first_even"],
        [(L_INT, "List[int]")],
        "Optional[int]",
        ["Return the first even number in {a}, or None if there is none."],
        ["for x in {a}:\n    if x % 2 == 0:\n        return x\nreturn None"],
        lambda r: (_ints(r, 1, 15),),
    ),
    Family(
        ["scale", "multiply_by", "times"],
        [(L_INT, "List[int]"), (["factor", "k", "m"], "int")],
        "List[int]",
        ["Return a new list with every element of {a} multiplied by {b}."],
        ["return [x * {b} for x in {a}]"],
        lambda r: (_ints(r), r.randint(-3, 5)),
    ),
    Family(
        ["rotate_left", "rotate", "shift_left"],
        [(L_INT, "List[int]"), (["k", "steps", "n"], "int")],
        "List[int]",
        [
            "Rotate {a} to the left by {b} positions and return the new list.",
            "Move the first {b} elements of {a} to its end (rotation; {b} may exceed the length).",
        ],
        ["if not {a}:\n    return []\n{b} = {b} % len({a})\nreturn {a}[{b}:] + {a}[:{b}]"],
        lambda r: (_ints(r), r.randint(0, 8)),
    ),
    Family(
        ["join_words", "join_with", "glue"],
        [(L_STR, "List[str]"), (["sep", "separator", "delimiter"], "str")],
        "str",
        [
            "Join the strings in {a} with {b} between them.",
            "Return one string made of the items of {a} separated by {b}.",
        ],
        ["return {b}.join({a})"],
        lambda r: (_words(r), r.choice([", ", "-", " ", "", "|"])),
    ),
    Family(
        ["divisible_by", "multiples_of", "filter_divisible"],
        [(L_INT, "List[int]"), (["d", "divisor", "k"], "int")],
        "List[int]",
        [
            "Return the numbers in {a} that are divisible by {b}.",
            "Keep only the multiples of {b} from {a}.",
        ],
        ["return [x for x in {a} if x % {b} == 0]"],
        lambda r: (_ints(r, 0, 30), r.randint(2, 5)),
    ),
    Family(
        ["sum_even", "sum_of_evens", "even_sum"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the sum of the even numbers in {a}.", "Add up only the even elements of {a}."],
        [
            "return sum(x for x in {a} if x % 2 == 0)",
            "total = 0\nfor x in {a}:\n    if x % 2 == 0:\n        total += x\nreturn total",
        ],
        lambda r: (_ints(r),),
    ),
    Family(
        ["sum_odd", "sum_of_odds", "odd_sum"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the sum of the odd numbers in {a}."],
        ["return sum(x for x in {a} if x % 2 != 0)"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["is_anagram", "anagrams", "same_letters"],
        [(["a", "first", "s1"], "str"), (["b", "second", "s2"], "str")],
        "bool",
        [
            "Return True if {a} and {b} contain exactly the same characters, in any order.",
            "Check whether {a} is an anagram of {b}.",
        ],
        ["return sorted({a}) == sorted({b})"],
        lambda r: (lambda w: (w, r.choice(["".join(r.sample(w, len(w))), _word(r)])))(_word(r)),
    ),
    Family(
        ["digit_list", "to_digits", "split_digits"],
        [(N, "int")],
        "List[int]",
        [
            "Return the decimal digits of the non-negative integer {a} as a list, most significant first."
        ],
        ["return [int(d) for d in str({a})]"],
        lambda r: (r.randint(0, 99999),),
    ),
    Family(
        ["to_binary", "binary_string", "as_binary"],
        [(N, "int")],
        "str",
        [
            "Return the binary representation of the non-negative integer {a} as a string without a prefix."
        ],
        ["return bin({a})[2:]", "return format({a}, 'b')"],
        lambda r: (r.randint(0, 300),),
    ),
    Family(
        ["index_of_max", "argmax", "position_of_largest"],
        [(L_INT, "List[int]")],
        "int",
        [
            "Return the index of the largest element of the non-empty list {a} (the first one on ties)."
        ],
        [
            "return {a}.index(max({a}))",
            "best = 0\nfor i in range(1, len({a})):\n    if {a}[i] > {a}[best]:\n        best = i\nreturn best",
        ],
        lambda r: (_nonempty(r),),
    ),
    Family(
        ["differences", "consecutive_differences", "deltas"],
        [(L_INT, "List[int]")],
        "List[int]",
        [
            "Return the differences between consecutive elements of {a}: element i is {a}[i + 1] - {a}[i]."
        ],
        [
            "return [{a}[i + 1] - {a}[i] for i in range(len({a}) - 1)]",
            "return [b - a for a, b in zip({a}, {a}[1:])]",
        ],
        lambda r: (_ints(r),),
    ),
    Family(
        ["squares_up_to", "first_squares", "square_numbers"],
        [(N, "int")],
        "List[int]",
        ["Return the squares of the integers from 1 to {a} inclusive."],
        ["return [i * i for i in range(1, {a} + 1)]"],
        lambda r: (r.randint(0, 8),),
    ),
    Family(
        ["triangle_number", "sum_up_to", "sum_first_n"],
        [(N, "int")],
        "int",
        ["Return the sum of the integers from 1 to {a} inclusive.", "Add up 1 + 2 + ... + {a}."],
        ["return sum(range(1, {a} + 1))", "return {a} * ({a} + 1) // 2"],
        lambda r: (r.randint(0, 100),),
    ),
    Family(
        ["count_primes", "primes_below", "number_of_primes"],
        [(N, "int")],
        "int",
        ["Return how many prime numbers are smaller than {a}."],
        [
            "count = 0\nfor m in range(2, {a}):\n    if all(m % d for d in range(2, int(m ** 0.5) + 1)):\n        count += 1\nreturn count"
        ],
        lambda r: (r.randint(0, 60),),
    ),
    Family(
        ["primes_up_to", "list_primes"],
        [(N, "int")],
        "List[int]",
        ["Return a list of the prime numbers less than or equal to {a}."],
        [
            "return [m for m in range(2, {a} + 1) if all(m % d for d in range(2, int(m ** 0.5) + 1))]"
        ],
        lambda r: (r.randint(0, 40),),
    ),
    Family(
        ["repeat_string", "repeat", "repeat_text"],
        [(S, "str"), (["times", "n", "count"], "int")],
        "str",
        ["Return {a} repeated {b} times.", "Concatenate {b} copies of {a}."],
        ["return {a} * {b}"],
        lambda r: (_word(r)[:3], r.randint(0, 4)),
    ),
    Family(
        ["count_consonants", "consonant_count"],
        [(S, "str")],
        "int",
        ["Return the number of consonant letters (letters that are not a, e, i, o, u) in {a}."],
        ["return sum(1 for ch in {a}.lower() if ch.isalpha() and ch not in 'aeiou')"],
        lambda r: (_text(r),),
    ),
    Family(
        ["last_element", "last", "get_last"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the last element of the non-empty list {a}."],
        ["return {a}[-1]"],
        lambda r: (_nonempty(r),),
    ),
    Family(
        ["first_n", "take", "head"],
        [(L_INT, "List[int]"), (N, "int")],
        "List[int]",
        ["Return the first {b} elements of {a} (all of them if {a} is shorter)."],
        ["return {a}[:{b}]"],
        lambda r: (_ints(r), r.randint(0, 5)),
    ),
    Family(
        ["count_greater", "how_many_above"],
        [(L_INT, "List[int]"), (["limit", "threshold"], "int")],
        "int",
        ["Return how many elements of {a} are greater than {b}."],
        ["return sum(1 for x in {a} if x > {b})", "return len([x for x in {a} if x > {b}])"],
        lambda r: (_ints(r), r.randint(0, 10)),
    ),
    Family(
        ["to_upper", "shout", "uppercase"],
        [(S, "str")],
        "str",
        ["Return {a} converted to upper case."],
        ["return {a}.upper()"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["swap_case", "invert_case", "toggle_case"],
        [(S, "str")],
        "str",
        ["Return {a} with lowercase letters made uppercase and uppercase letters made lowercase."],
        [
            "return {a}.swapcase()",
            "return ''.join(ch.lower() if ch.isupper() else ch.upper() for ch in {a})",
        ],
        lambda r: (_text(r),),
    ),
    Family(
        ["contains", "has_item", "includes"],
        [(L_INT, "List[int]"), (["target", "value", "x"], "int")],
        "bool",
        ["Return True if {b} is an element of {a}."],
        ["return {b} in {a}"],
        lambda r: (_ints(r, 0, 9), r.randint(0, 9)),
    ),
    Family(
        ["interleave", "alternate", "zip_lists"],
        [(["a", "xs", "left"], "List[int]"), (["b", "ys", "right"], "List[int]")],
        "List[int]",
        [
            "Return a list that alternates elements from the equally long lists {a} and {b}, starting with {a}."
        ],
        [
            "result = []\nfor x, y in zip({a}, {b}):\n    result.append(x)\n    result.append(y)\nreturn result"
        ],
        lambda r: (
            lambda n: ([r.randint(0, 9) for _ in range(n)], [r.randint(0, 9) for _ in range(n)])
        )(r.randint(0, 4)),
    ),
    Family(
        ["power_of_two", "is_power_of_two"],
        [(N, "int")],
        "bool",
        ["Return True if {a} is a power of two (1, 2, 4, 8, ...)."],
        [
            "if {a} < 1:\n    return False\nwhile {a} % 2 == 0:\n    {a} //= 2\nreturn {a} == 1",
            "return {a} > 0 and {a} & ({a} - 1) == 0",
        ],
        lambda r: (r.choice([1, 2, 4, 8, 16, 64, 3, 6, 12, 0, r.randint(1, 100)]),),
    ),
    Family(
        ["vowel_words", "words_starting_with_vowel"],
        [(L_STR, "List[str]")],
        "List[str]",
        ["Return the words in {a} that start with a vowel."],
        ["return [w for w in {a} if w and w[0].lower() in 'aeiou']"],
        lambda r: (_words(r, 0, 6),),
    ),
    Family(
        ["count_char", "char_count", "occurrences_of"],
        [(S, "str"), (["ch", "char", "letter"], "str")],
        "int",
        ["Return how many times the character {b} occurs in {a}."],
        ["return {a}.count({b})", "return sum(1 for c in {a} if c == {b})"],
        lambda r: (_sentence(r), r.choice("aeorst ")),
    ),
    Family(
        ["max_of_three", "largest_of_three", "biggest_of"],
        [(["a", "x"], "int"), (["b", "y"], "int"), (["c", "z"], "int")],
        "int",
        ["Return the largest of {a}, {b} and {c}."],
        [
            "return max({a}, {b}, {c})",
            "best = {a}\nif {b} > best:\n    best = {b}\nif {c} > best:\n    best = {c}\nreturn best",
        ],
        lambda r: (r.randint(-9, 9), r.randint(-9, 9), r.randint(-9, 9)),
    ),
    Family(
        ["chunk", "split_into_chunks", "batches"],
        [(L_INT, "List[int]"), (["size", "n", "k"], "int")],
        "List[List[int]]",
        ["Split {a} into consecutive chunks of length {b}; the last chunk may be shorter."],
        ["return [{a}[i:i + {b}] for i in range(0, len({a}), {b})]"],
        lambda r: (_ints(r), r.randint(1, 3)),
    ),
    Family(
        ["key_with_max_value", "most_common_key"],
        [(["counts", "scores", "d"], "Dict[str, int]")],
        "str",
        [
            "Return the key of the non-empty dictionary {a} that has the largest value (the first such key on ties)."
        ],
        [
            "return max({a}, key={a}.get)",
            "best = None\nfor key in {a}:\n    if best is None or {a}[key] > {a}[best]:\n        best = key\nreturn best",
        ],
        lambda r: ({w: r.randint(0, 9) for w in _words(r, 1, 4)},),
    ),
    Family(
        ["invert_dict", "swap_keys_values"],
        [(["d", "mapping", "table"], "Dict[str, int]")],
        "Dict[int, str]",
        [
            "Return a new dictionary with the keys and values of {a} swapped; the values of {a} are unique."
        ],
        ["return {{v: k for k, v in {a}.items()}}"],
        lambda r: ({w: i for i, w in enumerate(dict.fromkeys(_words(r, 0, 4)))},),
    ),
    Family(
        ["is_leap_year", "leap_year"],
        [(["year", "y"], "int")],
        "bool",
        ["Return True if {a} is a leap year in the Gregorian calendar."],
        ["return {a} % 4 == 0 and ({a} % 100 != 0 or {a} % 400 == 0)"],
        lambda r: (r.choice([1900, 2000, 2004, 2023, 2024, 2100, r.randint(1800, 2100)]),),
    ),
    Family(
        ["count_positive", "positive_count"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the number of strictly positive numbers in {a}."],
        ["return sum(1 for x in {a} if x > 0)"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["middle", "middle_element"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the middle element of the list {a}, which has odd length."],
        ["return {a}[len({a}) // 2]"],
        lambda r: ([r.randint(0, 9) for _ in range(r.choice([1, 3, 5]))],),
    ),
    # Two-argument arithmetic and one-liners: without them "the sum of a and b" reads as sum(list).
    Family(
        ["add_numbers", "plus", "sum_two", "add_two"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        [
            "Return the sum of {a} and {b}.",
            "Add {a} and {b} and return the result.",
            "Return {a} plus {b}.",
        ],
        ["return {a} + {b}"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["subtract", "minus", "difference"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        [
            "Return {a} minus {b}.",
            "Subtract {b} from {a} and return the result.",
            "Return the difference {a} - {b}.",
        ],
        ["return {a} - {b}"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["multiply", "times_two_numbers", "mul"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        ["Return the product of {a} and {b}.", "Multiply {a} by {b}."],
        ["return {a} * {b}"],
        lambda r: (r.randint(-9, 12), r.randint(-9, 12)),
    ),
    Family(
        ["larger", "max_of_two", "bigger"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        ["Return the larger of {a} and {b}.", "Return whichever of {a} and {b} is greater."],
        ["return max({a}, {b})", "if {a} > {b}:\n    return {a}\nreturn {b}"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["smaller", "min_of_two", "lesser"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        ["Return the smaller of {a} and {b}."],
        ["return min({a}, {b})", "if {a} < {b}:\n    return {a}\nreturn {b}"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["average_of_two", "midpoint", "mean_of_two"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "float",
        ["Return the average of {a} and {b}.", "Return the number halfway between {a} and {b}."],
        ["return ({a} + {b}) / 2"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["is_divisible", "divides_evenly", "is_multiple"],
        [(["a", "x", "first", "m"], "int"), (["d", "divisor", "k"], "int")],
        "bool",
        [
            "Return True if {a} is divisible by {b}.",
            "Check whether {b} divides {a} without a remainder.",
        ],
        ["return {a} % {b} == 0"],
        lambda r: (r.randint(0, 60), r.randint(1, 9)),
    ),
    Family(
        ["power", "raise_to", "pow_int"],
        [(["base", "x", "b"], "int"), (["exponent", "e", "p"], "int")],
        "int",
        [
            "Return {a} raised to the power {b}.",
            "Compute {a} ** {b} for a non-negative exponent {b}.",
        ],
        ["return {a} ** {b}", "result = 1\nfor _ in range({b}):\n    result *= {a}\nreturn result"],
        lambda r: (r.randint(-4, 9), r.randint(0, 5)),
    ),
    Family(
        ["abs_difference", "distance", "gap"],
        [(["a", "x", "first", "m"], "int"), (["b", "y", "second", "n"], "int")],
        "int",
        [
            "Return the absolute difference between {a} and {b}.",
            "Return how far apart the numbers {a} and {b} are.",
        ],
        ["return abs({a} - {b})"],
        lambda r: (r.randint(-20, 50), r.randint(-20, 50)),
    ),
    Family(
        ["square", "squared_value", "sq"],
        [(N, "int")],
        "int",
        ["Return the square of {a}.", "Return {a} multiplied by itself."],
        ["return {a} * {a}", "return {a} ** 2"],
        lambda r: (r.randint(-12, 30),),
    ),
    Family(
        ["sign", "signum", "sign_of"],
        [(N, "int")],
        "int",
        ["Return 1 if {a} is positive, -1 if it is negative and 0 if it is zero."],
        ["if {a} > 0:\n    return 1\nif {a} < 0:\n    return -1\nreturn 0"],
        lambda r: (r.randint(-9, 9),),
    ),
    Family(
        ["concat", "join_two", "combine"],
        [(["a", "first", "left"], "str"), (["b", "second", "right"], "str")],
        "str",
        ["Return {a} followed by {b}.", "Concatenate the strings {a} and {b}."],
        ["return {a} + {b}"],
        lambda r: (_word(r), _word(r)),
    ),
    Family(
        ["string_length", "length_of", "char_total"],
        [(S, "str")],
        "int",
        ["Return the number of characters in {a}."],
        ["return len({a})"],
        lambda r: (_sentence(r),),
    ),
    Family(
        ["count_items", "size", "list_length"],
        [(L_INT, "List[int]")],
        "int",
        ["Return how many items are in {a}."],
        ["return len({a})"],
        lambda r: (_ints(r),),
    ),
    Family(
        ["rectangle_area", "area", "area_of_rectangle"],
        [(["width", "w"], "int"), (["height", "h"], "int")],
        "int",
        ["Return the area of a rectangle with width {a} and height {b}."],
        ["return {a} * {b}"],
        lambda r: (r.randint(0, 20), r.randint(0, 20)),
    ),
    Family(
        ["ends_with", "has_suffix", "check_suffix"],
        [(S, "str"), (["suffix", "end", "tail"], "str")],
        "bool",
        ["Return True if {a} ends with {b}."],
        ["return {a}.endswith({b})", "return {a}[-len({b}):] == {b} if {b} else True"],
        lambda r: (_word(r), r.choice(["e", "er", "ta", "n", "on"])),
    ),
    Family(
        ["remainder", "modulo", "mod"],
        [(["a", "x", "first", "m"], "int"), (["d", "divisor", "k"], "int")],
        "int",
        ["Return the remainder when {a} is divided by {b}."],
        ["return {a} % {b}"],
        lambda r: (r.randint(0, 100), r.randint(1, 12)),
    ),
    Family(
        ["is_empty", "empty", "has_no_items"],
        [(L_INT, "List[int]")],
        "bool",
        ["Return True if the list {a} has no elements."],
        ["return len({a}) == 0", "return not {a}"],
        lambda r: (r.choice([[], _ints(r)]),),
    ),
    Family(
        ["first_char", "initial", "first_letter"],
        [(S, "str")],
        "str",
        ["Return the first character of the non-empty string {a}."],
        ["return {a}[0]"],
        lambda r: (_word(r),),
    ),
    Family(
        ["half", "halve", "divide_by_two"],
        [(N, "int")],
        "float",
        ["Return half of {a}.", "Divide {a} by 2 and return the result."],
        ["return {a} / 2"],
        lambda r: (r.randint(-20, 60),),
    ),
]

_DOC_STYLES = ("plain", "space", "block", "example")


def _hint(hint: str, modern: bool) -> str:
    if modern:
        return (
            hint.replace("List[", "list[")
            .replace("Dict[", "dict[")
            .replace("Optional[int]", "int | None")
        )
    return hint


def _wrap(text: str, indent: str, width: int = 76) -> list[str]:
    words = text.split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(indent) + len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines


def make_example(family: Family, r: random.Random) -> dict | None:
    """One prompt/completion pair with doctest outputs computed from the body; None if unusable."""
    name = r.choice(family.names)
    chosen: list[str] = []
    for candidates, _ in family.params:
        options = [c for c in candidates if c not in chosen and c != name]
        chosen.append(r.choice(options))
    keys = dict(zip("abc", chosen, strict=False))
    body = r.choice(family.bodies).format(**keys)
    if "factorial(" in body and name != "factorial":
        body = body.replace("factorial(", f"{name}(")
    description = r.choice(family.descriptions).format(**keys)
    typed = r.random() < 0.6
    modern = r.random() < 0.5
    if typed:
        params = ", ".join(
            f"{p}: {_hint(h, modern)}" for p, (_, h) in zip(chosen, family.params, strict=True)
        )
        signature = f"def {name}({params}) -> {_hint(family.returns, modern)}:"
    else:
        signature = f"def {name}({', '.join(chosen)}):"
    source_body = "\n".join("    " + line for line in body.splitlines())
    namespace: dict = {}
    try:
        exec(f"def {name}({', '.join(chosen)}):\n{source_body}\n", namespace)
    except Exception:
        return None
    func = namespace[name]
    examples: list[tuple[str, str]] = []
    seen_calls: set[str] = set()
    for _ in range(r.choice([1, 2, 2, 3, 3])):
        args = family.inputs(r)
        call = f"{name}({', '.join(repr(a) for a in args)})"
        if call in seen_calls:
            continue
        try:
            value = func(*[eval(repr(a)) for a in args])
        except Exception:
            continue
        want = repr(value)
        if len(call) > 70 or len(want) > 70:
            continue
        seen_calls.add(call)
        examples.append((call, want))
    if not examples:
        return None
    style = r.choice(_DOC_STYLES)
    indent = "    "
    desc_lines = _wrap(description, indent + 4 * " ")
    doc: list[str] = []
    if style == "block":
        doc.append(f'{indent}"""')
        doc += [indent + line for line in desc_lines]
        doc.append("")
    else:
        lead = " " if style == "space" else ""
        doc.append(f'{indent}"""{lead}{desc_lines[0]}')
        doc += [indent + line for line in desc_lines[1:]]
        if style == "example":
            doc.append(f"{indent}For example:")
    for call, want in examples:
        doc.append(f"{indent}>>> {call}")
        doc.append(f"{indent}{want}")
    doc.append(f'{indent}"""')
    header = ""
    if typed and not modern:
        needed = [t for t in ("List", "Dict", "Optional") if f"{t}[" in signature]
        if needed:
            header = f"from typing import {', '.join(needed)}\n\n\n"
    prompt = header + signature + "\n" + "\n".join(doc) + "\n"
    return {"prompt": prompt, "completion": source_body + "\n", "source": f"synthetic:{name}"}


def verify_examples(examples: list[dict]) -> list[bool]:
    """Run each function's doctests (in this process: the code is our own templates)."""
    import doctest

    results: list[bool] = []
    parser = doctest.DocTestParser()
    for example in examples:
        source = example["prompt"] + example["completion"]
        namespace: dict = {}
        try:
            exec(source, namespace)
            name = example["source"].split(":", 1)[1]
            test = parser.get_doctest(namespace[name].__doc__, namespace, name, None, 0)
            runner = doctest.DocTestRunner(verbose=False, optionflags=0)
            runner.run(test, out=lambda _s: None)
            ok = runner.failures == 0 and runner.tries > 0
        except Exception:
            ok = False
        results.append(ok)
    return results


def eval_entry_points() -> set[str]:
    """HumanEval's function names: generated functions never use them."""
    import gzip
    import json

    try:
        from model.train.corpus import humaneval_path

        with gzip.open(humaneval_path(), "rt", encoding="utf-8") as handle:
            return {json.loads(line)["entry_point"] for line in handle if line.strip()}
    except ImportError:
        return set()


def generate(count: int, seed: int = 0, *, workers: int = 2) -> tuple[list[dict], dict]:
    """``count`` distinct, verified examples spread over all families, and a small report."""
    from concurrent.futures import ProcessPoolExecutor

    reserved = eval_entry_points()

    r = random.Random(seed)
    candidates: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(candidates) < count and attempts < count * 20:
        attempts += 1
        example = make_example(r.choice(FAMILIES), r)
        if example is None or example["prompt"] in seen:
            continue
        if example["source"].split(":", 1)[1] in reserved:
            continue
        seen.add(example["prompt"])
        candidates.append(example)
    chunks = [candidates[i : i + 500] for i in range(0, len(candidates), 500)]
    # Separate processes: a generated doctest cannot disturb the generator itself.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        verdicts = [ok for chunk in pool.map(verify_examples, chunks) for ok in chunk]
    kept = [e for e, ok in zip(candidates, verdicts, strict=True) if ok]
    report = {
        "families": len(FAMILIES),
        "generated": len(candidates),
        "verified": len(kept),
        "failed_verification": len(candidates) - len(kept),
    }
    return kept, report
