"""Doctest filter: run the docstring's ``>>>`` examples against every candidate.

All candidates go to the sandbox in one run (``evalkit.doctest_runner``). The expected outputs
never enter it (docstrings are stripped, only example sources are sent) and the comparison
happens out here, so a candidate cannot read them, patch the checker or report for another
candidate; it can only print its own output, which passes an example exactly when ``doctest``
would pass it (see docs/THREAT_MODEL.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from server.ranking import DoctestOutcome

logger = logging.getLogger(__name__)


def extract_examples(docstring: str | None) -> list[Any]:
    """The docstring's ``>>>`` examples (``evalkit.doctest_runner.DoctestExample`` objects)."""
    if not docstring:
        return []
    from evalkit.doctest_runner import extract_examples as extract

    return list(extract(docstring))


def run_examples(
    prelude: str,
    sources: Sequence[str],
    examples: Sequence[Any],
    *,
    timeout_s: float,
) -> list[DoctestOutcome]:
    """One outcome per function source, in order; blocking (call it in a worker thread)."""
    if not sources:
        return []
    if not examples:
        return [DoctestOutcome(status="no-examples") for _ in sources]
    from evalkit.doctest_runner import run_doctests

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
            details="; ".join(str(d) for d in v.details)[:500],
        )
        for v in verdicts
    ]
