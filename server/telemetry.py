"""Telemetry: editor events into the local SQLite database, written on a background thread.

Events (completion, shown, accepted, partial, dismissed, retained) go to the ``telemetryFile``
database (default ``$XDG_STATE_HOME/docomplete/telemetry.sqlite3``; schema in
:mod:`evalkit.telemetry_db`; a path ending in ``.jsonl`` gets JSON lines instead) and to a small
in-memory ring that ``docomplete/telemetry`` returns. Nothing leaves the machine.
``docomplete ab report`` reads either file back.
"""

from __future__ import annotations

import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from evalkit.telemetry_db import (
    append_json_lines,
    default_telemetry_path,
    insert_events,
    is_json_lines,
    open_for_writing,
)

logger = logging.getLogger(__name__)

#: ``telemetryFile`` value that keeps events in memory only.
TELEMETRY_OFF = "off"

_BATCH = 200


def telemetry_path(setting: str | None) -> Path | None:
    """The database for a ``telemetryFile`` setting: unset → the state directory, "off" → none."""
    if setting is None:
        return default_telemetry_path()
    if setting.strip().lower() == TELEMETRY_OFF:
        return None
    return Path(setting).expanduser()


class TelemetryLog:
    """Records events; a writer thread appends them to the database so the event loop never
    waits on the disk. One ``session`` id per server process ties a session's rows together."""

    def __init__(self, path: Path | None = None, keep: int = 500) -> None:
        self.path = path
        self.session = secrets.token_hex(6)
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._queue: queue.SimpleQueue[tuple[Path, dict[str, Any]] | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._failed: set[Path] = set()

    def set_path(self, path: Path | None) -> None:
        """Later events go to ``path`` (``None``: memory only)."""
        self.path = path

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"event": event, "time": round(time.time(), 3), **fields}
        self.recent.append(entry)
        if self.path is not None:
            with self._idle:
                self._pending += 1
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._write_forever, name="docomplete-telemetry", daemon=True
                    )
                    self._thread.start()
            self._queue.put((self.path, entry))
        return entry

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every recorded event is on disk (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer thread."""
        self.flush(timeout)
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        self._thread = None

    # -- the writer thread ----------------------------------------------------------------------

    def _write_forever(self) -> None:
        connections: dict[Path, sqlite3.Connection] = {}
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < _BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(item)
                self._write(batch, connections)
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()
        finally:
            for connection in connections.values():
                connection.close()

    def _write(
        self, batch: list[tuple[Path, dict[str, Any]]], connections: dict[Path, sqlite3.Connection]
    ) -> None:
        by_path: dict[Path, list[dict[str, Any]]] = {}
        for path, entry in batch:
            by_path.setdefault(path, []).append(entry)
        for path, entries in by_path.items():
            try:
                if is_json_lines(path):
                    append_json_lines(path, self.session, entries)
                    continue
                connection = connections.get(path)
                if connection is None:
                    connection = connections[path] = open_for_writing(path)
                insert_events(connection, self.session, entries)
                self._failed.discard(path)
            except Exception as exc:  # telemetry must never take the server (or a flush) down
                stale = connections.pop(path, None)
                if stale is not None:
                    stale.close()
                if path not in self._failed:  # once per failing file, not once per event
                    self._failed.add(path)
                    logger.warning("cannot write telemetry to %s: %s", path, exc)
