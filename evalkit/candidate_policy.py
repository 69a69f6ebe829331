"""The candidate policy: which sampled bodies are worth showing, and in which order.

One implementation, used by the LSP server (``server.postprocess`` / ``server.ranking`` are thin
users) and by evalkit's filtered pass@1, so that the number reported is what the editor shows.

Post-processing fixes what users of other completion tools meet (docs/LSP.md): text after the
function (stop sequences, the scope cut where code dedents out of the function), wrong
indentation or a stray leading space, a body cut by the token limit (its longest compiling prefix
is kept), code that does not compile (dropped), duplicates (same AST; the likelier one stays) and
text that repeats the code below the cursor. Blank lines inside a body are kept: no stage treats
``"\\n\\n"`` as the end of a function. Ranking: most docstring examples passed first, then the
highest mean token log-prob (Codex: mean beats sum); candidates without log-probs keep the
backend's order, after those with them.

A *site* is where a body is wanted: ``server.context.CompletionSite`` in the editor,
``evalkit.prompt_site.PromptSite`` for a HumanEval prompt. Both satisfy :class:`Site`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from model.protocol import Candidate

#: Stop sequences sent to the backend by the LSP: a new top-level statement ends the function. A
#: blank line is deliberately not one of them (it would cut bodies that contain blank lines).
#: Every one starts a line at column 0, so with the scope cut (which ends the body at the first
#: line at or left of the ``def``) a text stopped at Codex's list gets the same body.
STOP_SEQUENCES: tuple[str, ...] = (
    "\ndef ",
    "\nasync def ",
    "\nclass ",
    "\nif __name__",
    "\n@",
    "\nprint(",
    "\n#",
)

#: Candidates the editor asks for per completion (``docomplete.n``, server/config.py's default):
#: filtered pass@1 is headlined at this n.
DEFAULT_N = 4


class Site(Protocol):
    """What the policy needs to know about where a body is wanted."""

    @property
    def def_indent(self) -> str: ...  # indentation of the ``def`` line
    @property
    def body_indent(self) -> str: ...
    @property
    def function_prefix(self) -> str: ...  # from the def line (class line for methods) on
    @property
    def suffix(self) -> str: ...  # text after the cursor up to the end of the function
    @property
    def rest_of_line(self) -> str: ...  # text on the cursor line after the cursor
    @property
    def next_line_indent(self) -> str | None: ...
    @property
    def starts_at_line(self) -> bool: ...  # the continuation begins at the start of a line


def function_source(site: Site, continuation: str) -> str:
    """The whole function (dedented to module level) with ``continuation`` as its body."""
    text = site.function_prefix + continuation
    if not site.starts_at_line:
        text += site.rest_of_line  # the code after a mid-line cursor stays where it is
    if site.def_indent:
        # Drop the enclosing class line a method's prompt carries, then dedent by the def's
        # indentation.
        text = text.split("\n", 1)[1] if text.lstrip().startswith("class ") else text
        dedented = []
        for line in text.split("\n"):
            dedented.append(
                line[len(site.def_indent) :] if line.startswith(site.def_indent) else line
            )
        text = "\n".join(dedented)
    return text if text.endswith("\n") else text + "\n"


# ----------------------------------------------------------------------------------------------
# Post-processing stages


@dataclass(frozen=True)
class CleanCandidate:
    """A continuation that survived post-processing, with the function it completes."""

    continuation: str
    source: str  # the whole function, dedented to module level
    candidate: Candidate


def mean_logprob_of(candidate: Candidate) -> float | None:
    """The candidate's mean token log-prob, or None when the backend sent no log-probs."""
    return candidate.mean_logprob if candidate.token_logprobs else None


def cut_at_stop(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """Cut ``text`` at the earliest stop sequence (a backend may not have applied them)."""
    cut = len(text)
    for stop in stops:
        position = text.find(stop)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


def _indent_len(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _shift(line: str, delta: int) -> str:
    if not line.strip():
        return ""
    if delta >= 0:
        return " " * delta + line
    removable = min(-delta, _indent_len(line))
    return line[removable:]


def fix_indentation(site: Site, text: str) -> str:
    """Re-indent the body so its first full line sits at the indentation the cursor implies.

    Fixes bodies written at the wrong level and the "leading stray space" (a first line with one
    space too many or too few); relative indentation inside the body is kept.
    """
    indent = site.next_line_indent
    if indent is None:
        return text
    head = ""
    body = text
    if not site.starts_at_line:
        if "\n" not in text:
            return text
        first_piece, body = text.split("\n", 1)
        if first_piece.strip():
            return text  # the model continued the cursor line; its next lines follow it
        head = "\n"  # whitespace the model left at the end of the cursor line is dropped
    lines = body.split("\n")
    # The body starts on a fresh line: blank lines before it are noise.
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return ""
    delta = len(indent) - _indent_len(lines[0])
    shifted = [_shift(line, delta) for line in lines]
    shifted[0] = indent + shifted[0].lstrip(" \t")
    return head + "\n".join(shifted)


def cut_at_dedent(site: Site, text: str) -> str:
    """Cut where the code dedents out of the function (a line at or left of the ``def``)."""
    lines = text.split("\n")
    limit = len(site.def_indent)
    # Without starts_at_line the first piece continues the cursor line: never cut there.
    first_checked = 0 if site.starts_at_line else 1
    for index in range(first_checked, len(lines)):
        line = lines[index]
        if line.strip() and _indent_len(line) <= limit:
            return "\n".join(lines[:index])
    return text


def strip_trailing_blank(text: str) -> str:
    """Trailing whitespace and blank lines go; blank lines inside the body stay."""
    return text.rstrip()


def trim_repeated_suffix(site: Site, text: str) -> str | None:
    """Drop trailing lines of ``text`` that repeat the code below the cursor.

    Returns the trimmed text, or None when nothing new is left.
    """
    suffix_lines = [line.strip() for line in site.suffix.split("\n") if line.strip()]
    if not suffix_lines:
        return text
    lines = text.split("\n")
    stripped = [line.strip() for line in lines]
    for start in range(len(lines)):
        tail = [line for line in stripped[start:] if line]
        if tail and tail == suffix_lines[: len(tail)]:
            kept = "\n".join(lines[:start]).rstrip()
            return kept if kept.strip() else None
    return text


def fit_mid_line(site: Site, text: str) -> str:
    """With code after the cursor on its line, offer only the rest of this line, without
    the closing text the model wrote again (``foo(a, |)`` + ``b)`` → ``b``)."""
    rest = site.rest_of_line.strip()
    if site.starts_at_line or not rest:
        return text
    line = text.split("\n", 1)[0].rstrip()
    if line.endswith(rest):
        line = line[: -len(rest)].rstrip()
    return line


def compiles(source: str) -> bool:
    """Whether ``source`` is valid Python (compiled, never run: safe outside the sandbox)."""
    try:
        compile(source, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def salvage_truncated(site: Site, text: str) -> str | None:
    """A candidate cut by the token limit: keep the longest prefix of whole lines that compiles."""
    lines = text.split("\n")
    for end in range(len(lines) - 1, 0, -1):
        shorter = "\n".join(lines[:end]).rstrip()
        if shorter.strip() and compiles(function_source(site, shorter)):
            return shorter
    return None


def normalised_key(source: str, continuation: str) -> str:
    """Two candidates are duplicates when their code is the same (ignoring layout/comments)."""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return " ".join(continuation.split())


def clean_candidate(
    site: Site, candidate: Candidate, *, check_syntax: bool = True
) -> CleanCandidate | None:
    """One candidate through every stage but dedupe; None when nothing worth showing is left."""
    text = cut_at_stop(candidate.text)
    text = fix_indentation(site, text)
    text = cut_at_dedent(site, text)
    text = fit_mid_line(site, text)
    text = strip_trailing_blank(text)
    if not text.strip():
        return None
    trimmed = trim_repeated_suffix(site, text)
    if trimmed is None:
        return None
    text = trimmed
    source = function_source(site, text)
    if check_syntax and not compiles(source):
        salvaged = salvage_truncated(site, text) if candidate.finish_reason == "length" else None
        if salvaged is None:
            return None
        text = salvaged
        source = function_source(site, text)
    return CleanCandidate(continuation=text, source=source, candidate=candidate)


def _logprob_key(mean: float | None) -> tuple[float, float]:
    """Larger is likelier; no log-probs sorts after any log-prob (NaN counts as none)."""
    if mean is None or math.isnan(mean):
        return (0.0, 0.0)
    return (1.0, mean)


def clean_candidates(
    site: Site,
    candidates: Sequence[Candidate],
    *,
    check_syntax: bool = True,
) -> list[CleanCandidate]:
    """Every stage, then dedupe; likeliest first (backend order among equals and among
    candidates without log-probs), so the likelier of two duplicates is the one kept."""
    survivors: list[CleanCandidate] = []
    seen: set[str] = set()
    ordered = sorted(
        candidates, key=lambda c: _logprob_key(mean_logprob_of(c)), reverse=True
    )  # sorted() is stable, also with reverse=True: equals keep the backend's order
    for candidate in ordered:
        clean = clean_candidate(site, candidate, check_syntax=check_syntax)
        if clean is None:
            continue
        key = normalised_key(clean.source, clean.continuation)
        if key in seen:
            continue
        seen.add(key)
        survivors.append(clean)
    return survivors


def syntax_checkable(site: Site) -> bool:
    """Whether the code before the cursor compiles with some body; if the user's own code is
    broken there, a syntax check would reject every candidate, so it is skipped."""
    if not site.starts_at_line:
        return True
    indent = site.next_line_indent or site.body_indent
    return compiles(function_source(site, indent + "pass"))


# ----------------------------------------------------------------------------------------------
# Ranking


@dataclass(frozen=True)
class DoctestOutcome:
    """How a candidate did on the docstring's ``>>>`` examples.

    ``status`` is the sandbox status (``passed``, ``failed``, ``timeout`` …) or one of
    ``no-examples`` (the docstring has none), ``disabled`` (doctestFilter is off),
    ``skipped`` (methods: their examples need the class) and ``unavailable`` (the sandbox could
    not run; ranking falls back to log-probs).
    """

    passed: int = 0
    total: int = 0
    status: str = "no-examples"
    details: str = ""


def preference(examples_passed: int, mean_logprob: float | None) -> tuple[float, float, float]:
    """The ranking key, larger is better: docstring examples passed, then mean log-prob.

    Candidates without log-probs come after those with them; among themselves they keep the
    backend's order (sort stably).
    """
    return (float(examples_passed), *_logprob_key(mean_logprob))


@dataclass(frozen=True)
class RankedCandidate:
    """A candidate ready to show: its continuation (prompt coordinates), function and scores."""

    continuation: str
    source: str
    mean_logprob: float | None  # None: the backend sent no log-probs
    sum_logprob: float | None
    finish_reason: str
    doctest: DoctestOutcome = field(default_factory=DoctestOutcome)

    def as_json(self) -> dict[str, Any]:
        return {
            "meanLogprob": _rounded(self.mean_logprob),
            "sumLogprob": _rounded(self.sum_logprob),
            "finishReason": self.finish_reason,
            "doctest": {
                "passed": self.doctest.passed,
                "total": self.doctest.total,
                "status": self.doctest.status,
                "details": self.doctest.details,
            },
        }

    def verdict_text(self) -> str:
        """One line for completion documentation and the demo."""
        outcome = self.doctest
        if outcome.total:
            verdict = f"doctests {outcome.passed}/{outcome.total} passed"
            if outcome.status not in ("passed", "failed"):
                verdict += f" ({outcome.status})"
        else:
            verdict = {
                "no-examples": "no doctest examples",
                "disabled": "doctest filter off",
                "skipped": "doctests skipped (method)",
            }.get(outcome.status, f"doctests {outcome.status}")
        if self.mean_logprob is None:
            return f"{verdict} · no log-probs"
        return f"{verdict} · mean log-prob {self.mean_logprob:.3f}"


def _rounded(value: float | None) -> float | None:
    # JSON has no infinities: an empty body's -inf is sent as null like a missing value.
    return round(value, 4) if value is not None and math.isfinite(value) else None


def rank_candidates(
    candidates: Sequence[CleanCandidate], outcomes: Sequence[DoctestOutcome]
) -> list[RankedCandidate]:
    """Most examples passed first; ties (and the no-examples case) by mean log-prob, then the
    order given (the backend's, for candidates without log-probs)."""
    ranked = []
    for clean, outcome in zip(candidates, outcomes, strict=True):
        mean = mean_logprob_of(clean.candidate)
        ranked.append(
            RankedCandidate(
                continuation=clean.continuation,
                source=clean.source,
                mean_logprob=mean,
                sum_logprob=clean.candidate.sum_logprob if mean is not None else None,
                finish_reason=clean.candidate.finish_reason,
                doctest=outcome,
            )
        )
    ranked.sort(key=lambda r: preference(r.doctest.passed, r.mean_logprob), reverse=True)
    return ranked
