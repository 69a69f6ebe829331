"""The VS Code extension builds, its module graph loads, and it packages into a .vsix.

Runs ``npm ci``, ``npm run compile`` and ``npm test`` in ``editors/vscode`` (the Node tests load
every compiled module and run activation against a stub ``vscode`` module, because a real VS Code
cannot be downloaded here), then ``vsce package``. Skipped when ``npm`` is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH")

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def _npm(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args],
        cwd=EXTENSION_DIR,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="module")
def built_extension() -> Path:
    """A clean install from package-lock.json and a compile, shared by the tests below."""
    install = _npm("ci", "--no-audit", "--no-fund")
    if install.returncode != 0 and any(code in install.stderr for code in NETWORK_ERRORS):
        pytest.skip(f"npm registry unreachable: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr
    compiled = _npm("run", "compile")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return EXTENSION_DIR


def test_node_smoke_tests_pass(built_extension: Path) -> None:
    result = _npm("test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "# fail 0" in output
    assert "activation registers the contributed commands" in output


def test_vsix_contains_the_extension_and_its_runtime_dependency(
    built_extension: Path, tmp_path: Path
) -> None:
    vsix = tmp_path / "docomplete.vsix"
    result = _npm("exec", "--", "vsce", "package", "--out", str(vsix))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
    assert "extension/out/src/extension.js" in names
    assert "extension/node_modules/vscode-languageclient/package.json" in names
    assert not any(name.startswith("extension/src/") for name in names), "sources are shipped"
