"""Documents whose lines are counted the LSP way: split at ``\\n`` only.

pygls splits a document with ``str.splitlines``, which also breaks at form feeds, U+2028,
U+0085 and other characters; every position after one of them then points at the wrong place
(and incremental edits land there). This workspace keeps pygls' behaviour otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pygls.workspace import TextDocument, Workspace

from server.source_scan import split_lines


class LineFeedTextDocument(TextDocument):
    """A ``TextDocument`` whose ``lines`` break at ``\\n`` only."""

    @property
    def lines(self) -> Sequence[str]:
        parts = split_lines(self.source)
        return tuple(parts if parts[-1] else parts[:-1])


class LineFeedWorkspace(Workspace):
    """A ``Workspace`` that creates :class:`LineFeedTextDocument` documents."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LineFeedTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )


def use_line_feed_documents(workspace: Any) -> None:
    """Make ``workspace`` (created by pygls at ``initialize``) create LSP-counted documents."""
    if isinstance(workspace, Workspace) and not isinstance(workspace, LineFeedWorkspace):
        workspace.__class__ = LineFeedWorkspace
