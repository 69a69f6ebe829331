"""``docomplete ab report`` on synthetic telemetry databases with known differences, and on
files it must refuse with one clear line (empty, foreign, older schema, damaged)."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.ab_report import ArmSummary, build_report, compare_arms, parse_since
from evalkit.ab_stats import percentile, trials_needed, two_proportion_test, wilson_interval
from evalkit.telemetry_db import (
    append_json_lines,
    insert_events,
    open_for_writing,
    read_events,
)
from model.cli_support import CommandError
from server.cli import main

NOW = time.time()


def arm_events(
    arm: str,
    index: int,
    *,
    shown: int,
    accepted: int,
    retained: int = 0,
    start: float = NOW - 3600,
    latency_ms: float = 100.0,
) -> list[dict[str, Any]]:
    """``shown`` requests of one arm, the first ``accepted`` of them accepted (the first
    ``retained`` of those still there after 30 s), the rest dismissed."""
    events: list[dict[str, Any]] = []
    for number in range(shown):
        request = f"{arm}-{number}"
        at = start + number
        common = {"requestId": request, "arm": arm, "uri": f"file:///{arm}.py"}
        events.append(
            {
                "event": "completion",
                "time": at,
                **common,
                "latencyMs": latency_ms + number,
                "candidates": 2,
                "doctest": "passed",
                "armIndex": index,
            }
        )
        verdict = "passed" if number % 2 == 0 else "failed"
        events.append(
            {"event": "shown", "time": at + 0.1, "index": 0, "doctest": verdict, **common}
        )
        if number < accepted:
            events.append({"event": "accepted", "time": at + 0.5, "index": 0, **common})
            events.append(
                {
                    "event": "retained",
                    "time": at + 30.5,
                    "delayS": 30.0,
                    "retained": number < retained,
                    "keptFraction": 1.0 if number < retained else 0.0,
                    **common,
                }
            )
        else:
            events.append({"event": "dismissed", "time": at + 0.7, "reason": "timeout", **common})
    return events


def write_db(path: Path, events: list[dict[str, Any]], session: str = "s1") -> Path:
    connection = open_for_writing(path)
    insert_events(connection, session, events)
    connection.close()
    return path


def test_a_real_difference_names_the_better_arm(tmp_path: Path, capsys):
    database = write_db(
        tmp_path / "t.sqlite3",
        arm_events("cold", 0, shown=400, accepted=140, retained=100)
        + arm_events("hot", 1, shown=400, accepted=80, retained=40, latency_ms=300.0),
    )
    plot, figures = tmp_path / "ab.png", tmp_path / "ab.json"
    code = main(
        ["ab", "report", "--telemetry", str(database), "--plot", str(plot), "--json", str(figures)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict: arm cold is better" in out
    assert "35.0 % [30.5, 39.8]" in out  # 140/400 with its Wilson interval
    assert "71.4 % (100/140)" in out  # retained after 30 s
    assert plot.read_bytes().startswith(b"\x89PNG")
    data = json.loads(figures.read_text())
    cold, hot = data["arms"]
    assert (cold["arm"], cold["shown"], cold["accepted"], cold["dismissed"]) == (
        "cold",
        400,
        140,
        260,
    )
    assert hot["retention"] == {"30s": [40, 80]}
    assert hot["latency_p50_ms"] == pytest.approx(499.5)
    assert cold["doctest_passed"] == 200 and cold["doctest_run"] == 400
    assert data["comparisons"][0]["p_value"] < 0.001


def test_equal_arms_give_no_winner(tmp_path: Path):
    database = write_db(
        tmp_path / "t.sqlite3",
        arm_events("a", 0, shown=300, accepted=75) + arm_events("b", 1, shown=300, accepted=75),
    )
    report = build_report(database)
    assert report.verdict == "no significant difference at α = 0.05"
    assert report.comparisons[0].needed_per_arm is None


def test_false_winners_stay_near_alpha_across_seeds():
    false_winners = 0
    trials = 400
    for seed in range(trials):
        rng = random.Random(seed)
        arms = []
        for name in ("a", "b"):
            accepted = sum(rng.random() < 0.3 for _ in range(200))
            arms.append(ArmSummary(name, shown=200, accepted=accepted))
        false_winners += compare_arms(arms)[0].verdict.endswith("is better")
    assert false_winners / trials <= 0.08  # α = 0.05 plus sampling noise over 400 seeds


def test_three_arms_are_each_compared_with_the_first_with_a_stricter_alpha(tmp_path: Path):
    database = write_db(
        tmp_path / "t.sqlite3",
        arm_events("base", 0, shown=300, accepted=60)
        + arm_events("same", 1, shown=300, accepted=62)
        + arm_events("better", 2, shown=300, accepted=120),
    )
    report = build_report(database)
    assert [arm.arm for arm in report.arms] == ["base", "same", "better"]
    verdicts = {c.other: c.verdict for c in report.comparisons}
    assert verdicts == {
        "same": "no significant difference at α = 0.05",
        "better": "arm better is better",
    }
    assert all(c.alpha == pytest.approx(0.025) for c in report.comparisons)


def test_since_keeps_only_recent_events(tmp_path: Path):
    old = arm_events("a", 0, shown=50, accepted=10, start=NOW - 10 * 86400)
    new = arm_events("a", 0, shown=20, accepted=5, start=NOW - 3600)
    for event in new:
        event["requestId"] = "new-" + event["requestId"]
    database = write_db(tmp_path / "t.sqlite3", old + new)
    assert build_report(database).arms[0].shown == 70
    recent = build_report(database, since="2d")
    assert (recent.arms[0].shown, recent.arms[0].accepted) == (20, 5)
    assert "only arm a has data" in recent.verdict
    with pytest.raises(CommandError, match="no completion events since"):
        build_report(database, since="1m")


def test_request_ids_restarting_in_a_new_session_are_kept_apart(tmp_path: Path):
    database = tmp_path / "t.sqlite3"
    write_db(database, arm_events("a", 0, shown=10, accepted=10), session="first")
    write_db(database, arm_events("a", 0, shown=10, accepted=0), session="second")
    report = build_report(database)
    assert (report.arms[0].shown, report.arms[0].accepted, report.sessions) == (20, 10, 2)


def test_several_databases_are_pooled_and_a_repeated_one_counts_once(tmp_path: Path):
    alice = write_db(tmp_path / "alice.sqlite3", arm_events("a", 0, shown=10, accepted=3), "s-a")
    bob = write_db(tmp_path / "bob.sqlite3", arm_events("a", 0, shown=10, accepted=7), "s-b")
    copy = tmp_path / "bob-copy.sqlite3"
    copy.write_bytes(bob.read_bytes())
    report = build_report([alice, bob, copy])
    assert (report.arms[0].shown, report.arms[0].accepted, report.sessions) == (20, 10, 2)


def test_parse_since_forms():
    assert parse_since("90s", now=1000.0) == 910.0
    assert parse_since("2w", now=0.0) == -14 * 86400
    assert parse_since("2025-01-31T00:00:00+00:00") == 1738281600.0
    with pytest.raises(CommandError, match="--since 'yesterday'"):
        parse_since("yesterday")


def test_statistics_match_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    z, p = two_proportion_test(60, 100, 40, 100)
    assert z == pytest.approx(2.828, abs=1e-3) and p == pytest.approx(0.00468, abs=1e-4)
    assert trials_needed(0.2, 0.3) == 294  # the usual figure for 20 % vs 30 % at 80 % power
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5 and percentile([], 0.5) is None


# -- files the report must refuse in one line -----------------------------------------------------


def report_error(path: Path, capsys) -> str:
    assert main(["ab", "report", "--telemetry", str(path)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("docomplete: error: ")
    return lines[0]


def test_empty_and_foreign_files_get_one_clear_line(tmp_path: Path, capsys):
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    assert "is empty" in report_error(empty, capsys)
    lines = tmp_path / "telemetry.jsonl"
    lines.write_text('{"not": "ours"}\n')
    assert "holds no docomplete telemetry events" in report_error(lines, capsys)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not an SQLite file" in report_error(text, capsys)
    foreign = tmp_path / "other.sqlite3"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE things (x)")
    assert "not a docomplete telemetry database" in report_error(foreign, capsys)
    assert "no such file" in report_error(tmp_path / "missing.sqlite3", capsys)
    fresh = tmp_path / "fresh.sqlite3"
    open_for_writing(fresh).close()
    assert "no completion events" in report_error(fresh, capsys)


def test_other_schema_versions_are_named(tmp_path: Path, capsys):
    database = write_db(tmp_path / "t.sqlite3", arm_events("a", 0, shown=3, accepted=1))
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE schema_version SET version = 0")
    assert "older docomplete (telemetry schema 0" in report_error(database, capsys)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    assert "newer docomplete (telemetry schema 99" in report_error(database, capsys)


def test_a_damaged_copy_is_refused(tmp_path: Path, capsys):
    database = write_db(tmp_path / "t.sqlite3", arm_events("a", 0, shown=300, accepted=30))
    data = database.read_bytes()
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(data[:100] + b"\xff" * 4096 + data[4196 : len(data) // 2])
    assert "is damaged or incomplete" in report_error(damaged, capsys)


def test_rows_cut_short_are_skipped(tmp_path: Path):
    database = write_db(tmp_path / "t.sqlite3", arm_events("a", 0, shown=10, accepted=4))
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO events (time, session, event) VALUES (?, 's1', 'accepted')", (NOW,)
        )
        connection.execute(
            "INSERT INTO events (time, session, event, request_id, details) "
            "VALUES (?, 's1', 'shown', 'a-0', '{not json')",
            (NOW,),
        )
    report = build_report(database)
    assert (report.arms[0].shown, report.arms[0].accepted) == (10, 4)


def test_json_lines_files_are_read_too_and_a_cut_line_is_skipped(tmp_path: Path):
    path = tmp_path / "telemetry.jsonl"
    append_json_lines(path, "s1", arm_events("a", 0, shown=30, accepted=10))
    append_json_lines(path, "s1", arm_events("b", 1, shown=30, accepted=20))
    with path.open("a") as handle:
        handle.write('{"event": "accepted", "time": 1, "requestId": "b-2')  # crash mid-line
    report = build_report(path)
    assert [(arm.arm, arm.shown, arm.accepted) for arm in report.arms] == [
        ("a", 30, 10),
        ("b", 30, 20),
    ]
    assert report.arms[1].retention == {30.0: [0, 20]}


_CRASHING_WRITER = """
import os, sys
from pathlib import Path
from evalkit.telemetry_db import insert_events, open_for_writing
path = Path(sys.argv[1])
connection = open_for_writing(path)
events = [{"event": "completion", "time": 1.0 + i, "requestId": f"r{i}", "arm": "a"}
          for i in range(5)]
insert_events(connection, "s", events)
connection.execute("BEGIN")
connection.execute(
    "INSERT INTO events (time, session, event, request_id) VALUES (9, 's', 'completion', 'x')"
)
os._exit(1)  # killed mid-transaction
"""


def test_a_crash_mid_write_loses_only_the_unfinished_transaction(tmp_path: Path):
    database = tmp_path / "t.sqlite3"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", _CRASHING_WRITER, str(database)], cwd=root, check=False)
    events = read_events(database)
    assert [event.request_id for event in events] == ["r0", "r1", "r2", "r3", "r4"]
    assert build_report(database).arms[0].requests == 5
