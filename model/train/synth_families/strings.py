"""Synthetic task families on strings and lists of words."""

from __future__ import annotations

from model.train.synth_families.common import (
    L_STR,
    WORDS,
    Family,
    S,
    rand_sentence,
    rand_text,
    rand_word,
    rand_words,
)

FAMILIES: list[Family] = [
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
        lambda r: (rand_text(r),),
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
        lambda r: (rand_text(r),),
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
        lambda r: (r.choice([rand_word(r), rand_text(r), "abba", "racecar", "ab"]),),
    ),
    Family(
        ["capitalize_words", "title_words", "capitalize_each"],
        [(S, "str")],
        "str",
        [
            "Return {a} with the first letter of every word capitalized; words are separated by single spaces."
        ],
        ["return ' '.join(w.capitalize() for w in {a}.split(' '))"],
        lambda r: (rand_sentence(r),),
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
        lambda r: (r.choice([rand_sentence(r), ""]),),
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
        lambda r: (rand_sentence(r),),
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
        lambda r: (rand_word(r),),
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
        ["reverse_words", "words_backwards", "flip_word_order"],
        [(S, "str")],
        "str",
        [
            "Return {a} with the order of its words reversed; words are separated by single spaces.",
            "Reverse the order of the words in {a}.",
        ],
        ["return ' '.join({a}.split(' ')[::-1])", "return ' '.join(reversed({a}.split(' ')))"],
        lambda r: (rand_sentence(r),),
    ),
    Family(
        ["remove_spaces", "strip_spaces", "without_spaces"],
        [(S, "str")],
        "str",
        ["Return {a} with every space character removed.", "Delete all spaces from {a}."],
        ["return {a}.replace(' ', '')", "return ''.join(ch for ch in {a} if ch != ' ')"],
        lambda r: (rand_sentence(r),),
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
        lambda r: (rand_words(r, 0, 6), r.choice("abcdrst")),
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
        lambda r: (rand_words(r, 1, 6),),
    ),
    Family(
        ["string_lengths", "lengths", "len_each"],
        [(L_STR, "List[str]")],
        "List[int]",
        ["Return a list containing the length of each string in {a}."],
        ["return [len(w) for w in {a}]"],
        lambda r: (rand_words(r),),
    ),
    Family(
        ["count_uppercase", "num_capitals", "uppercase_count"],
        [(S, "str")],
        "int",
        ["Return the number of uppercase letters in {a}.", "Count the capital letters in {a}."],
        ["return sum(1 for ch in {a} if ch.isupper())"],
        lambda r: (rand_text(r),),
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
        lambda r: (rand_words(r), r.choice([", ", "-", " ", "", "|"])),
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
        lambda r: (lambda w: (w, r.choice(["".join(r.sample(w, len(w))), rand_word(r)])))(
            rand_word(r)
        ),
    ),
    Family(
        ["repeat_string", "repeat", "repeat_text"],
        [(S, "str"), (["times", "n", "count"], "int")],
        "str",
        ["Return {a} repeated {b} times.", "Concatenate {b} copies of {a}."],
        ["return {a} * {b}"],
        lambda r: (rand_word(r)[:3], r.randint(0, 4)),
    ),
    Family(
        ["count_consonants", "consonant_count"],
        [(S, "str")],
        "int",
        ["Return the number of consonant letters (letters that are not a, e, i, o, u) in {a}."],
        ["return sum(1 for ch in {a}.lower() if ch.isalpha() and ch not in 'aeiou')"],
        lambda r: (rand_text(r),),
    ),
    Family(
        ["to_upper", "shout", "uppercase"],
        [(S, "str")],
        "str",
        ["Return {a} converted to upper case."],
        ["return {a}.upper()"],
        lambda r: (rand_sentence(r),),
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
        lambda r: (rand_text(r),),
    ),
    Family(
        ["vowel_words", "words_starting_with_vowel"],
        [(L_STR, "List[str]")],
        "List[str]",
        ["Return the words in {a} that start with a vowel."],
        ["return [w for w in {a} if w and w[0].lower() in 'aeiou']"],
        lambda r: (rand_words(r, 0, 6),),
    ),
    Family(
        ["count_char", "char_count", "occurrences_of"],
        [(S, "str"), (["ch", "char", "letter"], "str")],
        "int",
        ["Return how many times the character {b} occurs in {a}."],
        ["return {a}.count({b})", "return sum(1 for c in {a} if c == {b})"],
        lambda r: (rand_sentence(r), r.choice("aeorst ")),
    ),
]
