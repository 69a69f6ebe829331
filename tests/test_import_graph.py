"""The package import directions of docs/CONTRACTS.md, checked on the source with ``ast``.

``server`` (the editor package) is imported by nothing but itself; ``evalkit`` depends only on
the model tier's light seam; the model tier never reaches up into ``evalkit`` except from the
training recipes (which verify mined doctests in the sandbox).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "model", "evalkit")
# Modules of the model tier that every package may import (stdlib + httpx/tokenizers only).
MODEL_LIGHT_SEAM = {
    "model.protocol",
    "model.client",
    "model.paths",
    "model.cli_support",
    "model.fim",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "checkpoints" in path.parts:
                continue
            internal = {m for m in _imports(path) if m.split(".")[0] in PACKAGES}
            graph[_module_name(path)] = internal
    return graph


def _in_light_seam(target: str) -> bool:
    return target == "model" or any(
        target == m or target.startswith(m + ".") for m in MODEL_LIGHT_SEAM
    )


def _violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imports in graph.items():
        top = module.split(".")[0]
        for target in sorted(imports):
            target_top = target.split(".")[0]
            if target_top == top:
                continue
            if target_top == "server":
                bad.append(f"{module} imports {target}: nothing outside server/ may import it")
            elif top == "evalkit" and target_top == "model" and not _in_light_seam(target):
                bad.append(f"{module} imports {target}: evalkit uses the model's light seam only")
            elif (
                top == "model" and target_top == "evalkit" and not module.startswith("model.train")
            ):
                bad.append(f"{module} imports {target}: only model.train may use evalkit")
    return bad


def test_package_import_directions() -> None:
    graph = _graph()
    assert "server.cli" in graph and "evalkit.runner" in graph  # the walk found the packages
    assert _violations(graph) == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("evalkit.runner", "server.cli"),
        ("model.commands", "server.cli"),
        ("evalkit.x", "model.engine"),
    ],
)
def test_a_back_edge_is_reported(module: str, target: str) -> None:
    assert _violations({module: {target}})
