"""Layer detection details that need no sandbox run: what gets exposed, how cgroups are set.

The cgroup v2 test uses a plain directory standing in for a delegated cgroup2 subtree (this
machine's cgroup2 tree has no memory/pids controllers; real v2 kills and OOM accounting
cannot run here): it checks which limits are written where, and that a run joins them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalkit import sandbox_cgroups, sandbox_layers


def test_an_interpreter_in_a_home_dir_exposes_its_files_not_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stdlib = home / ".local/python/lib/python3.11"
    stdlib.mkdir(parents=True)
    (home / "bin").mkdir()
    executable = home / "bin/python3"
    executable.write_text("")
    (home / ".ssh").mkdir()
    report = {
        "executable": str(executable),
        "dirs": [str(stdlib), str(stdlib / "site-packages"), "/usr/lib/python3/dist-packages"],
        "library": None,
    }
    paths = sandbox_layers.interpreter_paths(report)
    assert paths == (str(stdlib), str(executable))  # site-packages is inside the stdlib dir
    argv = sandbox_layers.bwrap_argv("/usr/bin/bwrap", paths)
    bound = {argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind"}
    assert str(home) not in bound and str(home / "bin") not in bound
    assert str(executable) in bound and str(stdlib) in bound


def test_a_delegated_cgroup2_subtree_gets_memory_and_pids_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "delegated"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpu memory pids\n")
    (parent / "cgroup.subtree_control").write_text("memory pids\n")
    monkeypatch.setenv(sandbox_cgroups.DELEGATED_ENV, str(parent))
    sandbox_cgroups.detect.cache_clear()
    try:
        support = sandbox_cgroups.detect()
    finally:
        sandbox_cgroups.detect.cache_clear()
    assert support.mode == "v2" and support.parent == str(parent)

    group = sandbox_cgroups.SandboxCgroup(support, memory_mb=256)
    assert group.active and len(group.dirs) == 1
    directory = group.dirs[0]
    limit = (256 + sandbox_cgroups.HARNESS_OVERHEAD_MB) << 20
    assert (directory / "memory.max").read_text() == str(limit)
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "pids.max").read_text() == str(sandbox_cgroups.PIDS_PER_SANDBOX)
    group.join()
    assert (directory / "cgroup.procs").read_text() == str(os.getpid())
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert group.oom_kills() == 2
    group.kill_all()
    assert (directory / "cgroup.kill").read_text() == "1"


def test_this_machine_uses_the_best_cgroup_mode_it_has() -> None:
    support = sandbox_cgroups.detect()
    assert support.mode in ("v2", "v1", "systemd", "none")
    if os.geteuid() == 0 and os.access("/sys/fs/cgroup/memory", os.W_OK):
        assert support.mode in ("v2", "v1")  # root with writable controllers is never "none"
