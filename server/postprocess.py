"""Post-processing for the editor: the candidate policy's stages, and where a body is inserted.

The stages (stop sequences, scope cut, re-indent, salvage of truncated bodies, syntax check,
dedupe, trimming what repeats the code below the cursor) live in ``evalkit.candidate_policy``,
so that evalkit's filtered pass@1 measures exactly what the editor shows; they are re-exported
here under the names the server has always used. Only :func:`insertion_text` is editor-specific.
"""

from __future__ import annotations

from evalkit.candidate_policy import (
    STOP_SEQUENCES,
    CleanCandidate,
    clean_candidate,
    clean_candidates,
    compiles,
    cut_at_dedent,
    cut_at_stop,
    fit_mid_line,
    fix_indentation,
    normalised_key,
    strip_trailing_blank,
    syntax_checkable,
    trim_repeated_suffix,
)
from server.context import CompletionSite

__all__ = [
    "STOP_SEQUENCES",
    "CleanCandidate",
    "clean_candidate",
    "clean_candidates",
    "compiles",
    "cut_at_dedent",
    "cut_at_stop",
    "fit_mid_line",
    "fix_indentation",
    "insertion_text",
    "normalised_key",
    "strip_trailing_blank",
    "syntax_checkable",
    "trim_repeated_suffix",
]


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
