"""Synthetic task families on plain numbers: parity, primes, digits, sequences, conversions."""

from __future__ import annotations

from model.train.synth_families.common import (
    Family,
    N,
)

FAMILIES: list[Family] = [
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
        ["is_leap_year", "leap_year"],
        [(["year", "y"], "int")],
        "bool",
        ["Return True if {a} is a leap year in the Gregorian calendar."],
        ["return {a} % 4 == 0 and ({a} % 100 != 0 or {a} % 400 == 0)"],
        lambda r: (r.choice([1900, 2000, 2004, 2023, 2024, 2100, r.randint(1800, 2100)]),),
    ),
]
