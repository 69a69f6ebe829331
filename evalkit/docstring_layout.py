"""A docstring's layout for rewriting: its literal as lines, prose vs examples, sentences.

Used by :mod:`evalkit.paraphrase`. Examples are ``>>>`` blocks with their outputs, lines that
call the entry point, and everything an "Example(s):" header introduces (HumanEval writes
examples all three ways); the rest is prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

HEADER_RE = re.compile(r"^(for example|for instance|examples?|example \d+)\s*:?$", re.I)
NUMBERED_HEADER_RE = re.compile(r"^(\s*)example \d+\s*:?\s*$", re.I)
QUOTED_RE = re.compile(r"""(?<!\w)('[^'\n]*'|"[^"\n]*")(?!\w)""")
LIST_ITEM_RE = re.compile(r"^([-*•@]|\d+[.)])\s*")
LITERAL_RE = re.compile(r"^([rRuU]?)(\"\"\"|''')(.*)\2$", re.S)
ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "mr.", "dr.", "no."}


@dataclass
class DocLiteral:
    """The docstring literal of the entry point, as editable lines."""

    prefix: str
    quote: str
    lead: str  # whitespace between the opening quotes and text on the same line
    inline: bool  # the text starts on the opening quotes' line
    indent: str  # indentation of the docstring's lines
    lines: list[str]  # content lines, each with its own indentation
    tail: list[str]  # whitespace-only lines before the closing quotes

    @classmethod
    def parse(cls, literal: str, default_indent: str) -> DocLiteral | None:
        match = LITERAL_RE.match(literal)
        if match is None:
            return None
        prefix, quote, inner = match.groups()
        raw = inner.split("\n")
        first, rest = raw[0], raw[1:]
        tail: list[str] = []
        while rest and not rest[-1].strip():
            tail.insert(0, rest.pop())
        widths = [len(line) - len(line.lstrip()) for line in rest if line.strip()]
        indent = min(widths) * " " if widths else default_indent
        inline = bool(first.strip())
        lines = ([indent + first.strip()] if inline else []) + rest
        lead = first[: len(first) - len(first.lstrip())] if inline else first
        return cls(prefix, quote, lead, inline, indent, lines, tail)

    def render(self) -> str:
        body = list(self.lines)
        if self.inline and body and body[0].strip() and not body[0].lstrip().startswith(">>>"):
            first = self.lead + body.pop(0).strip()
        else:
            first = "" if self.inline else self.lead
        inner = "\n".join([first, *body, *self.tail])
        return f"{self.prefix}{self.quote}{inner}{self.quote}"


def classify_lines(lines: list[str], entry: str) -> list[str]:
    """``prose`` | ``example`` | ``header`` | ``blank`` for each line."""
    widths = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    base = min(widths, default=0)

    def starts_item(text: str) -> bool:
        return text.startswith((">>>", f"{entry}(")) or bool(HEADER_RE.match(text))

    def region_goes_on(after: int) -> bool:
        for line in lines[after + 1 :]:
            if line.strip():
                width = len(line) - len(line.lstrip())
                return width > base or starts_item(line.strip())
        return False

    kinds: list[str] = []
    in_doctest = in_region = False
    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            kinds.append("blank")
            in_doctest = False
            in_region = in_region and region_goes_on(i)
        elif text.startswith(">>>") or (in_doctest and text.startswith("...")):
            kinds.append("example")
            in_doctest = True
        elif in_doctest:
            kinds.append("example")  # the expected output
        elif HEADER_RE.match(text):
            kinds.append("header")
            in_region = True
        elif in_region or text.startswith(f"{entry}("):
            kinds.append("example")
        else:
            kinds.append("prose")
    return kinds


def split_segments(kinds: list[str]) -> list[tuple[str, list[int]]]:
    """Runs of ``ex`` (examples with their headers), ``prose`` and ``blank`` lines.

    A blank line between two example lines belongs to the examples (it may be an expected
    output, and moving or dropping must keep it).
    """
    groups: list[tuple[str, list[int]]] = []
    for i, kind in enumerate(kinds):
        group = "ex" if kind in ("example", "header") else kind
        if groups and groups[-1][0] == group:
            groups[-1][1].append(i)
        else:
            groups.append((group, [i]))
    merged: list[tuple[str, list[int]]] = []
    for index, (group, members) in enumerate(groups):
        between = 0 < index < len(groups) - 1
        if group == "blank" and between and groups[index - 1][0] == groups[index + 1][0] == "ex":
            group = "ex"
        if merged and merged[-1][0] == group == "ex":
            merged[-1][1].extend(members)
        else:
            merged.append((group, members))
    return merged


def sub_outside_quotes(text: str, pattern: re.Pattern[str], repl: Callable) -> str:
    """``pattern.sub`` on the parts of ``text`` that are not quoted strings."""
    out, last = [], 0
    for match in QUOTED_RE.finditer(text):
        out.append(pattern.sub(repl, text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(pattern.sub(repl, text[last:]))
    return "".join(out)


def keep_case(replacement: str) -> Callable[[re.Match[str]], str]:
    def repl(match: re.Match[str]) -> str:
        if match.group(0)[:1].isupper():
            return replacement[:1].upper() + replacement[1:]
        return replacement

    return repl


def phrase_pattern(phrases: list[str]) -> re.Pattern[str]:
    options = "|".join(r"\s+".join(re.escape(w) for w in phrase.split()) for phrase in phrases)
    return re.compile(rf"(?<![\w'])(?:{options})(?![\w'])", re.I)


def split_sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for match in re.finditer(r"[.!?]\s+(?=[A-Z])", text):
        words = text[start : match.start() + 1].split()
        last = words[-1].lower() if words else ""
        if last in ABBREVIATIONS or re.fullmatch(r"\w\.|\d+\.", last):
            continue
        sentences.append(text[start : match.start() + 1].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def example_items(lines: list[str], members: list[int], entry: str) -> list[list[int]]:
    """The examples of one example block, each with its output lines; header lines first."""
    starts = []
    for position, i in enumerate(members):
        text = lines[i].strip()
        before = lines[members[position - 1]].strip() if position else ""
        if (
            (text.startswith(">>>") and not before.startswith((">>>", "...")))
            or (text.startswith(f"{entry}(") and not before.startswith(">>>"))
            or NUMBERED_HEADER_RE.match(lines[i])
        ):
            starts.append(position)
    if not starts:
        return []
    return [members[a:b] for a, b in zip(starts, [*starts[1:], len(members)], strict=True)]
