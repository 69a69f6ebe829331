"""Check candidate function bodies against a docstring's ``>>>`` examples, for the LSP's filter.

All candidates go through ONE sandboxed run: inside, each candidate gets its own forked
process (and timeout) that defines the prelude and the candidate, then runs the example
*sources* the way ``doctest`` does and reports what each one displayed or raised. The
expected outputs never enter the sandbox: every docstring is removed from the prelude and the
candidates before they are sent, and the comparison happens here, in the parent, with
``doctest.OutputChecker``. What holds (see docs/THREAT_MODEL.md): a candidate cannot read the
expected outputs, reach the comparison or report for another candidate; exiting early leaves
its remaining examples "not reached". What it reports is its own output, so a candidate that
prints the right text for an example (say, hard-coded) passes that example, as in ``doctest``.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import functools
import threading
from collections.abc import Sequence
from typing import Any

from evalkit import sandbox

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MEMORY_MB = 256
OUTPUT_LIMIT_BYTES = 64 << 10
STARVATION_CAP = 1.5  # wall time at most 1.5 x timeout_s, however busy the machine is


@dataclasses.dataclass(frozen=True)
class DoctestExample:
    """One ``>>>`` example: its source and the output the docstring expects."""

    source: str
    want: str


@dataclasses.dataclass
class DoctestVerdict:
    """How one candidate did: examples passed out of ``total``, a status, readable details.

    ``status`` is "passed" (every example matched), "failed", or the sandbox status that cut
    the candidate short ("timeout", "memory", "crashed", "output_limit").
    """

    passed: int
    total: int
    status: str
    details: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def extract_examples(docstring: str) -> list[DoctestExample]:
    """The docstring's examples, parsed by ``doctest.DocTestParser`` (options stay in source)."""
    try:
        parsed = doctest.DocTestParser().get_examples(docstring or "")
    except ValueError:  # malformed examples (bad indentation): nothing checkable
        return []
    return [DoctestExample(example.source, example.want) for example in parsed]


def _strip_exception_details(message: str) -> str:
    """``module.Error: detail`` -> ``Error``, as doctest's IGNORE_EXCEPTION_DETAIL compares."""
    stripped: str = getattr(doctest, "_strip_exception_details", lambda m: m)(message)
    return stripped


def strip_docstrings(source: str) -> str:
    """``source`` with every docstring (module, class, function) replaced by ``None``, line
    numbers unchanged, so code run from it cannot read the examples' expected outputs."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source  # it cannot run either: the child reports the syntax error
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                spans.append(first.value)
    if not spans:
        return source
    lines = source.encode("utf-8").splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    data = bytearray(source.encode("utf-8"))
    for span in sorted(spans, key=lambda s: (s.lineno, s.col_offset), reverse=True):
        assert span.end_lineno is not None and span.end_col_offset is not None
        begin = starts[span.lineno - 1] + span.col_offset
        end = starts[span.end_lineno - 1] + span.end_col_offset
        breaks = span.end_lineno - span.lineno
        data[begin:end] = b"(None" + b"\n" * breaks + b")" if breaks else b"None"
    stripped = data.decode("utf-8")
    try:
        ast.parse(stripped)
    except (SyntaxError, ValueError):  # an unusual layout: rebuild the source without them
        for span in spans:
            span.value = None
        return ast.unparse(tree)
    return stripped


def _option_flags(example: doctest.Example, base_flags: int) -> int:
    flags = base_flags
    for flag, enabled in example.options.items():
        flags = flags | flag if enabled else flags & ~flag
    return flags


def _to_doctest_example(example: DoctestExample) -> doctest.Example:
    # Re-parse so inline directives (``# doctest: +ELLIPSIS``) are honoured here, where the
    # comparison happens.
    parser: Any = doctest.DocTestParser()  # its helpers are private, stable since Python 2.4
    options = parser._find_options(example.source, "<docstring>", 0)
    # Like DocTestParser: a want that is a traceback means "expect this exception".
    match = parser._EXCEPTION_RE.match(example.want)
    exc_msg = match.group("msg") if match else None
    return doctest.Example(example.source, example.want, exc_msg=exc_msg, options=options)


def _judge(
    examples: list[doctest.Example], raw: dict[str, Any], option_flags: int
) -> DoctestVerdict:
    checker = doctest.OutputChecker()
    records = raw.get("records", [])
    details: list[str] = []
    setup_errors = [r for r in records if r.get("event") == "setup_error"]
    if setup_errors:
        error = str(setup_errors[0].get("error", "")).strip()
        return DoctestVerdict(0, len(examples), "failed", [f"definition failed: {error}"])
    outputs = {int(r["index"]): r for r in records if r.get("event") == "example"}
    passed = 0
    for index, example in enumerate(examples):
        record = outputs.get(index)
        label = f"example {index + 1} ({example.source.strip().splitlines()[0][:60]})"
        if record is None:
            details.append(f"{label}: not reached")
            continue
        flags = _option_flags(example, option_flags)
        exception = record.get("exception")
        got = str(record.get("output", ""))
        if exception is None:
            ok = checker.check_output(example.want, got, flags)
            if not ok:
                details.append(f"{label}: expected {example.want!r}, got {got!r}")
        elif example.exc_msg is None:
            ok = False
            details.append(f"{label}: raised {str(exception).strip()}")
        else:
            ok = checker.check_output(example.exc_msg, str(exception), flags)
            if not ok and flags & doctest.IGNORE_EXCEPTION_DETAIL:
                ok = checker.check_output(
                    _strip_exception_details(example.exc_msg),
                    _strip_exception_details(str(exception)),
                    flags,
                )
            if not ok:
                details.append(
                    f"{label}: expected exception {example.exc_msg.strip()!r}, "
                    f"got {str(exception).strip()!r}"
                )
        passed += int(ok)
    status = raw["status"]
    if status in ("passed", "failed"):
        # With no examples, only a clean run of the definitions counts.
        complete = passed == len(examples) and (bool(examples) or status == "passed")
        status = "passed" if complete else "failed"
        if not complete and not details:
            details.append("the candidate stopped before its examples finished")
    else:
        details.append(f"stopped: {status}")
    return DoctestVerdict(passed, len(examples), status, details)


def prewarm(*, memory_mb: int = DEFAULT_MEMORY_MB, isolation: sandbox.Isolation = "auto") -> None:
    """Start the sandbox that the next :func:`run_doctests` call will use (call it at start-up,
    off the request path, with the same ``memory_mb``)."""
    sandbox.prewarm(memory_mb=memory_mb, isolation=isolation)


def run_doctests(
    prelude: str,
    candidates: Sequence[str],
    examples: Sequence[DoctestExample],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    option_flags: int = 0,
    isolation: sandbox.Isolation = "auto",
    extra_ro_paths: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> list[DoctestVerdict]:
    """One verdict per candidate (same order); ``timeout_s`` is per candidate. Setting
    ``cancel`` stops the run (``sandbox.JobsCancelled``).

    ``prelude`` is the module context (imports, constants, helpers); each candidate is a
    complete function definition. ``option_flags`` are doctest flags applied to every
    example (default: none, like ``doctest``). ``extra_ro_paths`` are directories the sandbox
    may read (a project's site-packages; the prelude puts them on ``sys.path``).
    """
    if not candidates:
        return []
    parsed = [_to_doctest_example(example) for example in examples]
    job = sandbox._base_job("doctest", timeout_s, memory_mb, OUTPUT_LIMIT_BYTES)
    job.update(
        prelude=strip_docstrings(prelude),
        candidates=[strip_docstrings(candidate) for candidate in candidates],
        examples=[e.source for e in parsed],
    )
    # An editor is waiting: a candidate starved by machine load gets only a little extra time.
    job["starvation_cap"] = STARVATION_CAP
    run = functools.partial(
        sandbox.execute_jobs,
        workers=1,
        memory_mb=memory_mb,
        isolation=isolation,
        extra_ro_paths=extra_ro_paths,
        cancel=cancel,
    )
    raw = run([job])[0]
    if "candidates" in raw:
        return [_judge(parsed, result, option_flags) for result in raw["candidates"]]
    if len(candidates) == 1:
        return [_lost(parsed, raw)]
    # The whole sandbox was lost (only possible with weak isolation, e.g. a candidate killed
    # the harness): check each candidate on its own so only the culprit pays for it.
    singles = [{**job, "candidates": [candidate]} for candidate in candidates]
    raws = run(singles)
    return [
        _judge(parsed, one["candidates"][0], option_flags)
        if "candidates" in one
        else _lost(parsed, one)
        for one in raws
    ]


def _lost(examples: list[doctest.Example], raw: dict[str, Any]) -> DoctestVerdict:
    return DoctestVerdict(0, len(examples), str(raw["status"]), [str(raw.get("stderr", ""))])
