"""The doctest runner the LSP filter calls: real sandbox runs, verdicts judged in the parent.

One test hides Landlock from the runner's layer detection (a fake of the detection only) to
reach the weakest fallback, where a candidate can kill the harness.
"""

from __future__ import annotations

import dataclasses
import doctest
import threading

import pytest

from evalkit import sandbox, sandbox_pool
from evalkit.doctest_runner import (
    DoctestExample,
    DoctestVerdict,
    extract_examples,
    run_doctests,
)


@pytest.fixture(scope="module", autouse=True)
def _sandbox_available() -> None:
    try:
        sandbox.detect_layers()
    except sandbox.SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


DOCSTRING = """Clamp ``value`` into ``[low, high]`` and report it.

    >>> clamp(5, 0, 3)
    3
    >>> clamp(-1, 0, 3)
    0
    >>> print(clamp(2, 0, 3), "ok")
    2 ok
    >>> clamp(1, 3, 0)
    Traceback (most recent call last):
      ...
    ValueError: empty range
"""

GOOD = """def clamp(value, low, high):
    if low > high:
        raise ValueError("empty range")
    return max(low, min(value, high))
"""
NO_CHECK = """def clamp(value, low, high):
    return max(low, min(value, high))
"""


def test_extract_examples_reads_sources_and_wants() -> None:
    examples = extract_examples(DOCSTRING)
    assert [e.source for e in examples] == [
        "clamp(5, 0, 3)\n",
        "clamp(-1, 0, 3)\n",
        'print(clamp(2, 0, 3), "ok")\n',
        "clamp(1, 3, 0)\n",
    ]
    assert examples[0].want == "3\n"
    assert examples[3].want.startswith("Traceback (most recent call last):")
    assert extract_examples("no examples here") == []
    assert extract_examples("") == []


def test_verdicts_count_passing_examples_per_candidate_in_order() -> None:
    examples = extract_examples(DOCSTRING)
    good, partial, broken = run_doctests(
        "", [GOOD, NO_CHECK, "def clamp(value, low, high) return"], examples
    )
    assert good == DoctestVerdict(4, 4, "passed", [])
    assert (partial.passed, partial.total, partial.status) == (3, 4, "failed")
    assert "example 4" in partial.details[0]
    assert (broken.passed, broken.status) == (0, "failed")
    assert broken.details[0].startswith("definition failed: SyntaxError")


def test_prelude_shared_state_and_option_directives() -> None:
    prelude = "import math\nSCALE = 10\n"
    candidate = "def spread(n):\n    return [math.floor(i * SCALE / 3) for i in range(n)]\n"
    examples = [
        DoctestExample("values = spread(3)\n", ""),
        DoctestExample("values\n", "[0, 3, 6]\n"),
        DoctestExample("spread(40)  # doctest: +ELLIPSIS\n", "[0, 3, 6, ..., 130]\n"),
        DoctestExample("spread(2)\n", "[0,   3]\n"),
    ]
    (strict,) = run_doctests(prelude, [candidate], examples)
    assert (strict.passed, strict.status) == (3, "failed")  # whitespace matters by default
    (relaxed,) = run_doctests(
        prelude, [candidate], examples, option_flags=doctest.NORMALIZE_WHITESPACE
    )
    assert relaxed.status == "passed"


def test_expected_exceptions_follow_doctest_rules() -> None:
    examples = [
        DoctestExample(
            "parse('x')  # doctest: +IGNORE_EXCEPTION_DETAIL\n",
            "Traceback (most recent call last):\nmylib.ParseError: something else\n",
        ),
        DoctestExample("parse('x')\n", "Traceback (most recent call last):\nValueError: bad\n"),
    ]
    raising_value_error = "def parse(text):\n    raise ValueError('bad')\n"
    (verdict,) = run_doctests("", [raising_value_error], examples)
    assert (verdict.passed, verdict.status) == (1, "failed")  # ParseError != ValueError
    prelude = "class ParseError(Exception):\n    pass\n"
    raising_parse_error = "def parse(text):\n    raise ParseError('bad')\n"
    (verdict,) = run_doctests(prelude, [raising_parse_error], examples)
    assert (verdict.passed, verdict.total) == (1, 2)  # detail ignored only where asked


def test_a_hanging_candidate_times_out_without_hurting_the_others() -> None:
    examples = [DoctestExample("double(2)\n", "4\n"), DoctestExample("double(0)\n", "0\n")]
    hanging = "def double(x):\n    while x == 0:\n        pass\n    return 2 * x\n"
    fine = "def double(x):\n    return 2 * x\n"
    first, stuck, last = run_doctests("", [fine, hanging, fine], examples, timeout_s=0.5)
    assert first.status == last.status == "passed"
    assert (stuck.passed, stuck.total, stuck.status) == (1, 2, "timeout")


def test_a_cancelled_run_stops_its_sandbox_and_the_next_run_is_judged() -> None:
    """The editor stops a run that outlasted its request: the looping candidate is killed long
    before its timeout, and the next run gets a working sandbox."""
    examples = [DoctestExample("double(0)\n", "0\n")]
    hanging = "def double(x):\n    while True:\n        pass\n"
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(sandbox.JobsCancelled):
        run_doctests("", [hanging], examples, timeout_s=60, cancel=cancel)
    [verdict] = run_doctests("", ["def double(x):\n    return 2 * x\n"], examples, timeout_s=5)
    assert verdict.status == "passed"


CHEATS = {
    "sys.exit(0) while defining": "import sys\nsys.exit(0)\n",
    "os._exit(0) when called": "import os\ndef double(x):\n    os._exit(0)\n",
    "SystemExit when called": "def double(x):\n    raise SystemExit(0)\n",
    "fake markers": (
        "import os\ndef double(x):\n"
        "    for fd in range(1, 10):\n"
        "        try:\n"
        '            os.write(fd, b\'4\\npassed\\n{"event": "done"}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
    ),
    "patched checker": (
        "import doctest\n"
        "doctest.OutputChecker.check_output = lambda *args: True\n"
        "def double(x):\n    return None\n"
    ),
    "always-equal result": (
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __repr__(self):\n        return 'Anything()'\n"
        "def double(x):\n    return Anything()\n"
    ),
}


@pytest.mark.parametrize("isolation", [pytest.param("bwrap", marks=pytest.mark.bwrap), "fallback"])
def test_cheating_candidates_do_not_pass(isolation: str) -> None:
    if isolation == "bwrap" and sandbox.detect_layers().bwrap is None:
        pytest.skip("bubblewrap unavailable")
    examples = [DoctestExample("double(2)\n", "4\n"), DoctestExample("double(5)\n", "10\n")]
    honest = "def double(x):\n    return 2 * x\n"
    verdicts = run_doctests("", [honest, *CHEATS.values()], examples, isolation=isolation)
    assert verdicts[0].status == "passed"
    for name, verdict in zip(CHEATS, verdicts[1:], strict=True):
        assert verdict.status != "passed", name
        assert verdict.passed == 0, (name, verdict)


def test_no_candidates_means_no_sandbox_run() -> None:
    assert run_doctests("", [], [DoctestExample("1\n", "1\n")]) == []


def test_concurrent_calls_from_threads_get_their_own_verdicts() -> None:
    """The LSP server calls the runner from worker threads; the warm sandboxes are shared."""
    from concurrent.futures import ThreadPoolExecutor

    examples = [DoctestExample("f()\n", "1\n"), DoctestExample("f() + 1\n", "2\n")]

    def check(value: int) -> list[str]:
        candidates = [f"def f():\n    return {value}\n", "def f():\n    return 1\n"]
        return [v.status for v in run_doctests("", candidates, examples)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(check, [1, 2, 1, 3, 1, 2, 1, 3]))
    expected = [["passed" if value == 1 else "failed", "passed"] for value in [1, 2, 1, 3] * 2]
    assert outcomes == expected


def test_prewarmed_sandbox_serves_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.doctest_runner import prewarm

    sandbox.close_idle_sandboxes()
    prewarm()

    def no_cold_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("a new sandbox was started although a warm one was idle")

    monkeypatch.setattr(sandbox_pool, "_Session", no_cold_start)
    (verdict,) = run_doctests("", ["def f():\n    return 1\n"], [DoctestExample("f()\n", "1\n")])
    assert verdict.status == "passed"


def test_a_candidate_that_kills_the_harness_costs_only_its_own_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weakest = dataclasses.replace(sandbox.detect_layers(), landlock_abi=0)
    monkeypatch.setattr(sandbox, "detect_layers", lambda: weakest)
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef f():\n    return 1\n"
    honest = "def f():\n    return 1\n"
    verdicts = run_doctests(
        "", [honest, killer, honest], [DoctestExample("f()\n", "1\n")], isolation="fallback"
    )
    assert [v.status for v in verdicts] == ["passed", "crashed", "passed"]


def test_docstrings_are_stripped_keeping_line_numbers() -> None:
    from evalkit.doctest_runner import strip_docstrings

    source = (
        '"""Module.\n\n>>> f()\n1\n"""\n'
        "class C:\n    '''Class doc.'''\n    x = 1\n"
        "def f():\n"
        '    """First line.\n\n    >>> f()\n    1\n    """; y = 2\n'
        "    return 1\n"
        "def g():\n    'only a docstring'\n"
    )
    stripped = strip_docstrings(source)
    assert ">>>" not in stripped and "doc" not in stripped.lower()
    assert stripped.count("\n") == source.count("\n")
    namespace: dict[str, object] = {}
    exec(compile(stripped, "<s>", "exec"), namespace)
    f, g, c = namespace["f"], namespace["g"], namespace["C"]
    assert f() == 1 and g() is None  # type: ignore[operator]
    assert f.__doc__ is None and c.__doc__ is None  # type: ignore[attr-defined]
    assert f.__code__.co_firstlineno == 9  # type: ignore[attr-defined]
    assert strip_docstrings("def broken(:\n    '''kept'''\n") == "def broken(:\n    '''kept'''\n"
