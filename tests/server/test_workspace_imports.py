"""Light cross-file context: what a function uses from sibling workspace modules shows up in its
prompt as signatures and docstrings (never bodies), within the context budget."""

from __future__ import annotations

from pathlib import Path

from server.context import find_completion_site
from server.workspace_imports import WorkspaceStubs

HELPERS = '''"""Helpers."""

import re


def slugify(text: str) -> str:
    """Lower-case words joined by hyphens."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def unused(x):
    """Never mentioned by the function."""
    return x


class Formatter:
    """Formats pages."""

    def __init__(self, width: int) -> None:
        self.width = width

    def render(self, text: str) -> str:
        """Text padded to the width."""
        return text.ljust(self.width)

    def _private(self):
        return None
'''


def workspace(tmp_path: Path, module: str) -> tuple[Path, str]:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(HELPERS)
    document = package / "pages.py"
    document.write_text(module)
    return document, module


def site_for(document: Path, text: str, root: Path, **kwargs):
    line = text.split("\n").index("    ")
    return find_completion_site(
        text, line, 4, workspace_stubs=WorkspaceStubs(document, root), **kwargs
    )


def test_a_relative_import_brings_the_signature_and_docstring(tmp_path: Path):
    text = (
        "import json\n\nfrom .helpers import Formatter, slugify, unused\n\n\n"
        "def page_slug(title: str) -> str:\n"
        '    """The title through slugify."""\n'
        "    \n"
    )
    document, text = workspace(tmp_path, text)
    site = site_for(document, text, tmp_path)
    assert site is not None
    assert site.prompt == (
        "import json\n"
        "from .helpers import Formatter, slugify, unused\n\n\n"
        "# .helpers\n"
        "def slugify(text: str) -> str:\n"
        '    """Lower-case words joined by hyphens."""\n'
        "    ...\n\n\n"
        "def page_slug(title: str) -> str:\n"
        '    """The title through slugify."""\n'
    )


def test_a_module_import_brings_the_names_used_through_it(tmp_path: Path):
    text = (
        "from . import helpers\n\n\n"
        "def banner(title: str) -> str:\n"
        '    """A helpers.Formatter(40) rendering of title."""\n'
        "    \n"
    )
    document, text = workspace(tmp_path, text)
    site = site_for(document, text, tmp_path)
    assert site is not None
    context = site.module_context
    assert "class Formatter:\n" in context and "def render(self, text: str) -> str:" in context
    assert "def __init__(self, width: int) -> None:" in context
    assert "_private" not in context and "ljust" not in context  # no bodies, no private members
    assert "slugify" not in context


def test_absolute_imports_of_workspace_modules_and_nothing_outside(tmp_path: Path):
    text = (
        "import os\n\nfrom pkg.helpers import slugify\n\n\n"
        "def name_of(path: str) -> str:\n"
        '    """slugify of the file name, from os.path."""\n'
        "    \n"
    )
    document, text = workspace(tmp_path, text)
    site = site_for(document, text, tmp_path)
    assert site is not None
    assert "# pkg.helpers\ndef slugify(text: str) -> str:" in site.module_context
    assert "def join" not in site.module_context  # os is not read from the workspace


def test_stubs_stay_within_the_context_budget(tmp_path: Path):
    text = (
        "from .helpers import slugify\n\n\n"
        "def page_slug(title: str) -> str:\n"
        '    """The title through slugify."""\n'
        "    \n"
    )
    document, text = workspace(tmp_path, text)
    assert "def slugify" in site_for(document, text, tmp_path).prompt
    site = site_for(document, text, tmp_path, context_tokens=40)
    assert site is not None
    assert "def slugify" not in site.prompt
    assert site.prompt.endswith('    """The title through slugify."""\n')
