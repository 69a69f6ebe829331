"""Post-processing stages, one golden case per failure users of other tools report."""

from model.protocol import Candidate
from server.context import find_completion_site
from server.postprocess import (
    clean_candidates,
    cut_at_dedent,
    cut_at_stop,
    fix_indentation,
    insertion_text,
    trim_repeated_suffix,
)

STUB = 'def total(values):\n    """Sum of values.\n\n    >>> total([1, 2])\n    3\n    """\n    \n'


def site_at_body(text: str = STUB):
    site = find_completion_site(text, text.count("\n") - 1, 4)
    assert site is not None
    return site


def candidate(text: str, mean: float = -0.5, finish: str = "stop") -> Candidate:
    return Candidate(text, (mean,) * 4, finish)


def bodies(site, *texts: str) -> list[str]:
    clean = clean_candidates(site, [candidate(t, -0.1 * i) for i, t in enumerate(texts)])
    return [insertion_text(site, c.continuation) for c in clean]


def test_wrong_indentation_is_fixed_relative_indent_kept():
    site = site_at_body()
    fixed = fix_indentation(
        site, "  result = 0\n  for v in values:\n      result += v\n  return result"
    )
    assert fixed == ("    result = 0\n    for v in values:\n        result += v\n    return result")


def test_leading_stray_space_is_removed():
    site = site_at_body()
    assert bodies(site, "     return sum(values)\n") == ["return sum(values)"]
    assert bodies(site, " return sum(values)\n") == ["return sum(values)"]


def test_blank_lines_inside_the_body_are_kept():
    site = site_at_body()
    text = "    result = 0\n\n    for v in values:\n        result += v\n\n    return result\n"
    assert bodies(site, text) == [
        "result = 0\n\n    for v in values:\n        result += v\n\n    return result"
    ]


def test_code_after_the_function_is_cut():
    site = site_at_body()
    text = "    return sum(values)\n\n\ndef other():\n    pass\n"
    assert cut_at_stop(text) == "    return sum(values)\n\n"
    no_stop = "    return sum(values)\n\nx = other()\n"
    assert cut_at_dedent(site, no_stop) == "    return sum(values)\n"
    assert bodies(site, no_stop) == ["return sum(values)"]


def test_candidates_that_do_not_compile_are_dropped():
    site = site_at_body()
    assert bodies(site, "    return sum(values\n", "    return )(\n") == []


def test_truncated_candidate_keeps_the_lines_that_compile():
    site = site_at_body()
    clean = clean_candidates(
        site, [candidate("    result = sum(values)\n    return result + (\n", finish="length")]
    )
    assert [c.continuation for c in clean] == ["    result = sum(values)"]


def test_duplicates_are_merged_keeping_the_most_likely():
    site = site_at_body()
    clean = clean_candidates(
        site,
        [
            candidate("    return sum(values)  # easy\n", -0.9),
            candidate("    return sum( values )\n", -0.2),
            candidate("    return sum(values[::-1])\n", -0.5),
        ],
    )
    assert len(clean) == 2
    assert clean[0].candidate.mean_logprob == -0.2


def test_text_repeating_the_code_below_the_cursor_is_trimmed():
    text = 'def total(values):\n    """Sum of values."""\n    result = 0\n    \n    return result\n'
    site = find_completion_site(text, 3, 4)
    assert site is not None
    assert trim_repeated_suffix(
        site, "    for v in values:\n        result += v\n    return result"
    ) == ("    for v in values:\n        result += v")
    assert trim_repeated_suffix(site, "    return result") is None
    assert bodies(site, "    for v in values:\n        result += v\n    return result\n") == [
        "for v in values:\n        result += v"
    ]


def test_newline_mode_inserts_the_line_break_and_indents():
    text = 'def total(values):\n    """Sum of values."""\n'
    site = find_completion_site(text, 1, len('    """Sum of values."""'))
    assert site is not None
    assert bodies(site, "return sum(values)\n") == ["\n    return sum(values)"]


def test_inline_continuation_of_a_partial_line():
    text = 'def add(a, b):\n    """Add."""\n    return a +\n'
    site = find_completion_site(text, 2, len("    return a +"))
    assert site is not None
    assert bodies(site, " b\n\nprint(add(1, 2))\n") == [" b"]


def test_mid_line_cursor_offers_the_rest_of_the_line_only():
    text = 'def bigger(a, b):\n    """The larger one."""\n    return max(a, )\n'
    site = find_completion_site(text, 2, len("    return max(a, "))
    assert site is not None and site.rest_of_line == ")"
    assert bodies(site, "b)\n\nprint(1)\n", "b, 0)\n    x = 1\n") == ["b", "b, 0"]
