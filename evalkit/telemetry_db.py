"""The telemetry database: its SQLite schema, the writer's connection, and the reader's checks.

The language server writes editor events here (one row per event); ``docomplete ab report``
reads them back. Both sides import this module so the schema has one definition. Stdlib only.
Nothing in it sends data anywhere: the file stays on the user's machine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.cli_support import CommandError

#: Bumped whenever a column changes meaning; the reader refuses other versions by name.
SCHEMA_VERSION = 1
APPLICATION = "docomplete"

EVENT_KINDS = ("completion", "shown", "accepted", "partial", "dismissed", "retained")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    application TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,         -- unix seconds
    session TEXT NOT NULL,      -- one id per server process
    event TEXT NOT NULL,        -- completion | shown | accepted | partial | dismissed | retained
    request_id TEXT,
    uri TEXT,
    arm TEXT,                   -- NULL when no abArms are set
    candidate_index INTEGER,    -- 0-based rank of the candidate shown / accepted
    latency_ms REAL,            -- completion: request to ranked candidates
    candidates INTEGER,         -- completion: candidates offered
    doctest TEXT,               -- verdict of that candidate (completion: of the best one)
    accepted_chars INTEGER,     -- partial: characters the user took
    delay_s REAL,               -- retained: seconds after the accept
    retained INTEGER,           -- retained: 1 when every accepted line is still there, else 0
    kept_fraction REAL,         -- retained: share of the accepted lines still there
    details TEXT                -- JSON object: everything else about the event
);
CREATE INDEX IF NOT EXISTS events_by_request ON events (request_id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
"""

#: In-memory event keys (camelCase, as ``docomplete/telemetry`` returns them) → columns.
_COLUMNS = {
    "requestId": "request_id",
    "uri": "uri",
    "arm": "arm",
    "index": "candidate_index",
    "latencyMs": "latency_ms",
    "candidates": "candidates",
    "doctest": "doctest",
    "acceptedChars": "accepted_chars",
    "delayS": "delay_s",
    "retained": "retained",
    "keptFraction": "kept_fraction",
}
_INSERT = (
    "INSERT INTO events (time, session, event, "
    + ", ".join(_COLUMNS.values())
    + ", details) VALUES ("
    + ", ".join("?" * (len(_COLUMNS) + 4))
    + ")"
)


def default_telemetry_path() -> Path:
    """``$XDG_STATE_HOME/docomplete/telemetry.sqlite3`` (``~/.local/state/…`` when unset)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative value.
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "docomplete" / "telemetry.sqlite3"


def open_for_writing(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database for appending events; WAL, one writer thread.

    WAL with ``synchronous=NORMAL`` never corrupts the file on a crash; at worst the last
    transactions before a power cut are lost. Raises ``sqlite3.Error`` or ``OSError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        with connection:
            connection.executescript(_SCHEMA)
            row = connection.execute("SELECT version FROM schema_version LIMIT 1").fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (SCHEMA_VERSION, APPLICATION, time.time()),
                )
            elif row[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"{path} has telemetry schema {row[0]}, this docomplete writes "
                    f"{SCHEMA_VERSION}; point telemetryFile at a new file"
                )
    except BaseException:
        connection.close()
        raise
    return connection


def event_row(session: str, entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """One in-memory event (``{"event", "time", **fields}``) as an ``events`` row."""
    columns = [entry.get(key) for key in _COLUMNS]
    known = {"event", "time", *_COLUMNS}
    details = {key: value for key, value in entry.items() if key not in known}
    columns = [_plain_value(value) for value in columns]
    return (
        float(entry.get("time") or time.time()),
        session,
        str(entry["event"]),
        *columns,
        json.dumps(details, sort_keys=True, default=str) if details else None,
    )


def _plain_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, int | float | str):
        return value
    return json.dumps(value, default=str)


def insert_events(
    connection: sqlite3.Connection, session: str, entries: Sequence[Mapping[str, Any]]
) -> None:
    """Append events in one transaction (all or none of them land)."""
    with connection:
        connection.executemany(_INSERT, [event_row(session, entry) for entry in entries])


def is_json_lines(path: Path) -> bool:
    """``telemetryFile`` paths ending in ``.jsonl`` get JSON lines instead of SQLite."""
    return path.suffix.lower() == ".jsonl"


def append_json_lines(path: Path, session: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """The plain-text alternative: one JSON object per event, appended (for your own scripts).

    A crash can cut the last line short; the reader skips such a line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps({**entry, "session": session}, sort_keys=True, default=str))
            handle.write("\n")


# -- reading ------------------------------------------------------------------------------------


@dataclass
class Event:
    """One row as the report sees it."""

    time: float
    session: str
    event: str
    request_id: str | None
    uri: str | None
    arm: str | None
    candidate_index: int | None
    latency_ms: float | None
    candidates: int | None
    doctest: str | None
    accepted_chars: int | None
    delay_s: float | None
    retained: int | None
    kept_fraction: float | None
    details: dict[str, Any] = field(default_factory=dict)


def _refuse(path: Path, why: str) -> CommandError:
    return CommandError(f"{path}: {why}")


def read_events(path: Path, since: float | None = None) -> list[Event]:
    """Every event at or after ``since`` (unix seconds), oldest first.

    A missing, empty, foreign, older-schema or damaged file raises one ``CommandError`` naming
    what is wrong; rows cut short by a crash (missing fields) are kept with what they have.
    """
    if not path.exists():
        where = (
            "the server creates it at its first completion"
            if path == default_telemetry_path()
            else f"the server writes to its telemetryFile setting (default {default_telemetry_path()})"
        )
        raise _refuse(path, f"no such file; {where}")
    if path.is_dir():
        raise _refuse(path, "is a folder; give the telemetry database file")
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head:
        raise _refuse(path, "is empty: no telemetry has been written to it yet")
    if head != b"SQLite format 3\x00":
        if head.lstrip().startswith(b"{"):
            return _read_json_lines(path, since)
        raise _refuse(path, "is not a docomplete telemetry database (not an SQLite file)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _refuse(path, f"cannot be opened ({exc})") from None
    try:
        return _read(connection, path, since)
    except sqlite3.DatabaseError as exc:
        raise _refuse(
            path, f"is damaged or incomplete ({exc}); copy it again or point at the live file"
        ) from None
    finally:
        connection.close()


def _read(connection: sqlite3.Connection, path: Path, since: float | None) -> list[Event]:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    if "schema_version" not in tables or "events" not in tables:
        raise _refuse(path, "is an SQLite file but not a docomplete telemetry database")
    row = connection.execute("SELECT version, application FROM schema_version").fetchone()
    if row is None or row[1] != APPLICATION:
        raise _refuse(path, "is an SQLite file but not a docomplete telemetry database")
    version = row[0]
    if version != SCHEMA_VERSION:
        age = "an older" if isinstance(version, int) and version < SCHEMA_VERSION else "a newer"
        raise _refuse(
            path,
            f"was written by {age} docomplete (telemetry schema {version}, this one reads "
            f"{SCHEMA_VERSION}); use the matching docomplete version to report on it",
        )
    columns = ["time", "session", "event", *_COLUMNS.values(), "details"]
    query = f"SELECT {', '.join(columns)} FROM events"
    parameters: tuple[Any, ...] = ()
    if since is not None:
        query += " WHERE time >= ?"
        parameters = (since,)
    events: list[Event] = []
    for values in connection.execute(query + " ORDER BY time, id", parameters):
        record = dict(zip(columns, values, strict=True))
        if record["event"] is None or record["time"] is None:
            continue  # nothing to count a row by
        details = _details(record.pop("details"))
        events.append(Event(**record, details=details))
    return events


def _read_json_lines(path: Path, since: float | None) -> list[Event]:
    events: list[Event] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if not isinstance(entry, dict):
            continue
        moment, kind = entry.get("time"), entry.get("event")
        if not isinstance(moment, int | float) or kind not in EVENT_KINDS:
            continue
        if since is not None and moment < since:
            continue
        fields = {column: entry.get(key) for key, column in _COLUMNS.items()}
        known = {"event", "time", "session", *_COLUMNS}
        events.append(
            Event(
                time=float(moment),
                session=str(entry.get("session", "")),
                event=kind,
                **fields,
                details={key: value for key, value in entry.items() if key not in known},
            )
        )
    if not events and since is None:
        raise _refuse(path, "holds no docomplete telemetry events (JSON lines)")
    events.sort(key=lambda event: event.time)
    return events


def _details(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, str):
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
