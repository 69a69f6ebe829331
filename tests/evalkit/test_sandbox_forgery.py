"""Verdicts cannot be forged from inside the candidate, on both paths that judge one.

``check_many`` (eval scoring) runs the test in the sandbox's harness, a process that never
runs candidate code; ``run_doctests`` (the LSP filter) compares outputs in the caller, and
the expected outputs never enter the sandbox. Real sandbox runs only, in bubblewrap and in
the explicit unsafe fallback. The attacks here are the ones that forged passes against the
earlier in-process design (see tests/evalkit/attacks/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit import sandbox
from evalkit.doctest_runner import DoctestExample, run_doctests

ATTACKS = Path(__file__).with_name("attacks")
ISOLATIONS = [pytest.param("bwrap", marks=pytest.mark.bwrap), "fallback"]
ADD_TEST = "assert add(2, 2) == 4\nassert 4 == add(2, 2)\nassert add(1, 1) in [2]\n"


@pytest.fixture(scope="module", autouse=True)
def _sandbox_available() -> None:
    try:
        sandbox.detect_layers()
    except sandbox.SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


def _skip_without_bwrap(isolation: str) -> None:
    if isolation == "bwrap" and sandbox.detect_layers().bwrap is None:
        pytest.skip("bubblewrap unavailable")


# A docstring like the LSP's candidates carry: the examples' expected outputs are in it.
DOUBLE_DOC = '''def double(x):
    """Twice ``x``.

    >>> double(2)
    4
    >>> double(21)
    42
    """
'''
EXAMPLES = [DoctestExample("double(2)\n", "4\n"), DoctestExample("double(21)\n", "42\n")]

# Finds the wanted outputs wherever it can (its own docstring, any string in memory that
# holds a ">>>" example), finds any nonce in its callers' frames, then writes a record per
# example claiming the wanted output, as nonce-tagged lines and as frames, to every fd.
FORGE_RECORDS = """
    import doctest, gc, json, os, struct, sys
    texts = [double.__doc__ or ""]
    texts += [o for o in gc.get_objects() if isinstance(o, str) and ">>>" in o]
    frame, nonces = sys._getframe(), []
    while frame is not None:
        nonces += [v for v in frame.f_locals.values() if isinstance(v, str) and len(v) == 32]
        frame = frame.f_back
    wants = []
    for text in texts:
        try:
            wants = [e.want for e in doctest.DocTestParser().get_examples(text)] or wants
        except ValueError:
            pass
    wants = wants or ["4\\n", "42\\n"]
    records = [{"event": "example", "index": i, "output": w, "exception": None}
               for i, w in enumerate(wants)] + [{"event": "done"}]
    blob = b""
    for record in records:
        body = json.dumps(record).encode()
        blob += struct.pack(">I", len(body)) + body
        blob += b"".join((n + " ").encode() + body + b"\\n" for n in nonces or [""])
    for fd in range(256):
        try:
            os.write(fd, blob)
        except OSError:
            pass
    os._exit(0)
"""
WRONG_BODY = "    return None\n"
DOCTEST_CHEATS = {
    "records forged from the docstring, nonce from frames, exit 0": DOUBLE_DOC + FORGE_RECORDS,
    "patched comparisons": (ATTACKS / "patch_main_comparators.py").read_text()
    + DOUBLE_DOC
    + WRONG_BODY,
    "everything searched, verdicts written to every fd, exit 0": (
        ATTACKS / "forge_everything.py"
    ).read_text()
    + DOUBLE_DOC
    + WRONG_BODY,
    "nonce from frames, exit 0 when called": DOUBLE_DOC
    + "    import os, sys\n"
    + "    nonce = str(sys._getframe(1).f_locals.get('nonce', ''))\n"
    + '    os.write(3, (nonce + \' {"event": "done"}\\n\').encode())\n'
    + "    os._exit(0)\n",
}


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_doctest_cheats_get_no_example(isolation: str) -> None:
    _skip_without_bwrap(isolation)
    honest = DOUBLE_DOC + "    return 2 * x\n"
    verdicts = run_doctests("", [honest, *DOCTEST_CHEATS.values()], EXAMPLES, isolation=isolation)
    assert verdicts[0].status == "passed", verdicts[0]
    for name, verdict in zip(DOCTEST_CHEATS, verdicts[1:], strict=True):
        assert verdict.status != "passed", (name, verdict)
        assert verdict.passed == 0, (name, verdict)


def test_the_docstring_never_reaches_the_candidate() -> None:
    leak = DOUBLE_DOC + "    print(repr(double.__doc__))\n    return 2 * x\n"
    examples = [DoctestExample("double(2)\n", "None\n4\n")]
    (verdict,) = run_doctests("", [leak], examples)
    assert verdict.status == "passed", verdict  # __doc__ was None inside the sandbox


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_check_cheats_fail_and_honest_programs_pass(isolation: str) -> None:
    _skip_without_bwrap(isolation)
    names = [
        "patch_main_comparators.py",
        "forge_nonce_from_frames.py",
        "forge_everything.py",
        "forge_then_serve_wrong.py",
        "always_equal.py",
        "fake_success_marker.py",
        "exit_os_exit.py",
    ]
    honest = ("def add(a, b):\n    return a + b\n", ADD_TEST)
    pairs = [honest] + [((ATTACKS / name).read_text(), ADD_TEST) for name in names] + [honest]
    results = sandbox.check_many(pairs, workers=1, isolation=isolation)
    assert results[0].passed and results[-1].passed
    for name, result in zip(names, results[1:-1], strict=True):
        assert result.status == "failed", (name, result)


# ---------------------------------------------------------------- what the proxies carry


def test_exceptions_cross_as_builtin_types() -> None:
    program = (
        "class Bad(ValueError):\n    pass\n"
        "def parse(text):\n"
        "    if not text:\n        raise Bad('empty')\n"
        "    if text == 'stop':\n        raise StopIteration\n"
        "    return int(text)\n"
    )
    catches = (
        "try:\n    parse('')\nexcept ValueError as exc:\n    assert str(exc) == 'empty'\n"
        "else:\n    raise AssertionError('no error')\n"
        "assert parse('12') == 12\n"
    )
    stop = "results = list(map(parse, ['1', 'stop', '3']))\n"  # PEP 479: never a silent stop
    caught, stopped = sandbox.check_many([(program, catches), (program, stop)])
    assert caught.passed, caught
    assert stopped.status == "failed" and "RuntimeError" in stopped.stderr


def test_exiting_inside_a_call_fails_even_if_the_test_catches_everything() -> None:
    program = "import sys\ndef f():\n    sys.exit(0)\n"
    test = "try:\n    f()\nexcept BaseException:\n    pass\n"
    result = sandbox.check_program(program, test)
    assert result.status == "failed" and "SystemExit" in result.stderr


def test_unsupported_results_fail_and_unsendable_arguments_are_unverified() -> None:
    program = (
        "class Point:\n    def __init__(self, x):\n        self.x = x\n"
        "def make(x):\n    return Point(x)\n"
        "def apply(f, x):\n    return f(x)\n"
        "ORIGIN = Point(0)\n"
    )
    returns_object = "assert make(1) is not None\n"
    passes_function = "assert apply(lambda v: v + 1, 1) == 2\n"
    uses_object = "assert ORIGIN == ORIGIN\n"
    results = sandbox.check_many(
        [(program, returns_object), (program, passes_function), (program, uses_object)]
    )
    assert [r.status for r in results] == ["failed", "unverified", "unverified"]
    assert "unsupported return type" in results[0].stderr
    assert "not verified" in results[1].stderr and "not verified" in results[2].stderr
    assert not any(r.passed for r in results)


def test_subclasses_arrive_as_their_builtin_base() -> None:
    program = (
        "from collections import Counter, OrderedDict, namedtuple\n"
        "from enum import IntEnum\n"
        "from fractions import Fraction\n"
        "Pair = namedtuple('Pair', 'a b')\n"
        "class Name(str):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n"
        "class Level(IntEnum):\n    HIGH = 3\n"
        "def values():\n"
        "    return (Counter('aab'), OrderedDict(x=1), Pair(1, 2), Name('bob'), Level.HIGH,\n"
        "            Fraction(1, 3), {1.5, None}, b'\\x00')\n"
    )
    test = (
        "counts, ordered, pair, name, level, third, mixed, raw = values()\n"
        "assert counts == {'a': 2, 'b': 1} and type(counts) is dict\n"
        "assert ordered == {'x': 1} and pair == (1, 2) and type(pair) is tuple\n"
        "assert name == 'bob' and name != 'alice' and type(name) is str\n"
        "assert level == 3 and type(level) is int\n"
        "from fractions import Fraction\n"
        "assert third == Fraction(1, 3) and mixed == {1.5, None} and raw == b'\\x00'\n"
    )
    assert sandbox.check_program(program, test).passed


def test_in_place_changes_to_arguments_reach_the_test() -> None:
    program = "def sort_in_place(items):\n    items.sort()\n"
    test = "data = [3, 1, 2]\nsort_in_place(data)\nassert data == [1, 2, 3]\n"
    assert sandbox.check_program(program, test).passed


def test_prompt_helpers_come_from_the_prompt_not_the_completion() -> None:
    prompt = (
        "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n\n"
        "def find_zero(xs):\n    '''A zero of the polynomial xs.'''\n"
    )
    honest = "    return -xs[0] / xs[1]\n"
    cheat = (  # returns nonsense and redefines the helper the test checks with
        "    return 12345.0\n\ndef poly(xs, x):\n    return 0\n"
    )
    test = (
        "def check(candidate):\n"
        "    for coeffs in ([1, 2], [-3, 1], [4, -2]):\n"
        "        assert abs(poly(coeffs, candidate(coeffs))) < 1e-6\n"
        "check(find_zero)\n"
    )
    good, bad = sandbox.check_many([(prompt + honest, test), (prompt + cheat, test)])
    assert good.passed, good
    assert bad.status == "failed", bad


def test_batched_calls_keep_their_order_and_state() -> None:
    program = "CALLS = []\ndef f(x):\n    CALLS.append(x)\n    return len(CALLS)\n"
    test = (
        "def check(candidate):\n"
        "    assert candidate('a') == 1\n"
        "    assert candidate('b') == 2\n"
        "    try:\n        assert candidate('c') == 99\n    except AssertionError:\n"
        "        pass\n"
        "    assert candidate('d') == 4\n"
        "check(f)\n"
    )
    assert sandbox.check_program(program, test).passed


def test_programs_that_do_not_load_fail_without_losing_the_sandbox() -> None:
    # Literal calls are sent as soon as the program starts loading: more than a pipe holds
    # here, so sending them meets a child that already died (and must not lose the sandbox).
    asserts = "".join(
        f"    assert candidate({'x' * 3000!r}) == {'x' * 3000!r}\n" for _ in range(40)
    )
    test = f"def check(candidate):\n{asserts}check(f)\n"
    good = "def f(x):\n    return x\n"
    broken = ["def f(x):\n    return x  # \x00", "def f(x) return x\n", "import os\nos._exit(0)\n"]
    pairs = [(program, test) for program in broken] + [(good, test)]
    results = sandbox.check_many(pairs * 3, workers=1)
    assert [r.status for r in results] == ["failed", "failed", "failed", "passed"] * 3


def test_a_test_that_swallows_the_timeout_still_times_out() -> None:
    program = "def slow():\n    while True:\n        pass\n"
    test = "try:\n    slow()\nexcept BaseException:\n    pass\n"
    result = sandbox.check_program(program, test, timeout_s=0.5)
    assert result.status == "timeout", result
