"""Fit candidates to the code after the cursor, before the candidate policy cleans them.

Two fixes users of other tools ask for when the cursor is not at the end of a function: a
candidate must not close the brackets the code after the cursor already closes (``min(value|))``
+ ``, high))`` gives ``, high``), and a multi-line answer stops where the following code resumes
(the model writing ``return response.json()`` again, when that is the next line below). The
rest (trailing lines that repeat the suffix, the rest of a mid-line answer) is the candidate
policy's ``trim_repeated_suffix`` / ``fit_mid_line``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from model.protocol import Candidate
from server.context import CompletionSite
from server.postprocess import cut_at_stop, fix_indentation
from server.source_scan import SourceMap, indent_of

_OPENERS = "([{"
_CLOSERS = ")]}"


def _leading_closers(text: str) -> int:
    """How many closing brackets the code after the cursor starts with."""
    count = 0
    for char in text:
        if char in _CLOSERS:
            count += 1
        elif char in " \t\r\n":
            continue
        else:
            break
    return count


def balance_brackets(site: CompletionSite, text: str) -> str:
    """Cut ``text`` where it would close a bracket that the code after the cursor closes."""
    closes = _leading_closers(site.suffix)
    if not closes and not site.open_brackets:
        return text
    available = max(0, site.open_brackets - closes)
    code = "".join(SourceMap(text).code)  # strings and comments blanked, same offsets
    depth = 0
    for position, char in enumerate(code):
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            if depth:
                depth -= 1
            elif available:
                available -= 1
            elif closes:
                return text[:position].rstrip()
            else:
                return text  # unbalanced on both sides: nothing sensible to cut
    return text


def _resume_line(site: CompletionSite) -> str | None:
    """The line where the code below the cursor resumes (with its indentation), if any."""
    if site.starts_at_line and site.rest_of_line.strip():
        return site.consumed_prefix + site.rest_of_line.strip()
    if not site.starts_at_line and site.rest_of_line.strip():
        return None  # mid-line: the answer is one line anyway
    below = site.suffix.split("\n")[1:]  # the first piece is the (blank) rest of the line
    return next((line.rstrip("\r") for line in below if line.strip()), None)


def stop_where_code_resumes(site: CompletionSite, text: str) -> str:
    """Cut a multi-line ``text`` at the first line that is the next line of the code below the
    cursor, at the same indentation."""
    resume = _resume_line(site)
    if resume is None or len(resume.strip()) < 2:
        return text
    lines = text.split("\n")
    first = 0 if site.starts_at_line else 1
    for index in range(first, len(lines)):
        line = lines[index]
        if line.strip() == resume.strip() and indent_of(line) == indent_of(resume):
            return "\n".join(lines[:index]).rstrip()
    return text


def fit_to_suffix(site: CompletionSite, text: str) -> str | None:
    """``text`` cut by both fixes, or None when neither cuts it."""
    if not site.suffix.strip() and not site.open_brackets:
        return None
    prepared = fix_indentation(site, cut_at_stop(text))
    fitted = stop_where_code_resumes(site, balance_brackets(site, prepared))
    return fitted if fitted != prepared else None


def fit_candidates(site: CompletionSite, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Every candidate fitted; one that was cut counts as finished (not truncated)."""
    fitted: list[Candidate] = []
    for candidate in candidates:
        text = fit_to_suffix(site, candidate.text)
        if text is None:
            fitted.append(candidate)
        else:
            fitted.append(dataclasses.replace(candidate, text=text, finish_reason="stop"))
    return fitted
