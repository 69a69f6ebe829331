"""Synthetic task families that turn a list (or dict) of numbers into a new list or dict."""

from __future__ import annotations

from model.train.synth_families.common import (
    L_INT,
    Family,
    N,
    rand_ints,
    rand_words,
)

FAMILIES: list[Family] = [
    Family(
        ["reverse_list", "reversed_list", "reverse_items", "backwards"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a new list with the elements of {a} in reverse order.", "Reverse the list {a}."],
        ["return {a}[::-1]", "return list(reversed({a}))"],
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r), r.randint(0, 10)),
    ),
    Family(
        ["square_all", "squares", "square_each", "squared"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a list with the square of each number in {a}.", "Square every element of {a}."],
        ["return [x * x for x in {a}]", "return [x ** 2 for x in {a}]"],
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r),),
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
        lambda r: (rand_ints(r, 0, 6, 0, 8),),
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
        lambda r: (rand_ints(r, 0, 6, 0, 8),),
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
        ["absolute_values", "abs_all", "magnitudes"],
        [(L_INT, "List[int]")],
        "List[int]",
        ["Return a list of the absolute values of the numbers in {a}."],
        ["return [abs(x) for x in {a}]"],
        lambda r: (rand_ints(r),),
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
        lambda r: ([rand_ints(r, 0, 9, 0, 3) for _ in range(r.randint(0, 4))],),
    ),
    Family(
        ["scale", "multiply_by", "times"],
        [(L_INT, "List[int]"), (["factor", "k", "m"], "int")],
        "List[int]",
        ["Return a new list with every element of {a} multiplied by {b}."],
        ["return [x * {b} for x in {a}]"],
        lambda r: (rand_ints(r), r.randint(-3, 5)),
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
        lambda r: (rand_ints(r), r.randint(0, 8)),
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
        lambda r: (rand_ints(r, 0, 30), r.randint(2, 5)),
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
        lambda r: (rand_ints(r),),
    ),
    Family(
        ["first_n", "take", "head"],
        [(L_INT, "List[int]"), (N, "int")],
        "List[int]",
        ["Return the first {b} elements of {a} (all of them if {a} is shorter)."],
        ["return {a}[:{b}]"],
        lambda r: (rand_ints(r), r.randint(0, 5)),
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
        ["chunk", "split_into_chunks", "batches"],
        [(L_INT, "List[int]"), (["size", "n", "k"], "int")],
        "List[List[int]]",
        ["Split {a} into consecutive chunks of length {b}; the last chunk may be shorter."],
        ["return [{a}[i:i + {b}] for i in range(0, len({a}), {b})]"],
        lambda r: (rand_ints(r), r.randint(1, 3)),
    ),
    Family(
        ["invert_dict", "swap_keys_values"],
        [(["d", "mapping", "table"], "Dict[str, int]")],
        "Dict[int, str]",
        [
            "Return a new dictionary with the keys and values of {a} swapped; the values of {a} are unique."
        ],
        ["return {{v: k for k, v in {a}.items()}}"],
        lambda r: ({w: i for i, w in enumerate(dict.fromkeys(rand_words(r, 0, 4)))},),
    ),
]
