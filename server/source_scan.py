"""Lines of a Python source as an LSP client counts them, and which of them hold code.

LSP positions count lines by ``\\n`` only; ``str.splitlines`` also breaks at form feeds, U+2028
and other characters, which shifts every line after them. Strings and comments are masked
(same length, same line breaks) so bracket counting and header detection never look inside
them, and lines that start inside a multi-line string are known, so a docstring's text at
column 0 is never taken for a top-level statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A string literal (prefixes, triple or single quotes; an unterminated triple-quoted string
# runs to the end of the text) or a comment.
_LITERAL_RE = re.compile(
    r"""(?P<string>[rRbBuUfF]{0,2}(?:
        \"\"\"(?:\\.|[^\\])*?(?:\"\"\"|\Z)
      | '''(?:\\.|[^\\])*?(?:'''|\Z)
      | "(?:\\.|[^"\\\n])*(?:"|$)
      | '(?:\\.|[^'\\\n])*(?:'|$)
    ))
    | (?P<comment>\#[^\n]*)""",
    re.VERBOSE | re.DOTALL | re.MULTILINE,
)


def split_lines(source: str) -> list[str]:
    """Lines with their ``\\n`` kept, split at ``\\n`` only; text ending in ``\\n`` gets a final
    empty line (where a cursor after the last line break sits)."""
    parts = source.split("\n")
    return [part + "\n" for part in parts[:-1]] + [parts[-1]]


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def is_blank(line: str) -> bool:
    return not line.strip()


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("comment") is not None:
        return " " * len(text)
    # Keep the quotes visible (a string is still an expression), blank the contents.
    return re.sub(r"[^\n\"']", "_", text)


@dataclass
class SourceMap:
    """A document split into ``\\n`` lines, with offsets and a masked copy for structure."""

    source: str
    lines: list[str] = field(init=False)
    offsets: list[int] = field(init=False)
    code: list[str] = field(init=False)  # lines with strings blanked and comments removed
    in_string: set[int] = field(init=False)  # lines that start inside a multi-line string

    def __post_init__(self) -> None:
        self.lines = split_lines(self.source)
        self.offsets = []
        offset = 0
        for text in self.lines:
            self.offsets.append(offset)
            offset += len(text)
        self.in_string = set()
        for match in _LITERAL_RE.finditer(self.source):
            if match.group("string") is not None and "\n" in match.group(0):
                first = self.line_at(match.start())
                last = self.line_at(match.end())
                self.in_string.update(range(first + 1, last + 1))
        masked = _LITERAL_RE.sub(_mask, self.source)
        self.code = split_lines(masked)

    def line_at(self, offset: int) -> int:
        """The 0-based line holding ``offset``."""
        return self.source.count("\n", 0, offset)

    def is_statement_line(self, index: int) -> bool:
        """A line where a statement may start: not blank, not a comment, not string text."""
        return (
            0 <= index < len(self.lines)
            and index not in self.in_string
            and bool(self.code[index].strip())
        )

    def bracket_delta(self, index: int) -> int:
        code = self.code[index]
        return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")

    def statement_end(self, start: int) -> int:
        """Last line of the (possibly multi-line) statement starting at ``start``."""
        depth = 0
        index = start
        while index < len(self.lines):
            depth += self.bracket_delta(index)
            continues = self.code[index].rstrip("\r\n").endswith("\\")
            nxt = index + 1
            if depth <= 0 and not continues and nxt not in self.in_string:
                return index
            if depth > 0 and nxt < len(self.lines) and self._starts_new_block(nxt, start):
                return index  # an unclosed bracket: stop at the next obvious statement
            index = nxt
        return len(self.lines) - 1

    def _starts_new_block(self, index: int, start: int) -> bool:
        code = self.code[index]
        if not code.strip() or index in self.in_string:
            return False
        if len(indent_of(code)) > len(indent_of(self.code[start])):
            return False
        return bool(re.match(r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]", code))

    def header_end(self, start: int) -> int:
        """Last line of a compound statement's header starting at ``start`` (ends with ':')."""
        depth = 0
        for index in range(start, len(self.lines)):
            depth += self.bracket_delta(index)
            if depth <= 0 and self.code[index].rstrip().endswith(":"):
                return index
        return len(self.lines) - 1

    def block_end(self, header: int, indent: int) -> int:
        """First line after the block whose header is at ``header``: the next statement line at
        or left of ``indent`` (closing brackets and string text do not end it)."""
        index = self.header_end(header) + 1
        while index < len(self.lines):
            if self.is_statement_line(index):
                code = self.code[index]
                if len(indent_of(code)) <= indent and code.lstrip()[:1] not in ")]}":
                    break
            index += 1
        return index
