"""Context stage: finding the function at the cursor and building its prompt."""

from server.context import find_completion_site, function_source

FILE = '''import math
from collections import Counter

SCALE = 3
UNUSED_LIMIT = 99


def double(x):
    """Twice x."""
    return 2 * x


def unrelated():
    return None


def scaled_sum(values: list[int]) -> int:
    """Sum of values, each passed through double and multiplied by SCALE.

    >>> scaled_sum([1, 2])
    18
    """

'''


def test_prompt_has_signature_docstring_and_mentioned_helpers_only():
    lines = FILE.split("\n")
    cursor_line = len(lines) - 2  # the blank line after the docstring
    site = find_completion_site(FILE, cursor_line, 4)
    assert site is not None
    assert site.function_name == "scaled_sum"
    assert site.prompt.endswith('    18\n    """\n')
    assert "def double(x):" in site.module_context  # mentioned in the docstring
    assert "def unrelated" not in site.module_context  # not mentioned: left out
    assert site.module_context.startswith("import math\nfrom collections import Counter\n")
    assert "SCALE = 3" in site.module_context
    assert site.docstring is not None and ">>> scaled_sum([1, 2])" in site.docstring
    assert site.next_line_indent == "    "
    assert site.consumed_prefix == ""  # the cursor sits at column 0 of an empty line


def test_token_budget_drops_what_does_not_fit():
    site = find_completion_site(FILE, len(FILE.split("\n")) - 2, 4, context_tokens=60)
    assert site is not None
    assert "import math" in site.module_context
    assert "def double" not in site.module_context  # would exceed the budget


def test_cursor_at_end_of_docstring_line_inserts_newline():
    text = FILE.rstrip("\n") + "\n"
    site = find_completion_site(text, len(text.split("\n")) - 2, len('    """'))
    assert site is not None
    assert site.insert_prefix == "\n"
    assert site.prompt.endswith('    """\n')
    assert site.next_line_indent == "    "


def test_no_site_inside_docstring_or_header_or_at_module_level():
    lines = FILE.split("\n")
    doc_line = next(i for i, text in enumerate(lines) if "Sum of values" in text)
    assert find_completion_site(FILE, doc_line, 10) is None
    header_line = next(i for i, text in enumerate(lines) if text.startswith("def scaled_sum"))
    assert find_completion_site(FILE, header_line, 5) is None
    scale_line = lines.index("SCALE = 3")
    assert find_completion_site(FILE, scale_line, 9) is None


def test_unparsable_file_elsewhere_still_works():
    broken = "def broken(:\n    return (\n\n" + FILE
    assert find_completion_site(broken, len(broken.split("\n")) - 2, 4) is not None


def test_unterminated_docstring_means_still_typing():
    text = 'def f(x):\n    """Return x.\n    \n'
    assert find_completion_site(text, 2, 4) is None


def test_partial_body_continues_from_cursor_with_the_right_indent():
    text = (
        "def count_evens(values):\n"
        '    """How many values are even."""\n'
        "    total = 0\n"
        "    for value in values:\n"
        "\n"
        "    return total\n"
    )
    site = find_completion_site(text, 4, 0)
    assert site is not None
    assert site.next_line_indent == "        "  # inside the for loop
    assert site.suffix.strip() == "return total"
    assert site.prompt.endswith("    for value in values:\n")


def test_mid_line_cursor_prompts_up_to_the_cursor():
    text = 'def add(a, b):\n    """Add."""\n    return a +\n'
    site = find_completion_site(text, 2, len("    return a +"))
    assert site is not None
    assert not site.starts_at_line
    assert site.prompt.endswith("    return a +")


def test_method_gets_its_class_line_and_is_dedented_for_checks():
    text = (
        "class Stack:\n"
        "    def __init__(self):\n"
        "        self.items = []\n"
        "\n"
        "    def size(self):\n"
        '        """Number of items."""\n'
        "        \n"
    )
    site = find_completion_site(text, 6, 8)
    assert site is not None and site.is_method
    assert site.function_prefix.startswith("class Stack:\n    def size(self):")
    source = function_source(site, "        return len(self.items)")
    assert source.startswith("def size(self):\n")
    compile(source, "<test>", "exec")
