"""The generated fine-tuning task families, gathered from their themed modules in sampling order."""

from __future__ import annotations

from model.train.synth_families import (
    list_queries,
    list_transforms,
    numbers,
    one_liners,
    strings,
)
from model.train.synth_families.common import Family

# The generator draws families with ``random.choice(FAMILIES)``, so this order (by each family's
# first name) fixes which data a seed produces. Append new families at the end; reordering
# changes every generated data set.
_SAMPLING_ORDER = [
    "sum_list",
    "product",
    "largest",
    "smallest",
    "reverse_list",
    "reverse_string",
    "count_occurrences",
    "filter_even",
    "filter_odd",
    "positives",
    "greater_than",
    "count_even",
    "square_all",
    "double_all",
    "is_even",
    "prime",
    "factorial",
    "fibonacci",
    "fizzbuzz",
    "running_total",
    "count_vowels",
    "palindrome",
    "capitalize_words",
    "count_words",
    "word_lengths",
    "char_frequency",
    "word_frequencies",
    "sort_ascending",
    "sort_descending",
    "unique_sorted",
    "dedupe",
    "average",
    "value_range",
    "second_largest",
    "gcd",
    "sum_digits",
    "count_digits",
    "reverse_words",
    "remove_spaces",
    "starting_with",
    "longest_word",
    "string_lengths",
    "add_lists",
    "dot_product",
    "index_of",
    "clamp",
    "absolute_values",
    "celsius_to_fahrenheit",
    "count_uppercase",
    "flatten",
    "is_ascending",
    "all_positive",
    "has_negative",
    "sum_of_squares",
    "first_even",
    "scale",
    "rotate_left",
    "join_words",
    "divisible_by",
    "sum_even",
    "sum_odd",
    "is_anagram",
    "digit_list",
    "to_binary",
    "index_of_max",
    "differences",
    "squares_up_to",
    "triangle_number",
    "count_primes",
    "primes_up_to",
    "repeat_string",
    "count_consonants",
    "last_element",
    "first_n",
    "count_greater",
    "to_upper",
    "swap_case",
    "contains",
    "interleave",
    "power_of_two",
    "vowel_words",
    "count_char",
    "max_of_three",
    "chunk",
    "key_with_max_value",
    "invert_dict",
    "is_leap_year",
    "count_positive",
    "middle",
    "add_numbers",
    "subtract",
    "multiply",
    "larger",
    "smaller",
    "average_of_two",
    "is_divisible",
    "power",
    "abs_difference",
    "square",
    "sign",
    "concat",
    "string_length",
    "count_items",
    "rectangle_area",
    "ends_with",
    "remainder",
    "is_empty",
    "first_char",
    "half",
]


def _in_sampling_order(families: list[Family]) -> list[Family]:
    by_name = {family.names[0]: family for family in families}
    if len(by_name) != len(families) or sorted(by_name) != sorted(_SAMPLING_ORDER):
        raise RuntimeError(
            "synth_families: every family's first name must appear once in _SAMPLING_ORDER"
        )
    return [by_name[name] for name in _SAMPLING_ORDER]


FAMILIES: list[Family] = _in_sampling_order(
    list_queries.FAMILIES
    + list_transforms.FAMILIES
    + numbers.FAMILIES
    + strings.FAMILIES
    + one_liners.FAMILIES
)

__all__ = ["FAMILIES", "Family"]
