"""Post-processing: turn raw model continuations into bodies worth showing.

Each stage fixes one failure users of other completion tools know (docs/LSP.md): text after the
function (stop sequences, dedent cut), wrong indentation or a stray leading space, candidates that
do not compile, duplicates, and text that repeats the code already below the cursor. Blank lines
inside a body are kept: no stage treats ``"\\n\\n"`` as the end of a function.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from model.protocol import Candidate
from server.context import CompletionSite, function_source

#: Stop sequences sent to the backend: a new top-level statement ends the function. A blank line
#: is deliberately not one of them (it would cut bodies that contain blank lines).
STOP_SEQUENCES: tuple[str, ...] = (
    "\ndef ",
    "\nasync def ",
    "\nclass ",
    "\nif __name__",
    "\n@",
    "\nprint(",
    "\n#",
)


@dataclass(frozen=True)
class CleanCandidate:
    """A continuation that survived post-processing, with the function it completes."""

    continuation: str
    source: str  # the whole function, dedented to module level
    candidate: Candidate


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


def fix_indentation(site: CompletionSite, text: str) -> str:
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


def cut_at_dedent(site: CompletionSite, text: str) -> str:
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


def insertion_text(site: CompletionSite, continuation: str) -> str:
    """What the editor inserts at the cursor for ``continuation``."""
    text = continuation
    if site.consumed_prefix:
        if text.startswith(site.consumed_prefix):
            text = text[len(site.consumed_prefix) :]
        else:
            # The cursor is deeper than the body's indentation: keep the body's own indent
            # relative to the cursor rather than doubling it.
            text = text.lstrip(" \t")
    text = site.insert_prefix + text
    if site.starts_at_line and not site.insert_prefix and site.rest_of_line.strip():
        # Code already follows the cursor on this line: keep it on its own line below.
        text += "\n" + site.consumed_prefix
    return text


def trim_repeated_suffix(site: CompletionSite, text: str) -> str | None:
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


def fit_mid_line(site: CompletionSite, text: str) -> str:
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
    try:
        compile(source, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _mean_logprob_key(candidate: Candidate) -> float:
    mean = candidate.mean_logprob
    return mean if mean is not None else float("-inf")


def _salvage_truncated(site: CompletionSite, text: str) -> str | None:
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


def clean_candidates(
    site: CompletionSite,
    candidates: Sequence[Candidate],
    *,
    check_syntax: bool = True,
) -> list[CleanCandidate]:
    """Run every stage; best mean log-prob first among duplicates, order otherwise kept."""
    survivors: list[CleanCandidate] = []
    seen: set[str] = set()
    # Stable sort: candidates without log-probs (None) go last, in the backend's order.
    ordered = sorted(candidates, key=_mean_logprob_key, reverse=True)
    for candidate in ordered:
        text = cut_at_stop(candidate.text)
        text = fix_indentation(site, text)
        text = cut_at_dedent(site, text)
        text = fit_mid_line(site, text)
        text = strip_trailing_blank(text)
        if not text.strip():
            continue
        trimmed = trim_repeated_suffix(site, text)
        if trimmed is None:
            continue
        text = trimmed
        source = function_source(site, text)
        if check_syntax and not compiles(source):
            salvaged = (
                _salvage_truncated(site, text) if candidate.finish_reason == "length" else None
            )
            if salvaged is None:
                continue
            text = salvaged
            source = function_source(site, text)
        key = normalised_key(source, text)
        if key in seen:
            continue
        seen.add(key)
        survivors.append(CleanCandidate(continuation=text, source=source, candidate=candidate))
    return survivors


def syntax_checkable(site: CompletionSite) -> bool:
    """Whether the code before the cursor compiles with some body; if the user's own code is
    broken there, a syntax check would reject every candidate, so it is skipped."""
    if not site.starts_at_line:
        return True
    indent = site.next_line_indent or site.body_indent
    return compiles(function_source(site, indent + "pass"))
