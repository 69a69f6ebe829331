"""Run untrusted generated Python in layers of isolation; shared by evalkit and the doctest filter.

Layers (``docomplete sandbox check`` prints which are active here):

* **bubblewrap** (main layer): every namespace unshared (no network, own pid namespace with the
  harness as pid 1), only ``/usr`` (and the interpreter's prefix) bound read-only, size-capped
  tmpfs scratch dirs, run as uid 65534 (dropped *before* bwrap, so the kernel sees nobody);
* **Landlock** in every program's process when the kernel has it: read-only filesystem except
  the scratch dirs, no TCP bind/connect, no signals or abstract sockets outside its own domain;
* **rlimits** always: address space, CPU, file size, open files, processes, no core files;
* **process-tree kill** after every program (``kill(-1)`` as the namespace's pid 1, or a child
  subreaper in the fallback) and **output caps** enforced by the harness itself;
* **cgroups** (v1 memory + pids) per sandboxed process when ``/sys/fs/cgroup`` is writable.

Without bubblewrap (or without user namespaces) a weaker fallback runs the same harness with
uid drop + Landlock + rlimits + subreaper + cgroups, and says so once in the log.

Throughput comes from a warm fork server: one sandboxed harness per worker serves many
programs, each in a fresh forked child with its own limits, killed with its whole tree before
the next starts; started sandboxes are kept idle for the next call. Timeouts do not count the
time a program waited for a CPU (``/proc/PID/schedstat``), so verdicts hold on a busy machine.

What this does NOT protect against: kernel exploits; code that searches its own memory for
the verdict nonce, or leaves threads / audit hooks / patched modules that tamper with the test
after the program returns (they can forge a "passed" for themselves, but stay contained);
reading the world-readable files under ``/usr``; and, in the fallback on a kernel without
Landlock, reading files readable by uid 65534, using the network and signalling other
processes of that uid.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit.sandbox_harness import FRAME_HEADER, STARVATION_CAP, WARM_MODULES

logger = logging.getLogger(__name__)

STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "output_limit")
SANDBOX_UID = 65534
DEFAULT_OUTPUT_LIMIT = 1 << 20
DEFAULT_TAIL_BYTES = 16 << 10
SCRATCH_MB = 64
FILE_SIZE_MB = 32
PIDS_PER_SANDBOX = 256
HARNESS_OVERHEAD_MB = 160
# Extra wall time the runner grants a harness beyond a job's own timeout before it gives up
# on the whole sandbox (start-up under load, cleanup, a slow machine).
WATCHDOG_GRACE_S = 10.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
PIPELINE_DEPTH = 2  # jobs sent ahead to each sandbox
PIPELINE_MAX_BYTES = 32 << 10  # larger jobs are sent only to an idle sandbox (pipes hold 64 KiB)
Isolation = str  # "auto" | "bwrap" | "fallback"


class SandboxError(RuntimeError):
    """The sandbox itself cannot run here (not a verdict about the program)."""


@dataclasses.dataclass
class ExecutionResult:
    """What happened to one program: a status from ``STATUSES`` plus output tails."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- layer detection


@dataclasses.dataclass(frozen=True)
class SandboxLayers:
    """Which isolation layers this machine supports (detected once per process)."""

    python: str
    bwrap: str | None
    bwrap_error: str | None
    drop_uid: bool
    cgroups: bool
    extra_ro_binds: tuple[str, ...]
    landlock_abi: int

    def describe(self, isolation: Isolation = "auto") -> list[tuple[str, bool, str]]:
        mode = resolve_isolation(isolation, self)
        if mode == "bwrap":
            bwrap_detail = self.bwrap or ""
        elif self.bwrap is not None:
            bwrap_detail = "available, not used (fallback requested)"
        else:
            bwrap_detail = self.bwrap_error or "unavailable"
        rows = [
            ("interpreter", True, self.python),
            (
                "bubblewrap (namespaces, no network, read-only /usr, tmpfs scratch)",
                mode == "bwrap",
                bwrap_detail,
            ),
            (
                "unprivileged uid",
                self.drop_uid,
                f"uid {SANDBOX_UID}" if self.drop_uid else f"already uid {os.getuid()}",
            ),
            ("rlimits (AS, CPU, FSIZE, NOFILE, NPROC, CORE=0)", True, "per program"),
            (
                "Landlock (read-only fs but scratch, no TCP, no signals out)",
                self.landlock_abi > 0,
                f"ABI {self.landlock_abi}" if self.landlock_abi else "not supported by the kernel",
            ),
            (
                "process-tree kill",
                True,
                "kill(-1) as pid 1 of the sandbox" if mode == "bwrap" else "child subreaper",
            ),
            (
                "cgroups v1 (memory + pids per sandbox)",
                self.cgroups,
                str(CGROUP_ROOT) if self.cgroups else "not writable",
            ),
            (
                "fallback (weaker isolation)",
                mode == "fallback",
                "no namespaces: uid drop + Landlock + rlimits + subreaper",
            ),
        ]
        return rows


def _as_sandbox_user() -> None:
    """preexec step: drop root to the unprivileged sandbox uid (NPROC is not enforced on root)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(SANDBOX_UID)
        os.setuid(SANDBOX_UID)


def _probe(argv: list[str], timeout: float = 10.0) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            argv,
            preexec_fn=_as_sandbox_user,
            env=_scrubbed_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    detail = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    return proc.returncode == 0, detail


def _scrubbed_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


def _interpreter_candidates() -> list[str]:
    found = []
    override = os.environ.get("DOCOMPLETE_SANDBOX_PYTHON")
    if override:
        found.append(override)
    found.append(os.path.realpath(sys.executable))
    found.append(os.path.realpath(os.path.join(sys.base_exec_prefix, "bin", "python3")))
    for name in ("python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        path = shutil.which(name, path="/usr/bin:/usr/local/bin:/bin")
        if path:
            found.append(os.path.realpath(path))
    return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=1)
def detect_layers() -> SandboxLayers:
    """Find an interpreter the sandbox uid can run, and which layers work on this machine."""
    python = None
    prefixes: tuple[str, ...] = ()
    for candidate in _interpreter_candidates():
        ok, detail = _probe(
            [
                candidate,
                "-I",
                "-c",
                "import sys, json, ctypes; assert sys.version_info >= (3, 9); "
                "print(sys.base_prefix)",
            ]
        )
        if ok:
            python = candidate
            prefix = detail.splitlines()[-1]
            prefixes = tuple(
                p
                for p in {prefix, str(Path(candidate).parent.parent)}
                if p and not (p == "/usr" or p.startswith("/usr/"))
            )
            break
    if python is None:
        raise SandboxError(
            "no Python interpreter is runnable by the sandbox user (uid "
            f"{SANDBOX_UID}); install python3 from the system packages or set "
            "DOCOMPLETE_SANDBOX_PYTHON to a world-readable interpreter"
        )
    drop_uid = os.geteuid() == 0
    cgroups = drop_uid and all(
        os.access(CGROUP_ROOT / controller, os.W_OK) for controller in ("memory", "pids")
    )
    bwrap = shutil.which("bwrap")
    bwrap_error = None
    if bwrap is None:
        bwrap_error = "bwrap not installed (apt-get install bubblewrap)"
    else:
        ok, detail = _probe(
            [*_bwrap_argv(bwrap, prefixes, ["--chdir", "/"]), python, "-I", "-c", "pass"]
        )
        if not ok:
            bwrap = None
            bwrap_error = f"bwrap cannot create namespaces here: {detail[-300:]}"
    from evalkit.sandbox_harness import landlock_abi

    return SandboxLayers(python, bwrap, bwrap_error, drop_uid, cgroups, prefixes, landlock_abi())


def resolve_isolation(isolation: Isolation, layers: SandboxLayers) -> str:
    if isolation not in ("auto", "bwrap", "fallback"):
        raise ValueError(f"isolation must be auto, bwrap or fallback, not {isolation!r}")
    if isolation == "fallback":
        return "fallback"
    if layers.bwrap is None:
        if isolation == "bwrap":
            raise SandboxError(
                f"bubblewrap isolation requested but unavailable: {layers.bwrap_error}"
            )
        _warn_fallback_once(layers.bwrap_error or "")
        return "fallback"
    return "bwrap"


@functools.lru_cache(maxsize=1)
def _warn_fallback_once(reason: str) -> None:
    logger.warning(
        "sandbox: %s; running generated code with WEAKER isolation (uid drop + Landlock + "
        "rlimits + subreaper, no namespaces; without Landlock it can also read world-readable "
        "files and use the network). Install bubblewrap to fix this.",
        reason,
    )


def _bwrap_argv(bwrap: str, prefixes: Iterable[str], extra: Sequence[str] = ()) -> list[str]:
    """bwrap's command line up to (not including) the program it runs."""
    argv = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for name in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / name
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), str(target)]
    for prefix in prefixes:
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in ("/tmp", "/dev/shm"):
        argv += ["--size", str(SCRATCH_MB << 20), "--tmpfs", scratch]
    argv += list(extra)
    return argv


# ---------------------------------------------------------------- cgroups


class _Cgroups:
    """A memory + pids cgroup (v1) around one sandboxed harness; removed when closed."""

    _numbers = itertools.count(1)  # next() on it is atomic: sessions may start from threads

    def __init__(self, memory_mb: int) -> None:
        _remove_stale_cgroups()
        name = f"docomplete/{os.getpid()}-{next(_Cgroups._numbers)}"
        self.dirs: list[Path] = []
        limit = (memory_mb + HARNESS_OVERHEAD_MB) << 20
        try:
            for controller, settings in (
                (
                    "memory",
                    [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)],
                ),
                ("pids", [("pids.max", PIDS_PER_SANDBOX)]),
            ):
                path = CGROUP_ROOT / controller / name
                path.mkdir(parents=True, exist_ok=True)
                self.dirs.append(path)
                for filename, value in settings:
                    with contextlib.suppress(OSError):
                        (path / filename).write_text(str(value))
        except OSError as exc:
            logger.debug("cgroups unavailable: %s", exc)
            self.close()
            self.dirs = []

    def join(self) -> None:
        """preexec step (still root): move the new process into the cgroups."""
        for path in self.dirs:
            try:
                with open(path / "cgroup.procs", "w") as procs:
                    procs.write(str(os.getpid()))
            except OSError:
                pass  # rlimits still bound this sandbox; cgroups are the extra layer

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup so far."""
        for path in self.dirs:
            if path.parent.parent.name == "memory":
                try:
                    text = (path / "memory.oom_control").read_text()
                except OSError:
                    return 0
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value)
        return 0

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the cgroups (e.g. a child that outlived its harness)."""
        for path in self.dirs:
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
        for path in self.dirs:
            for _ in range(50):
                self.kill_all()
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


@functools.lru_cache(maxsize=1)
def _remove_stale_cgroups() -> None:
    """Once per process: drop empty cgroups left by runners that were killed (no atexit)."""
    for controller in ("memory", "pids"):
        parent = CGROUP_ROOT / controller / "docomplete"
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


@functools.lru_cache(maxsize=4)
def _nproc_limit(drop_uid: bool, cgroups: bool) -> int:
    """RLIMIT_NPROC for a sandbox. It counts every process of the uid machine-wide, so as
    uid 65534 a pids cgroup does the precise per-sandbox capping and NPROC is a backstop;
    without a uid drop it must leave room for the user's own processes and threads."""
    if drop_uid:
        return 4096 if cgroups else 512
    own_threads = 0
    uid = str(os.getuid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [uid]:
            own_threads += int(fields.get("Threads", "1").strip() or 1)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    wanted = own_threads + 512
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    return wanted


_retired_cgroups: list[_Cgroups] = []
_retired_lock = threading.Lock()


def _retire_cgroups(cgroups: _Cgroups) -> None:
    """Remove cgroups whose processes are gone; a dying pid namespace may keep one busy for a
    moment, so busy ones are retried on the next call (and at exit) instead of waited for."""
    with _retired_lock:
        _retired_cgroups.append(cgroups)
        for item in list(_retired_cgroups):
            if item.try_remove():
                _retired_cgroups.remove(item)


@atexit.register
def _remove_retired_cgroups() -> None:
    for item in _retired_cgroups:
        item.close()


# ---------------------------------------------------------------- one sandboxed harness


def _harness_source() -> str:
    return (Path(__file__).with_name("sandbox_harness.py")).read_text()


class _Session:
    """One sandboxed harness process (a warm fork server) and its cgroups / scratch dir."""

    def __init__(
        self,
        mode: str,
        layers: SandboxLayers,
        memory_mb: int,
        warm: bool,
        extra_ro_paths: Sequence[str] = (),
    ) -> None:
        self.mode = mode
        self.cgroups = _Cgroups(memory_mb) if layers.cgroups else None
        self.host_tmp: str | None = None
        source = _harness_source()
        python_argv = [layers.python, "-I", "-B", "-c", source]
        if mode == "bwrap":
            assert layers.bwrap is not None
            # After the scratch tmpfs mounts, so a directory under /tmp stays visible.
            binds = [arg for path in extra_ro_paths for arg in ("--ro-bind", path, path)]
            argv = _bwrap_argv(layers.bwrap, layers.extra_ro_binds, [*binds, "--chdir", "/tmp"])
            argv += python_argv
            scratch = ["/tmp", "/dev/shm"]
            cwd = "/"
        else:
            # On a tmpfs, scratch files are charged to the memory cgroup: a disk-filling
            # program then hits the memory limit instead of the host's disk.
            shm = "/dev/shm" if self.cgroups and os.path.isdir("/dev/shm") else None
            self.host_tmp = tempfile.mkdtemp(prefix="docomplete-sandbox-", dir=shm)
            if layers.drop_uid:
                os.chown(self.host_tmp, SANDBOX_UID, SANDBOX_UID)
            os.chmod(self.host_tmp, 0o700)
            argv = python_argv
            scratch = [self.host_tmp]
            cwd = self.host_tmp
        nproc = _nproc_limit(layers.drop_uid, bool(self.cgroups and self.cgroups.dirs))
        cgroups = self.cgroups

        def prepare_child() -> None:
            # Runs in the forked child before exec: cgroups need root, so join them first.
            if cgroups is not None and cgroups.dirs:
                cgroups.join()
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            _as_sandbox_user()

        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_scrubbed_env(),
            cwd=cwd,
            preexec_fn=prepare_child,
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdout_fd = self.proc.stdout.fileno()
        self.stderr_fd = self.proc.stderr.fileno()
        os.set_blocking(self.stdout_fd, False)
        os.set_blocking(self.stderr_fd, False)
        self.buffer = bytearray()
        self.errors = bytearray()
        self.ready = False
        self.alive = True
        self.oom_kills_before = 0
        self.send(
            {
                "scratch_dirs": scratch,
                "warm_modules": WARM_MODULES if warm else [],
                "landlock": layers.landlock_abi > 0,
            }
        )

    def send(self, payload: dict[str, Any]) -> None:
        self.send_bytes(json.dumps(payload).encode())

    def send_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(FRAME_HEADER.pack(len(body)) + body)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.alive = False

    def read_available(self) -> list[dict[str, Any]]:
        """Read what the harness has written; return complete frames; notice its death."""
        while True:
            try:
                chunk = os.read(self.stdout_fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                self.alive = False
                break
            self.buffer.extend(chunk)
        with contextlib.suppress(BlockingIOError, OSError):
            err = os.read(self.stderr_fd, 1 << 16)
            if len(self.errors) < (64 << 10):
                self.errors.extend(err)
        frames = []
        while len(self.buffer) >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(self.buffer)
            if len(self.buffer) < FRAME_HEADER.size + size:
                break
            body = bytes(self.buffer[FRAME_HEADER.size : FRAME_HEADER.size + size])
            del self.buffer[: FRAME_HEADER.size + size]
            frames.append(json.loads(body))
        return frames

    def close(self, graceful: bool = False) -> None:
        """Stop the sandbox: ask the harness to exit when ``graceful``, then kill the group.

        Killing bwrap takes the harness (``--die-with-parent``) and with it, as pid 1, the
        whole pid namespace; in the fallback the harness is bwrap's place in the group.
        """
        self.alive = False
        if graceful:
            # EOF tells the harness to kill its leftovers and exit; waiting for it lets the
            # CPU time of everything it ran be accounted to us (the bench reports it).
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.cgroups is not None:
            _retire_cgroups(self.cgroups)
        if self.host_tmp is not None:
            shutil.rmtree(self.host_tmp, ignore_errors=True)


# ---------------------------------------------------------------- the job driver


def _job_budget_s(job: dict[str, Any]) -> float:
    pieces = len(job.get("candidates", [None]))
    cap = float(job.get("starvation_cap", STARVATION_CAP))
    return pieces * (cap * float(job["timeout_s"]) + 1.0) + WATCHDOG_GRACE_S


def _lost_result(status: str, detail: str, duration: float) -> dict[str, Any]:
    return {
        "status": status,
        "exit_code": None,
        "stdout": "",
        "stderr": detail,
        "duration_s": duration,
        "records": [],
    }


def execute_jobs(
    jobs: Sequence[dict[str, Any]],
    *,
    workers: int | None = None,
    memory_mb: int = 512,
    isolation: Isolation = "auto",
    extra_ro_paths: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Run harness jobs over ``workers`` warm sandboxes; results in job order.

    ``extra_ro_paths`` are existing directories the programs may read (bound read-only into
    the sandbox; without bubblewrap, readable as far as file permissions let uid 65534 read),
    e.g. a project's virtualenv site-packages.

    A sandbox that dies or stalls (the program killed its harness, the OOM killer, a stuck
    kernel) costs only its current job, which gets "crashed" / "memory" / "timeout"; a fresh
    sandbox takes over the rest.
    """
    if not jobs:
        return []
    layers = detect_layers()
    mode = resolve_isolation(isolation, layers)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    # Pre-importing common modules pays off only when each sandbox serves several programs.
    warm = len(jobs) >= 4 * workers
    pending = deque(range(len(jobs)))
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    slots: list[_Session | None] = [None] * workers
    # Per sandbox: the jobs sent to it, in order; the first is running, the next one waits in
    # its stdin so the harness never idles while we handle a result.
    queues: list[deque[int]] = [deque() for _ in range(workers)]
    head_started = [0.0] * workers
    failures_in_a_row = 0
    selector = selectors.DefaultSelector()
    extra = tuple(
        dict.fromkeys(os.path.realpath(path) for path in extra_ro_paths if os.path.isdir(path))
    )
    pool_key = (mode, memory_mb, warm, layers, extra) if extra else (mode, memory_mb, warm, layers)

    def retire(slot: int, reusable: bool = False) -> None:
        session = slots[slot]
        if session is not None:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(session.stdout_fd)
            if reusable and session.ready and session.alive and session.proc.poll() is None:
                _idle_pool.put(pool_key, session)
            else:
                session.close()
        slots[slot] = None

    def start_head(slot: int) -> None:
        head_started[slot] = time.monotonic()
        session = slots[slot]
        if session is not None and session.cgroups is not None:
            session.oom_kills_before = session.cgroups.oom_kills()

    def requeue_waiting(slot: int) -> None:
        """Jobs sent but never started go back to the front of the line, in order."""
        for index in reversed(queues[slot]):
            pending.appendleft(index)
        queues[slot].clear()

    try:
        while pending or any(queues):
            for slot in range(workers):
                while pending and len(queues[slot]) < PIPELINE_DEPTH:
                    body = json.dumps(jobs[pending[0]]).encode()
                    if queues[slot] and len(body) > PIPELINE_MAX_BYTES:
                        # Queued behind a running job it would sit unread in the pipe; a big
                        # one could block us while the harness blocks writing its result.
                        break
                    if slots[slot] is None:
                        if failures_in_a_row >= 3:
                            raise SandboxError(
                                "the sandbox failed to start three times in a row: "
                                + _last_errors.get("text", "")[-500:]
                            )
                        started_session = _idle_pool.take(pool_key) or _Session(
                            mode, layers, memory_mb, warm, extra
                        )
                        slots[slot] = started_session
                        selector.register(started_session.stdout_fd, selectors.EVENT_READ, slot)
                    target = slots[slot]
                    assert target is not None
                    queues[slot].append(pending.popleft())
                    if len(queues[slot]) == 1:
                        start_head(slot)
                    target.send_bytes(body)
            busy = [slot for slot in range(workers) if queues[slot]]
            if not busy:
                break
            deadlines = {
                slot: head_started[slot] + _job_budget_s(jobs[queues[slot][0]]) for slot in busy
            }
            timeout = max(0.0, min(deadlines.values()) - time.monotonic())
            for key, _ in selector.select(timeout):
                slot = key.data
                session = slots[slot]
                if session is None:
                    continue
                for frame in session.read_available():
                    if "ready" in frame:
                        session.ready = True
                        failures_in_a_row = 0
                    elif queues[slot]:
                        results[queues[slot].popleft()] = frame
                        start_head(slot)
                if session.alive:
                    continue
                if not queues[slot]:
                    retire(slot)
                    continue
                index = queues[slot].popleft()
                errors = session.errors.decode(errors="replace")
                oom = (
                    session.cgroups is not None
                    and session.cgroups.oom_kills() > session.oom_kills_before
                )
                retire(slot)
                requeue_waiting(slot)
                if not session.ready:
                    failures_in_a_row += 1
                    _last_errors["text"] = errors
                    pending.appendleft(index)
                    continue
                results[index] = _lost_result(
                    "memory" if oom else "crashed",
                    "the sandboxed process was killed while running this program"
                    + (" (out of memory)" if oom else ""),
                    time.monotonic() - head_started[slot],
                )
            now = time.monotonic()
            for slot in busy:
                if not queues[slot] or slots[slot] is None:
                    continue
                deadline = head_started[slot] + _job_budget_s(jobs[queues[slot][0]])
                if now >= deadline:
                    index = queues[slot].popleft()
                    retire(slot)
                    requeue_waiting(slot)
                    results[index] = _lost_result(
                        "timeout", "the sandbox stopped answering", now - head_started[slot]
                    )
    finally:
        for slot in range(workers):
            # Only a session with nothing sent and unanswered is known to be clean (its
            # harness kills the last job's processes and empties its scratch before answering).
            retire(slot, reusable=not queues[slot])
        selector.close()
    return [r if r is not None else _lost_result("crashed", "no result", 0.0) for r in results]


_last_errors: dict[str, str] = {}


class _IdlePool:
    """Started sandboxes kept for the next call, so a one-off run (the LSP's doctest check)
    skips bubblewrap and interpreter start-up. Every program still gets a fresh forked
    process; what is reused is only the pristine harness it is forked from."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self.lock = threading.Lock()
        self.sessions: dict[Any, list[_Session]] = {}

    def take(self, key: Any) -> _Session | None:
        with self.lock:
            idle = self.sessions.get(key, [])
            while idle:
                session = idle.pop()
                if session.alive and session.proc.poll() is None:
                    return session
                session.close()
        return None

    def put(self, key: Any, session: _Session) -> None:
        with self.lock:
            idle = self.sessions.setdefault(key, [])
            if len(idle) < self.per_key:
                idle.append(session)
                return
        session.close(graceful=True)

    def close_all(self, graceful: bool = True) -> None:
        with self.lock:
            sessions = [s for idle in self.sessions.values() for s in idle]
            self.sessions.clear()
        for session in sessions:
            session.close(graceful=graceful)


_idle_pool = _IdlePool(per_key=max(2, os.cpu_count() or 1))
atexit.register(_idle_pool.close_all, False)


def _forget_inherited_sandboxes() -> None:
    # A forked child (multiprocessing) shares the parent's pipes to its sandboxes: it must
    # neither use nor close them.
    _idle_pool.sessions = {}
    _idle_pool.lock = threading.Lock()
    _retired_cgroups.clear()


os.register_at_fork(after_in_child=_forget_inherited_sandboxes)


def prewarm(*, memory_mb: int = 512, isolation: Isolation = "auto") -> None:
    """Start one sandbox now and keep it idle, so the next one-off call (e.g. the LSP's first
    doctest check) skips start-up. ``memory_mb`` must match the later calls'."""
    layers = detect_layers()
    mode = resolve_isolation(isolation, layers)
    session = _Session(mode, layers, memory_mb, warm=False)
    deadline = time.monotonic() + WATCHDOG_GRACE_S
    while session.alive and not session.ready and time.monotonic() < deadline:
        readable, _, _ = select.select([session.stdout_fd], [], [], 0.1)
        if readable:
            for frame in session.read_available():
                session.ready = session.ready or "ready" in frame
    if session.ready and session.alive:
        _idle_pool.put((mode, memory_mb, False, layers), session)
    else:
        session.close()
        raise SandboxError("the sandbox did not start: " + session.errors.decode(errors="replace"))


def close_idle_sandboxes() -> None:
    """Stop the sandboxes kept warm between calls (they are also stopped at exit)."""
    _idle_pool.close_all()


def _base_job(
    kind: str, timeout_s: float, memory_mb: int, output_limit_bytes: int
) -> dict[str, Any]:
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    if memory_mb < 32:
        raise ValueError("memory_mb must be at least 32")
    return {
        "kind": kind,
        "timeout_s": float(timeout_s),
        "memory_mb": int(memory_mb),
        "output_limit_bytes": int(output_limit_bytes),
        "tail_bytes": DEFAULT_TAIL_BYTES,
        "file_size_mb": FILE_SIZE_MB,
    }


def _to_result(raw: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(
        status=str(raw["status"]),
        exit_code=raw.get("exit_code"),
        stdout=str(raw.get("stdout", "")),
        stderr=str(raw.get("stderr", "")),
        duration_s=float(raw.get("duration_s", 0.0)),
    )


# ---------------------------------------------------------------- public API


def run(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
) -> ExecutionResult:
    """Run ``program`` like ``python program.py``; "passed" means it exited with status 0.

    ``timeout_s`` is wall-clock time minus the time the program spent waiting for a CPU
    because of other load (so verdicts do not depend on how busy the machine is), with a hard
    cap of ``STARVATION_CAP`` x ``timeout_s``; CPU time is also limited to about ``timeout_s``.
    ``memory_mb`` caps each process's address space (and, with cgroups, the sandbox's total).
    """
    return run_many(
        [program],
        workers=1,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_limit_bytes=output_limit_bytes,
        isolation=isolation,
    )[0]


def run_many(
    programs: Sequence[str],
    *,
    workers: int | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
) -> list[ExecutionResult]:
    """:func:`run` for many programs over a pool of warm sandboxes; order preserved."""
    base = _base_job("run", timeout_s, memory_mb, output_limit_bytes)
    jobs = [{**base, "program": program} for program in programs]
    raw = execute_jobs(jobs, workers=workers, memory_mb=memory_mb, isolation=isolation)
    return [_to_result(r) for r in raw]


def check_program(
    program: str,
    test: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
    strict_compare: bool = True,
) -> ExecutionResult:
    """Run ``program`` then ``test`` in one process; "passed" only if ``test`` reached its end.

    Exiting early (``sys.exit``, ``os._exit``, ``SystemExit``) or printing a success line does
    not pass. With ``strict_compare`` the test's single comparisons (``==``, ``<``, ``in``, …)
    only hold for plain data or natively-compared objects, so an object whose ``__eq__`` is
    always true cannot satisfy ``assert candidate(x) == y``.
    """
    return check_many(
        [(program, test)],
        workers=1,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_limit_bytes=output_limit_bytes,
        isolation=isolation,
        strict_compare=strict_compare,
    )[0]


def check_many(
    pairs: Iterable[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
    strict_compare: bool = True,
) -> list[ExecutionResult]:
    """:func:`check_program` for many ``(program, test)`` pairs; order preserved."""
    base = _base_job("check", timeout_s, memory_mb, output_limit_bytes)
    base["strict_compare"] = strict_compare
    jobs = [{**base, "program": program, "test": test} for program, test in pairs]
    raw = execute_jobs(jobs, workers=workers, memory_mb=memory_mb, isolation=isolation)
    return [_to_result(r) for r in raw]
