"""Mining documented functions and methods in context from a small corpus, and running their
doctests in the real sandbox (as written, then in the whole module)."""

from __future__ import annotations

import json
from pathlib import Path

from model.train.mine import mine_corpus_all, mine_module, verify_doctests, without_main_block

SHAPES = '''"""Shapes for a fixture module."""

import math

UNIT = 2


def _double(x):
    return x * UNIT


def area(radius):
    """Area of a circle of the given radius.

    >>> round(area(1.0), 2)
    3.14
    """
    return math.pi * radius ** 2


def doubled_area(radius):
    """Twice the area of a circle, using the module's helper.

    >>> round(doubled_area(1.0), 2)
    6.28
    """
    return _double(area(radius))


class Square:
    """A square with a side length.

    >>> Square(2).area()
    4
    """

    sides = 4

    def __init__(self, side):
        self.side = side

    def area(self):
        """The area of the square.

        >>> Square(3).area()
        9
        """
        return self.side * self.side

    def perimeter(self):
        """The perimeter, from the class-level count of sides.

        >>> Square(1).perimeter()
        4
        """
        return self.side * self.sides

    def diagonal(self):
        """Claims the diagonal equals the side.

        >>> Square(1).diagonal()
        1
        """
        return self.side * math.sqrt(2)

    def describe(self):
        """A one-line description, built from the area (a stub in the prompt).

        >>> Square(2).describe()
        'square of area 4'
        """
        return f"square of area {self.area()}"


if __name__ == "__main__":
    raise SystemExit("not during verification")
'''

# A module the sandbox cannot import (a relative import); one name resolves nowhere.
EXTRAS = '''"""Extras for a fixture package."""

from .units import scale_factor
from fancy_lib import *


def scaled(value):
    """Scale a value by the package's factor.

    >>> scaled(1)
    3
    """
    return value * scale_factor


def magic(value):
    """Uses a name that only a star import could provide."""
    return mystery(value)
'''


def _mined() -> dict[str, dict]:
    examples = mine_module(SHAPES, "added:shapes.py") + mine_module(EXTRAS, "added:extras.py")
    return {e["source"].rsplit(":", 1)[1]: e for e in examples}


def _corpus(tmp_path: Path) -> Path:
    records = [
        {"path": "added:shapes.py", "text": SHAPES},
        {"path": "added:extras.py", "text": EXTRAS},
        {"path": "added:vendored/shapes.py", "text": SHAPES},  # an exact copy: deduplicated
    ]
    (tmp_path / "corpus").mkdir()
    corpus = tmp_path / "corpus" / "train.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    return corpus


def test_functions_and_methods_are_mined_with_their_context() -> None:
    mined = _mined()
    assert set(mined) == {
        "area", "doubled_area", "Square.area", "Square.perimeter", "Square.diagonal",
        "Square.describe", "scaled",
    }  # fmt: skip
    # `magic` is skipped: its name resolves nowhere; `_double` has no docstring.
    area = mined["area"]
    assert area["prompt"].startswith("import math\n\n\ndef area(radius):")
    assert area["completion"] == "    return math.pi * radius ** 2\n"
    assert area["standalone"] and area["has_doctest"] and area["kind"] == "function"
    doubled = mined["doubled_area"]
    assert not doubled["standalone"]
    # Helpers come in module order, with what they need themselves (UNIT for _double).
    context = doubled["prompt"].split("def doubled_area")[0]
    assert (
        context.index("UNIT = 2")
        < context.index("def _double(x):")
        < context.index("def area(radius):")
    )
    assert "from .units import scale_factor" in mined["scaled"]["prompt"]
    method = mined["Square.describe"]
    assert method["kind"] == "method" and not method["standalone"]
    prompt = method["prompt"]
    assert prompt.index("class Square:") < prompt.index('"""A square with a side length.')
    assert "    sides = 4" in prompt
    assert "    def __init__(self, side): ..." in prompt and "    def area(self): ..." in prompt
    assert prompt.rstrip().endswith('"""') and "    def describe(self):" in prompt
    assert method["completion"] == '        return f"square of area {self.area()}"\n'


def test_doctests_are_verified_in_the_sandbox_and_failures_dropped(tmp_path: Path) -> None:
    examples, modules = mine_corpus_all(_corpus(tmp_path))
    assert len(examples) == 7 and set(modules) == {"added:shapes.py", "added:extras.py"}
    kept, counts = verify_doctests(examples, modules)
    verdicts = {e["source"].rsplit(":", 1)[1]: e.get("doctest_verified") for e in kept}
    assert verdicts == {
        "area": "example",  # runs as written
        "doubled_area": "example",  # its helpers are in the prompt
        "Square.area": "module",  # __init__ is only a stub in the prompt
        "Square.perimeter": "module",
        "Square.describe": "module",
    }  # Square.diagonal's doctest is wrong, extras.py cannot be imported: both dropped
    assert counts == {
        "checked": 7,
        "passed_as_example": 2,
        "passed_in_module": 3,
        "failed": 2,
        "modules_not_importable_in_sandbox": 1,
    }


def test_main_block_is_not_run_during_verification() -> None:
    stripped = without_main_block(SHAPES)
    assert "SystemExit" not in stripped and "class Square" in stripped


def test_cli_mines_a_corpus_and_reports_counts(tmp_path: Path, capsys) -> None:
    from server.cli import main

    corpus = _corpus(tmp_path)
    out = tmp_path / "mined.jsonl"
    args = ["train", "mine", "--corpus", str(corpus.parent), "--out", str(out)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mined"] == 7 and report["mined_with_doctests"] == 7 and report["kept"] == 5
    assert report["kept_by_kind"] == {"functions_standalone": 1, "functions": 1, "methods": 3}
    assert len(out.read_text().splitlines()) == 5
    no_methods = ["train", "mine", "--corpus", str(corpus.parent), "--out", str(out)]
    assert main([*no_methods, "--no-methods", "--no-sandbox-filter"]) == 0
    assert json.loads(capsys.readouterr().out)["kept"] == 3
    missing = ["train", "mine", "--corpus", str(tmp_path / "nope"), "--out", str(out)]
    assert main(missing) == 2
