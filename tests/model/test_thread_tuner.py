"""The decode loop's thread-count tuner, driven with scripted step times (no torch needed)."""

from __future__ import annotations

from model.engine.threads import ThreadTuner


def drive(tuner: ThreadTuner, seconds_for: dict[int, float], steps: int, log: list[int]) -> None:
    """Run ``steps`` decode steps of 4 rows whose duration depends on the thread count set."""
    for _ in range(steps):
        tuner.before_step(4)
        tuner.after_step(4, seconds_for[log[-1]])


def test_switches_to_one_thread_when_the_cores_get_busy_and_back_when_they_are_free() -> None:
    log: list[int] = []
    tuner = ThreadTuner((2, 1), set_threads=log.append)
    assert log == [2]
    busy = {2: 0.300, 1: 0.040}  # other processes on the cores: OpenMP threads wait
    drive(tuner, busy, 4, log)
    assert tuner.current == 1 and log[-1] == 1
    quiet = {2: 0.011, 1: 0.017}
    drive(tuner, quiet, 200, log)
    assert tuner.current == 2 and log[-1] == 2 and tuner.switches == 2


def test_losing_probes_are_spaced_out() -> None:
    log: list[int] = []
    tuner = ThreadTuner((2, 1), set_threads=log.append, max_interval=64)
    drive(tuner, {2: 0.011, 1: 0.017}, 1000, log)
    assert tuner.current == 2 and tuner.switches == 0
    probes = log.count(1)
    # Intervals 2, 4, 8, ..., 64, then every 64 steps: about 20 slow steps in 1000.
    assert 15 <= probes <= 25
    assert log[-1] == 2


def test_a_probe_needs_a_comparable_step_before_it() -> None:
    log: list[int] = []
    tuner = ThreadTuner((2, 1), set_threads=log.append)
    for rows in (4, 3, 2, 1):  # the batch shrinks every step: no like-for-like comparison
        tuner.before_step(rows)
        tuner.after_step(rows, 0.3)
    assert log == [2]
