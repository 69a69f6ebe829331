"""Synthetic task families that read a list (or dict) of numbers and answer with one value."""

from __future__ import annotations

from model.train.synth_families.common import (
    L_INT,
    Family,
    rand_ints,
    rand_nonempty,
    rand_words,
)

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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r, -5, 9, 0, 5),),
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
        lambda r: (rand_nonempty(r),),
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
        lambda r: (rand_nonempty(r),),
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
        lambda r: (rand_ints(r, 0, 4, 0, 8), r.randint(0, 4)),
    ),
    Family(
        ["count_even", "number_of_evens", "even_count"],
        [(L_INT, "List[int]")],
        "int",
        ["Return how many even numbers are in {a}.", "Count the even integers in {a}."],
        ["return sum(1 for x in {a} if x % 2 == 0)", "return len([x for x in {a} if x % 2 == 0])"],
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_nonempty(r, 0, 20),),
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
        lambda r: (rand_nonempty(r),),
    ),
    Family(
        ["second_largest", "runner_up"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the second largest distinct value in {a}; {a} has at least two distinct values."],
        ["return sorted(set({a}))[-2]"],
        lambda r: ([1, 5, *rand_ints(r, 0, 9, 0, 4)],),
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
        lambda r: (rand_ints(r, 0, 6), r.randint(0, 6)),
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
        lambda r: (r.choice([sorted(rand_ints(r)), rand_ints(r)]),),
    ),
    Family(
        ["all_positive", "every_positive"],
        [(L_INT, "List[int]")],
        "bool",
        ["Return True if every number in {a} is greater than zero."],
        ["return all(x > 0 for x in {a})"],
        lambda r: (r.choice([rand_ints(r, 1, 9), rand_ints(r)]),),
    ),
    Family(
        ["has_negative", "any_negative", "contains_negative"],
        [(L_INT, "List[int]")],
        "bool",
        ["Return True if at least one number in {a} is negative."],
        ["return any(x < 0 for x in {a})"],
        lambda r: (r.choice([rand_ints(r, 0, 9), rand_ints(r)]),),
    ),
    Family(
        ["sum_of_squares", "square_sum"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the sum of the squares of the numbers in {a}."],
        ["return sum(x * x for x in {a})"],
        lambda r: (rand_ints(r),),
    ),
    Family(
        ["first_even", "find_first_even"],
        [(L_INT, "List[int]")],
        "Optional[int]",
        ["Return the first even number in {a}, or None if there is none."],
        ["for x in {a}:\n    if x % 2 == 0:\n        return x\nreturn None"],
        lambda r: (rand_ints(r, 1, 15),),
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
        lambda r: (rand_ints(r),),
    ),
    Family(
        ["sum_odd", "sum_of_odds", "odd_sum"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the sum of the odd numbers in {a}."],
        ["return sum(x for x in {a} if x % 2 != 0)"],
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_nonempty(r),),
    ),
    Family(
        ["last_element", "last", "get_last"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the last element of the non-empty list {a}."],
        ["return {a}[-1]"],
        lambda r: (rand_nonempty(r),),
    ),
    Family(
        ["count_greater", "how_many_above"],
        [(L_INT, "List[int]"), (["limit", "threshold"], "int")],
        "int",
        ["Return how many elements of {a} are greater than {b}."],
        ["return sum(1 for x in {a} if x > {b})", "return len([x for x in {a} if x > {b}])"],
        lambda r: (rand_ints(r), r.randint(0, 10)),
    ),
    Family(
        ["contains", "has_item", "includes"],
        [(L_INT, "List[int]"), (["target", "value", "x"], "int")],
        "bool",
        ["Return True if {b} is an element of {a}."],
        ["return {b} in {a}"],
        lambda r: (rand_ints(r, 0, 9), r.randint(0, 9)),
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
        lambda r: ({w: r.randint(0, 9) for w in rand_words(r, 1, 4)},),
    ),
    Family(
        ["count_positive", "positive_count"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the number of strictly positive numbers in {a}."],
        ["return sum(1 for x in {a} if x > 0)"],
        lambda r: (rand_ints(r),),
    ),
    Family(
        ["middle", "middle_element"],
        [(L_INT, "List[int]")],
        "int",
        ["Return the middle element of the list {a}, which has odd length."],
        ["return {a}[len({a}) // 2]"],
        lambda r: ([r.randint(0, 9) for _ in range(r.choice([1, 3, 5]))],),
    ),
]
