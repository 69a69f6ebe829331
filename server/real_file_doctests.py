"""Doctests for a site in a real file: the project's virtualenv, the plan, one sandbox run.

``sandboxSitePackages`` says which site-packages the sandbox may import from (read-only):
``auto`` looks for ``.venv`` or ``venv`` in the workspace root, then ``$VIRTUAL_ENV``; ``off``
binds none; any other value is a site-packages directory (or a virtualenv holding one).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from server.context import CompletionSite
from server.doctest_context import build_plan
from server.doctest_filter import run_examples
from server.postprocess import CleanCandidate
from server.ranking import DoctestOutcome

logger = logging.getLogger(__name__)


def _site_packages_in(environment: Path) -> Path | None:
    """The site-packages directory of a virtualenv (this Python's version first)."""
    if environment.name == "site-packages" and environment.is_dir():
        return environment
    ours = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = sorted(environment.glob("lib/python3*/site-packages"), key=lambda p: ours not in str(p))
    found += list(environment.glob("Lib/site-packages"))
    return next((path for path in found if path.is_dir()), None)


@functools.lru_cache(maxsize=32)
def _resolve(setting: str, workspace_root: str | None, virtual_env: str | None) -> str | None:
    if setting == "off":
        return None
    if setting != "auto":
        path = _site_packages_in(Path(setting).expanduser())
        if path is None:
            logger.warning("sandboxSitePackages: no site-packages found at %s", setting)
        return str(path.resolve()) if path else None
    roots = []
    if workspace_root:
        roots += [Path(workspace_root) / ".venv", Path(workspace_root) / "venv"]
    if virtual_env:
        roots.append(Path(virtual_env))
    for root in roots:
        if root.is_dir() and (path := _site_packages_in(root)) is not None:
            logger.info("doctest sandbox: using the site-packages of %s", root)
            return str(path.resolve())
    return None


def find_site_packages(
    setting: str, workspace_root: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The site-packages directory to bind into the sandbox, or None."""
    environ = os.environ if environ is None else environ
    return _resolve(setting, workspace_root, environ.get("VIRTUAL_ENV") or None)


def run_site_doctests(
    site: CompletionSite,
    clean: Sequence[CleanCandidate],
    examples: Sequence[Any],
    *,
    timeout_s: float,
    site_packages: str | None = None,
    cancel: threading.Event | None = None,
) -> list[DoctestOutcome]:
    """One outcome per candidate; blocking (call it in a worker thread); ``cancel`` stops it
    (``evalkit.sandbox.JobsCancelled``)."""
    plan = build_plan(
        site,
        [c.source for c in clean],
        [c.continuation for c in clean],
        site_packages=site_packages,
    )
    runnable = [program for program in plan.programs if program is not None]
    results = iter(
        run_examples(
            plan.prelude,
            runnable,
            examples,
            timeout_s=timeout_s,
            may_be_missing=plan.may_be_missing,
            extra_paths=(site_packages,) if site_packages else (),
            cancel=cancel,
        )
    )
    skipped = DoctestOutcome(
        total=len(examples),
        status="skipped",
        details=f"the class around {site.function_name}() does not compile with this body",
    )
    return [next(results) if program is not None else skipped for program in plan.programs]
