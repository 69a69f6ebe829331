"""Helpers that examples/realistic_module.py imports with a relative import."""

import re


def slugify(text: str) -> str:
    """Lower-case the words of text and join them with hyphens.

    >>> slugify("Hello, World")
    'hello-world'
    """
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def shout(text: str) -> str:
    """Text in capitals, with an exclamation mark."""
    return text.upper() + "!"
