"""Caps on a whole sandbox (memory summed over its processes, process count) via cgroups.

Modes, best first, detected once per process:

* ``v2``: a cgroup2 hierarchy with the memory and pids controllers: as root, under
  ``<mount>/docomplete``; as any user, under a delegated subtree named by
  ``DOCOMPLETE_SANDBOX_CGROUP`` (a directory we may write, with no processes of its own).
  Each sandbox gets ``memory.max``, ``memory.swap.max=0``, ``pids.max``; ``cgroup.kill`` ends it.
* ``v1``: the legacy memory + pids hierarchies (root only).
* ``systemd``: ``systemd-run --scope`` (``--user`` when not root) with ``MemoryMax``,
  ``MemorySwapMax`` and ``TasksMax``, when a systemd manager answers.
* ``none``: no aggregate cap; the harness then gives each untrusted child a small process
  budget (``RUN_TASKS_WITHOUT_CGROUPS``) so the per-process memory limit bounds the total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PIDS_PER_SANDBOX = 256
HARNESS_OVERHEAD_MB = 160
RUN_TASKS_WITHOUT_CGROUPS = 4  # processes / threads one program may add beyond its own
DELEGATED_ENV = "DOCOMPLETE_SANDBOX_CGROUP"


@dataclasses.dataclass(frozen=True)
class CgroupSupport:
    """How sandboxes are capped here: ``mode`` in v2 | v1 | systemd | none, and where."""

    mode: str
    detail: str
    parent: str = ""


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(" - ", 1)
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return Path(fields[0].split()[4])
    return None


def _controllers(directory: Path, name: str = "cgroup.controllers") -> set[str]:
    try:
        return set((directory / name).read_text().split())
    except OSError:
        return set()


def _enable_controllers(directory: Path) -> bool:
    """Let ``directory``'s children use memory + pids (its subtree_control)."""
    if {"memory", "pids"} <= _controllers(directory, "cgroup.subtree_control"):
        return True
    try:
        (directory / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return False
    return {"memory", "pids"} <= _controllers(directory, "cgroup.subtree_control")


def _v2_parent() -> tuple[Path | None, str]:
    delegated = os.environ.get(DELEGATED_ENV)
    if delegated:
        parent = Path(delegated)
        if not {"memory", "pids"} <= _controllers(parent):
            return None, f"{DELEGATED_ENV}={delegated} has no memory + pids controllers"
        if not os.access(parent, os.W_OK) or not _enable_controllers(parent):
            return None, f"{DELEGATED_ENV}={delegated} is not writable (or holds processes)"
        return parent, f"delegated subtree {parent}"
    mount = _cgroup2_mount()
    if mount is None or os.geteuid() != 0:
        return None, "no cgroup2 hierarchy we may manage"
    if not {"memory", "pids"} <= _controllers(mount):
        return None, f"cgroup2 at {mount} has no memory/pids controllers"
    parent = mount / "docomplete"
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        return None, f"cannot create {parent}: {exc}"
    if not (_enable_controllers(mount) and _enable_controllers(parent)):
        return None, f"cannot enable memory + pids under {parent}"
    return parent, str(parent)


def _systemd_run_works() -> bool:
    systemd_run = shutil.which("systemd-run")
    if systemd_run is None:
        return False
    argv = [systemd_run, "--scope", "--quiet", "--collect"]
    if os.geteuid() != 0:
        argv.insert(1, "--user")
    try:
        done = subprocess.run(
            [*argv, "-p", "TasksMax=16", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.lru_cache(maxsize=1)
def detect() -> CgroupSupport:
    """The best cgroup mode this process can use (checked once)."""
    parent, why_not_v2 = _v2_parent()
    if parent is not None:
        return CgroupSupport("v2", f"cgroup v2 at {why_not_v2}", str(parent))
    if os.geteuid() == 0 and all(
        os.access(CGROUP_ROOT / controller, os.W_OK) for controller in ("memory", "pids")
    ):
        return CgroupSupport("v1", f"cgroup v1 at {CGROUP_ROOT} ({why_not_v2})", str(CGROUP_ROOT))
    if _systemd_run_works():
        return CgroupSupport("systemd", "systemd-run --scope (MemoryMax, TasksMax)")
    return CgroupSupport(
        "none",
        f"none: {why_not_v2}; cgroup v1 needs root; no systemd manager "
        f"(each program may start at most {RUN_TASKS_WITHOUT_CGROUPS} more tasks)",
    )


class SandboxCgroup:
    """The cgroup(s) of one sandboxed harness; removed when closed."""

    _numbers = itertools.count(1)  # next() on it is atomic: sessions may start from threads

    def __init__(self, support: CgroupSupport, memory_mb: int) -> None:
        self.support = support
        self.limit = (memory_mb + HARNESS_OVERHEAD_MB) << 20
        self.dirs: list[Path] = []
        self.scope_dir: Path | None = None  # systemd: found once the process runs
        name = f"{os.getpid()}-{next(SandboxCgroup._numbers)}"
        try:
            if support.mode == "v1":
                _remove_stale([CGROUP_ROOT / c / "docomplete" for c in ("memory", "pids")])
                self._make_v1(name)
            elif support.mode == "v2":
                _remove_stale([Path(support.parent)])
                self._make_v2(Path(support.parent) / name)
        except OSError as exc:
            logger.debug("cgroups unavailable: %s", exc)
            self.close()
            self.dirs = []

    @property
    def active(self) -> bool:
        return bool(self.dirs) or self.support.mode == "systemd"

    def _make_v1(self, name: str) -> None:
        for controller, settings in (
            (
                "memory",
                [
                    ("memory.limit_in_bytes", self.limit),
                    ("memory.memsw.limit_in_bytes", self.limit),
                ],
            ),
            ("pids", [("pids.max", PIDS_PER_SANDBOX)]),
        ):
            path = CGROUP_ROOT / controller / "docomplete" / name
            path.mkdir(parents=True, exist_ok=True)
            self.dirs.append(path)
            for filename, value in settings:
                with contextlib.suppress(OSError):
                    (path / filename).write_text(str(value))

    def _make_v2(self, path: Path) -> None:
        path.mkdir()
        self.dirs.append(path)
        (path / "memory.max").write_text(str(self.limit))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
        (path / "pids.max").write_text(str(PIDS_PER_SANDBOX))

    def wrap(self, argv: list[str]) -> list[str]:
        """The command line, run in a capped systemd scope in ``systemd`` mode."""
        if self.support.mode != "systemd":
            return argv
        prefix = ["systemd-run", "--scope", "--quiet", "--collect"]
        if os.geteuid() != 0:
            prefix.insert(1, "--user")
        for setting in (
            f"MemoryMax={self.limit}",
            "MemorySwapMax=0",
            f"TasksMax={PIDS_PER_SANDBOX}",
        ):
            prefix += ["-p", setting]
        return [*prefix, "--", *argv]

    def join(self) -> None:
        """preexec step (before dropping root): move the new process into the cgroups."""
        for path in self.dirs:
            try:
                with open(path / "cgroup.procs", "w") as procs:
                    procs.write(str(os.getpid()))
            except OSError:
                pass  # rlimits still bound this sandbox; cgroups are the extra layer

    def found_scope(self, pid: int) -> None:
        """systemd mode: remember the scope that ``pid`` (the sandbox) runs in."""
        mount = _cgroup2_mount()
        if self.support.mode != "systemd" or mount is None:
            return
        with contextlib.suppress(OSError, IndexError):
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    self.scope_dir = mount / line[3:].lstrip("/")

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this sandbox so far."""
        if self.support.mode == "v1":
            for path in self.dirs:
                if path.parent.parent.name == "memory":
                    return _field(path / "memory.oom_control", "oom_kill")
            return 0
        directory = self.dirs[0] if self.dirs else self.scope_dir
        return _field(directory / "memory.events", "oom_kill") if directory else 0

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the cgroups (e.g. a child that outlived its harness)."""
        for path in self.dirs:
            if self.support.mode == "v2":
                with contextlib.suppress(OSError):
                    (path / "cgroup.kill").write_text("1")
                    continue
            try:
                pids = (path / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)

    def try_remove(self) -> bool:
        self.kill_all()
        remaining = []
        for path in self.dirs:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                remaining.append(path)
        self.dirs = remaining
        return not remaining

    def close(self) -> None:
        for _ in range(50):
            if self.try_remove():
                return
            time.sleep(0.01)


def _field(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


_removed_stale: set[Path] = set()


def _remove_stale(parents: list[Path]) -> None:
    """Once per parent: drop empty cgroups left by runners that were killed (no atexit)."""
    for parent in parents:
        if parent in _removed_stale:
            continue
        _removed_stale.add(parent)
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            owner = entry.name.split("-", 1)[0]
            if not entry.is_dir() or not owner.isdigit() or Path(f"/proc/{owner}").exists():
                continue
            with contextlib.suppress(OSError):
                entry.rmdir()  # fails (and is kept) while any process is still inside
