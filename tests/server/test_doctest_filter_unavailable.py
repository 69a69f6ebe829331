"""Without bubblewrap the doctest filter says why once and completions go on unverified."""

from __future__ import annotations

import dataclasses

import pytest

from evalkit import sandbox, sandbox_layers
from server import doctest_filter


def test_missing_bubblewrap_is_said_once_and_candidates_stay_unverified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layers = dataclasses.replace(
        sandbox.detect_layers(), bwrap=None, bwrap_error="bubblewrap (bwrap) is not installed"
    )
    monkeypatch.setattr(sandbox, "detect_layers", lambda: layers)
    monkeypatch.delenv(sandbox_layers.ISOLATION_ENV, raising=False)
    monkeypatch.setattr(doctest_filter, "_notices", [])
    examples = doctest_filter.extract_examples(">>> double(2)\n4\n")
    sources = ["def double(x):\n    return 2 * x\n", "def double(x):\n    return x\n"]

    for _ in range(3):
        outcomes = doctest_filter.run_examples("", sources, examples, timeout_s=2.0)
        assert [o.status for o in outcomes] == ["unavailable", "unavailable"]
        assert all(o.passed == 0 for o in outcomes)

    notices = doctest_filter.sandbox_notices()
    assert len(notices) == 1
    assert "doctest filter is off" in notices[0] and "apt-get install bubblewrap" in notices[0]
