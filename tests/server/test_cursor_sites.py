"""Golden prompts for every place a body is written: the exact text the model is sent, and
what the editor inserts for a given model output (issue 11, "cursor anywhere")."""

from __future__ import annotations

from model.protocol import Candidate
from server.context import CompletionSite, find_completion_site, function_source
from server.postprocess import clean_candidates, insertion_text, syntax_checkable
from server.suffix import fit_candidates


def site_at(text: str, marker: str = "|") -> CompletionSite:
    """The site at ``marker`` (removed from the text); fails the test when there is none."""
    offset = text.index(marker)
    source = text[:offset] + text[offset + len(marker) :]
    line = source.count("\n", 0, offset)
    character = offset - (source.rfind("\n", 0, offset) + 1)
    site = find_completion_site(source, line, character)
    assert site is not None, "no completion site at the marker"
    return site


def inserted(site: CompletionSite, *outputs: str) -> list[str]:
    """What the editor would insert for each model output, after every server stage."""
    raw = [Candidate(text, (-0.1 * (i + 1),) * 3, "stop") for i, text in enumerate(outputs)]
    clean = clean_candidates(site, fit_candidates(site, raw), check_syntax=syntax_checkable(site))
    return [insertion_text(site, c.continuation) for c in clean]


def test_after_the_docstring_on_its_closing_line():
    site = site_at('import math\n\n\ndef area(r):\n    """Disc area."""|\n')
    assert site.prompt == 'import math\n\n\ndef area(r):\n    """Disc area."""\n'
    assert inserted(site, "    return math.pi * r ** 2\n") == ["\n    return math.pi * r ** 2"]


def test_after_the_docstring_on_the_next_line():
    site = site_at('def area(r):\n    """Disc area."""\n    |\n')
    assert site.prompt == 'def area(r):\n    """Disc area."""\n'
    assert inserted(site, "    return 3.14 * r * r\n") == ["return 3.14 * r * r"]


def test_partial_body_continues_from_the_cursor():
    site = site_at(
        "def evens(values):\n"
        '    """The even values."""\n'
        "    found = []\n"
        "    for value in values:\n"
        "        |\n"
        "    return found\n"
    )
    assert site.prompt == (
        'def evens(values):\n    """The even values."""\n    found = []\n    for value in values:\n'
    )
    assert site.suffix == "\n    return found\n"
    # The model writes the loop body, then the code below again: it stops where that resumes.
    outputs = ["        if value % 2 == 0:\n            found.append(value)\n    return found\n"]
    assert inserted(site, *outputs) == ["if value % 2 == 0:\n            found.append(value)"]


def test_mid_line_is_one_line_without_doubled_closing_brackets():
    site = site_at(
        "def clamp(value, low, high):\n"
        '    """value limited to low..high."""\n'
        "    return max(low, min(value|))\n"
    )
    assert site.prompt.endswith("    return max(low, min(value")
    assert site.rest_of_line == "))" and site.open_brackets == 2
    outputs = [", high))\n\nprint(clamp(1, 2, 3))\n", ", high)) + 0\n", ", high, 99))\n"]
    assert inserted(site, *outputs) == [", high", ", high, 99"]


def test_mid_line_inside_a_call_spanning_lines():
    site = site_at(
        "def report(rows):\n"
        '    """A table."""\n'
        "    return format_table(\n"
        "        rows,\n"
        "        |\n"
        "    )\n"
    )
    assert site.open_brackets == 1
    assert inserted(site, "        width=80)\n    return None\n") == ["width=80"]


METHOD_FILE = '''import json


class Unrelated:
    """Comes first and is not the method's class."""


class Stack:
    """A LIFO stack."""

    limit = 10

    def __init__(self):
        self.items = []

    @property
    def empty(self):
        """Whether nothing is stacked."""
        return not self.items

    def size(self):
        """Number of items.

        >>> s = Stack()
        >>> s.size()
        0
        """|

    def peek(self):
        """The top item."""
        return self.items[-1]
'''


def test_method_keeps_its_class_in_place_with_members_signatures():
    site = site_at(METHOD_FILE)
    assert site.is_method and not site.is_nested
    # One ``class Stack:`` header (the docstring mentions Stack: it is not added again as a
    # helper), the class docstring and attributes, __init__ in full (it says what self holds),
    # the other members as signature + docstring; the unrelated class is left out.
    assert site.prompt == (
        "import json\n\n\n"
        "class Stack:\n"
        '    """A LIFO stack."""\n\n'
        "    limit = 10\n\n"
        "    def __init__(self):\n"
        "        self.items = []\n\n"
        "    @property\n"
        "    def empty(self):\n"
        '        """Whether nothing is stacked."""\n'
        "        ...\n\n"
        "    def size(self):\n"
        '        """Number of items.\n\n'
        "        >>> s = Stack()\n"
        "        >>> s.size()\n"
        "        0\n"
        '        """\n'
    )
    assert site.prompt.count("class Stack:") == 1
    assert site.suffix.strip() == ""
    source = function_source(site, "        return len(self.items)")
    assert source.startswith("def size(self):\n")
    assert inserted(site, "        return len(self.items)\n\n    def peek(self):\n") == [
        "\n        return len(self.items)"
    ]


def test_nested_function_keeps_the_outer_function_not_an_earlier_class():
    site = site_at(
        "class Unrelated:\n"
        "    pass\n\n\n"
        "def outer(items):\n"
        '    """Sum of doubled items."""\n'
        "    factor = 2\n\n"
        "    def double(x):\n"
        '        """x times factor."""\n'
        "        |\n\n"
        "    return sum(double(i) for i in items)\n"
    )
    assert site.is_nested and not site.is_method
    assert site.prompt == (
        "def outer(items):\n"
        '    """Sum of doubled items."""\n'
        "    factor = 2\n\n"
        "    def double(x):\n"
        '        """x times factor."""\n'
    )
    assert "Unrelated" not in site.prompt
    assert inserted(site, "        return x * factor\n\n    return sum(items)\n") == [
        "return x * factor"
    ]


def test_async_function():
    site = site_at(
        'import asyncio\n\n\nasync def pause(seconds):\n    """Sleep, then say so."""\n    |\n'
    )
    assert site.function_name == "pause"
    assert site.prompt.endswith('async def pause(seconds):\n    """Sleep, then say so."""\n')
    assert inserted(site, "    await asyncio.sleep(seconds)\n    return 'slept'\n") == [
        "await asyncio.sleep(seconds)\n    return 'slept'"
    ]


def test_decorated_function_keeps_its_decorators():
    site = site_at(
        "import functools\n\n\n"
        "@functools.cache\n"
        "@staticmethod\n"
        "def fib(n):\n"
        '    """The n-th Fibonacci number."""\n'
        "    |\n"
    )
    assert site.prompt == (
        "import functools\n\n\n"
        "@functools.cache\n"
        "@staticmethod\n"
        "def fib(n):\n"
        '    """The n-th Fibonacci number."""\n'
    )
    assert function_source(site, "    return n").startswith("@functools.cache\n@staticmethod\n")


def test_form_feed_and_line_separator_before_the_cursor():
    # LSP counts lines at "\n" only: a form feed or U+2028 must not shift the cursor's line.
    text = 'import os\n\x0c\ndef f(x):\n    """Id\u2028entity \x0c here."""\n    |\n'
    site = site_at(text)
    assert site.function_name == "f"
    assert site.prompt.endswith('def f(x):\n    """Id\u2028entity \x0c here."""\n')
    assert inserted(site, "    return x\n") == ["return x"]


def test_docstring_text_at_column_zero_is_not_code():
    site = site_at(
        "QUERY = '''\nSELECT 1\n'''\n\n\n"
        "def run(db):\n"
        '    """Run QUERY.\n\nUses the database.\n"""\n'
        "    |\n"
    )
    assert site.function_name == "run"
    assert site.module_context == "QUERY = '''\nSELECT 1\n'''\n\n\n"
