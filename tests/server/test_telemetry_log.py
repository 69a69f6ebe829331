"""The telemetry writer: events reach the database off the caller's thread, in order, and a
file that cannot be written costs one warning, never a failed request."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from evalkit.telemetry_db import read_events
from server.telemetry import TelemetryLog, telemetry_path


def test_events_reach_the_database_in_order_with_the_session(tmp_path: Path):
    database = tmp_path / "deep" / "t.sqlite3"
    log = TelemetryLog(database)
    for number in range(300):
        log.record("completion", requestId=f"r{number}", arm="a", latencyMs=float(number))
    assert log.flush()
    log.close()
    events = read_events(database)
    assert [e.request_id for e in events] == [f"r{n}" for n in range(300)]
    assert {e.session for e in events} == {log.session}
    assert events[-1].latency_ms == 299.0


def test_writes_happen_on_the_writer_thread(tmp_path: Path, monkeypatch):
    import server.telemetry as telemetry

    threads: list[str] = []
    real = telemetry.insert_events

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(telemetry, "insert_events", spy)
    log = TelemetryLog(tmp_path / "t.sqlite3")
    log.record("shown", requestId="r1")
    assert log.flush()
    log.close()
    assert threads == ["docomplete-telemetry"]


def test_an_unwritable_file_warns_once_and_keeps_events_in_memory(tmp_path: Path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    log = TelemetryLog(blocker / "t.sqlite3")
    with caplog.at_level(logging.WARNING, logger="server.telemetry"):
        for number in range(5):
            log.record("completion", requestId=f"r{number}")
        assert log.flush(timeout=5)
    log.close()
    assert len(log.recent) == 5
    warnings = [r for r in caplog.records if "cannot write telemetry" in r.getMessage()]
    assert len(warnings) == 1


def test_telemetry_file_setting_resolves_default_off_and_paths(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert telemetry_path(None) == tmp_path / "docomplete" / "telemetry.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert telemetry_path(None) == Path.home() / ".local/state/docomplete/telemetry.sqlite3"
    assert telemetry_path("off") is None
    assert telemetry_path("~/t.jsonl") == Path.home() / "t.jsonl"
