"""Doctests in real files, in the real sandbox: a module prelude run statement by statement,
names a skipped statement leaves undefined make a candidate unverifiable (not failed), methods
run inside their class, nested functions alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from model.protocol import Candidate
from server.context import CompletionSite, find_completion_site
from server.doctest_context import build_plan
from server.doctest_filter import extract_examples, missing_name
from server.postprocess import clean_candidates
from server.real_file_doctests import find_site_packages, run_site_doctests

MODULE = '''"""A module with imports the sandbox lacks."""

from __future__ import annotations

import json

import not_installed_anywhere
from .helpers import slugify

SCALE = 3
CLIENT = not_installed_anywhere.Client()


def triple(x: int) -> int:
    """Three times x.

    >>> triple(2)
    6
    """
    |


def slug_id(title: str, n: int) -> str:
    """A slug and a number.

    >>> slug_id("A b", 1)
    'a-b-1'
    """


if __name__ == "__main__":
    raise SystemExit(json.dumps(triple(1)))
'''


def site_of(text: str) -> CompletionSite:
    offset = text.index("|")
    source = text[:offset] + text[offset + 1 :]
    line = source.count("\n", 0, offset)
    character = offset - (source.rfind("\n", 0, offset) + 1)
    site = find_completion_site(source, line, character)
    assert site is not None
    return site


def verdicts(site: CompletionSite, *bodies: str, site_packages: str | None = None):
    raw = [Candidate(body, (-0.1 * (i + 1),), "stop") for i, body in enumerate(bodies)]
    clean = clean_candidates(site, raw)
    assert len(clean) == len(bodies)
    outcomes = run_site_doctests(
        site, clean, extract_examples(site.docstring), timeout_s=5, site_packages=site_packages
    )
    return [(o.status, o.passed, o.total) for o in outcomes], outcomes


def test_failing_imports_are_skipped_and_the_rest_of_the_prelude_runs():
    site = site_of(MODULE)
    plan = build_plan(site, ["def triple(x):\n    return x * SCALE\n"], ["    return x * SCALE"])
    assert plan.prelude.startswith("from __future__ import annotations\n")
    assert (
        "try:\n    import not_installed_anywhere\nexcept BaseException:\n    pass" in plan.prelude
    )
    assert "__main__" not in plan.prelude  # the main guard is not part of an import
    assert {"not_installed_anywhere", "slugify", "CLIENT", "module:json"} <= plan.may_be_missing
    result, _ = verdicts(site, "    return x * SCALE\n", "    return x + SCALE\n")
    assert result == [("passed", 1, 1), ("failed", 0, 1)]


def test_an_example_failing_only_on_a_skipped_name_is_unverifiable():
    site = site_of(MODULE)
    result, outcomes = verdicts(
        site,
        "    return CLIENT.triple(x)\n",  # CLIENT's statement failed in the sandbox
        "    return x * 3\n",
        "    return undefined_helper(x)\n",  # a genuinely wrong body stays failed
    )
    assert result == [("unverifiable", 0, 1), ("passed", 1, 1), ("failed", 0, 1)]
    assert "CLIENT" in outcomes[0].details


def test_relative_imports_make_their_users_unverifiable():
    text = MODULE.replace("    |\n", "    return x * 3\n").replace(
        '    \'a-b-1\'\n    """\n', '    \'a-b-1\'\n    """\n    |\n'
    )
    site = site_of(text)
    assert site.function_name == "slug_id"
    result, _ = verdicts(site, '    return f"{slugify(title)}-{n}"\n', '    return "x"\n')
    assert result == [("unverifiable", 0, 1), ("failed", 0, 1)]


CLASS_FILE = '''import collections


class Stack:
    """A stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        """Put item on top."""
        self.items.append(item)

    def size(self):
        """Number of items.

        >>> s = Stack()
        >>> s.push(1); s.push(2)
        >>> s.size()
        2
        """
        |

    def peek(self):
        return self.items[-1]
'''


def test_method_examples_run_with_the_candidate_inside_its_class():
    site = site_of(CLASS_FILE)
    assert site.is_method
    result, _ = verdicts(site, "        return len(self.items)\n", "        return 0\n")
    assert result == [("passed", 3, 3), ("failed", 2, 3)]


def test_a_class_that_does_not_compile_around_the_method_skips_its_examples():
    broken = CLASS_FILE.replace("        return self.items[-1]\n", "        return self.items[\n")
    site = site_of(broken)
    result, outcomes = verdicts(site, "        return len(self.items)\n")
    assert result == [("skipped", 0, 3)]
    assert "does not compile" in outcomes[0].details


def test_nested_function_runs_alone_and_outer_names_are_unverifiable():
    text = '''def outer(items, factor):
    """Scaled items."""

    def scale(x):
        """x scaled.

        >>> scale(2)
        4
        """
        |

    return [scale(i) for i in items]
'''
    site = site_of(text)
    result, _ = verdicts(site, "        return x * 2\n", "        return x * factor\n")
    assert result == [("passed", 1, 1), ("unverifiable", 0, 1)]


def test_printed_text_cannot_pose_as_a_missing_name():
    may = {"httpx", "module:httpx"}
    assert missing_name("example 1 (f()): raised NameError: name 'httpx' is not defined", may)
    assert missing_name("definition failed: ModuleNotFoundError: No module named 'httpx'", may)
    forged = (
        "example 1 (f()): expected '1\\n', got \"raised NameError: name 'httpx' is not defined\""
    )
    assert missing_name(forged, may) is None
    assert (
        missing_name("example 1 (f()): raised NameError: name 'other' is not defined", may) is None
    )


# ---------------------------------------------------------------------------------------------
# The project's virtualenv, bound read-only into the sandbox

VENV_MODULE = '''import statuslib


def status_text(code: int) -> str:
    """The reason phrase of an HTTP status code.

    >>> status_text(404)
    'Not Found'
    """
    |
'''
STATUSLIB = (
    'PHRASES = {200: "OK", 404: "Not Found"}\n\n\ndef phrase(code):\n    return PHRASES[code]\n'
)


@pytest.fixture
def workspace_with_venv():
    """A workspace with ``.venv`` (a real ``python -m venv``) holding the package ``statuslib``,
    world-readable like a checkout (the sandbox reads it as uid 65534)."""
    root = Path(tempfile.mkdtemp(prefix="docomplete-venv-test-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")],
            check=True,
            timeout=120,
        )
        site_packages = next((root / ".venv").glob("lib/python3*/site-packages"))
        (site_packages / "statuslib").mkdir()
        (site_packages / "statuslib" / "__init__.py").write_text(STATUSLIB)
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                continue  # chmod would follow it to the interpreter the venv points at
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_package_installed_in_the_workspace_venv_is_importable_when_bound(
    workspace_with_venv: Path,
):
    site = site_of(VENV_MODULE)
    body = "    return statuslib.phrase(code)\n"
    bound = find_site_packages("auto", str(workspace_with_venv), environ={})
    assert bound is not None and bound.endswith("site-packages")
    assert verdicts(site, body, site_packages=bound)[0] == [("passed", 1, 1)]
    # Without the virtualenv the import is skipped and the example cannot be verified.
    assert find_site_packages("off", str(workspace_with_venv), environ={}) is None
    assert verdicts(site, body)[0] == [("unverifiable", 0, 1)]


def test_site_packages_setting_auto_off_and_path(workspace_with_venv: Path, tmp_path: Path):
    venv = workspace_with_venv / ".venv"
    site_packages = find_site_packages(str(venv), None, environ={})
    assert site_packages == find_site_packages("auto", str(workspace_with_venv), environ={})
    # $VIRTUAL_ENV when the workspace has none; nothing when neither exists.
    assert find_site_packages("auto", str(tmp_path), {"VIRTUAL_ENV": str(venv)}) == site_packages
    assert find_site_packages("auto", str(tmp_path), environ={}) is None
    assert find_site_packages(str(tmp_path / "missing"), None, environ={}) is None
