"""Doctest filter: run the docstring's ``>>>`` examples against every candidate.

All candidates go to the sandbox in one run (``evalkit.doctest_runner``); outputs are compared
outside the sandboxed process, so a candidate cannot fake a pass.
"""

from __future__ import annotations

import doctest
import logging
from collections.abc import Sequence

from server.ranking import DoctestOutcome

logger = logging.getLogger(__name__)

Example = tuple[str, str]


def extract_examples(docstring: str | None) -> list[Example]:
    """``(source, want)`` pairs of the docstring's ``>>>`` examples."""
    if not docstring:
        return []
    try:
        from evalkit.doctest_runner import extract_examples as extract
    except ImportError:
        # Same parsing rules as the runner: the standard library's doctest parser.
        try:
            return [(e.source, e.want) for e in doctest.DocTestParser().get_examples(docstring)]
        except ValueError:
            return []
    try:
        return [(source, want) for source, want in extract(docstring)]
    except ValueError:
        return []


def run_examples(
    prelude: str,
    sources: Sequence[str],
    examples: Sequence[Example],
    *,
    timeout_s: float,
) -> list[DoctestOutcome]:
    """One outcome per function source, in order; blocking (call it in a worker thread)."""
    if not sources:
        return []
    if not examples:
        return [DoctestOutcome(status="no-examples") for _ in sources]
    try:
        from evalkit.doctest_runner import run_doctests
    except ImportError:
        logger.warning("evalkit.doctest_runner is not installed: doctests not run")
        return [DoctestOutcome(total=len(examples), status="unavailable") for _ in sources]
    try:
        verdicts = run_doctests(prelude, list(sources), list(examples), timeout_s=timeout_s)
    except Exception as exc:  # the sandbox failing must not take completions down with it
        logger.warning("doctest sandbox failed: %s", exc)
        return [
            DoctestOutcome(total=len(examples), status="unavailable", details=str(exc))
            for _ in sources
        ]
    return [
        DoctestOutcome(
            passed=int(v.passed),
            total=int(v.total),
            status=str(v.status),
            details=str(v.details or "")[:500],
        )
        for v in verdicts
    ]
