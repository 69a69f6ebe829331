"""Sandboxed harness processes on the host side: start them, feed them jobs, keep them warm.

One ``_Session`` is one sandboxed harness (bubblewrap or the unsafe fallback, plus its
cgroup). ``execute_jobs`` spreads jobs over a few sessions with a small pipeline, replaces
any session that dies or stalls (costing only its current job), and parks clean sessions in
an idle pool so the next one-off call (the LSP's doctest check) skips start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import json
import marshal
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit import sandbox_cgroups
from evalkit.sandbox_harness import BOOTSTRAP, SANDBOX_MODULES, WARM_MODULES
from evalkit.sandbox_layers import (
    SANDBOX_UID,
    Isolation,
    JobsCancelled,
    SandboxError,
    SandboxLayers,
    _as_sandbox_user,
    bwrap_argv,
    resolve_isolation,
    scrubbed_env,
)
from evalkit.sandbox_supervise import STARVATION_CAP
from evalkit.sandbox_wire import FRAME_HEADER, WireError, parse_frames

# Extra wall time the runner grants a harness beyond a job's own timeout before it gives up
# on the whole sandbox (start-up under load, cleanup, a slow machine).
WATCHDOG_GRACE_S = 10.0
PIPELINE_DEPTH = 2  # jobs sent ahead to each sandbox
PIPELINE_MAX_BYTES = 32 << 10  # larger jobs are sent only to an idle sandbox (pipes hold 64 KiB)
RESULT_LIMIT = 64 << 20
CANCEL_POLL_S = 0.05  # how often a batch with a ``cancel`` event looks at it while it waits


@functools.lru_cache(maxsize=4)
def _nproc_limit(drop_uid: bool, cgroups: bool) -> int:
    """RLIMIT_NPROC for a whole sandbox. It counts every task of the uid machine-wide, so as
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


_retired_cgroups: list[sandbox_cgroups.SandboxCgroup] = []
_retired_lock = threading.Lock()


def _retire_cgroup(cgroup: sandbox_cgroups.SandboxCgroup) -> None:
    """Remove cgroups whose processes are gone; a dying pid namespace may keep one busy for a
    moment, so busy ones are retried on the next call (and at exit) instead of waited for."""
    with _retired_lock:
        _retired_cgroups.append(cgroup)
        for item in list(_retired_cgroups):
            if item.try_remove():
                _retired_cgroups.remove(item)


@atexit.register
def _remove_retired_cgroups() -> None:
    for item in _retired_cgroups:
        item.close()


@functools.lru_cache(maxsize=2)
def _sandbox_modules(python_magic: str) -> bytes:
    """The first frame every harness reads: the in-sandbox modules in import order, compiled
    once here when the sandbox's Python has our bytecode format (its start-up then skips
    compiling them), as source otherwise."""
    here = Path(__file__).parent
    modules: list[tuple[str, object]] = []
    for name in SANDBOX_MODULES:
        source = (here / f"{name}.py").read_text()
        same = python_magic == importlib.util.MAGIC_NUMBER.hex()
        modules.append((name, compile(source, f"<sandbox:{name}>", "exec") if same else source))
    body = marshal.dumps(modules)
    return FRAME_HEADER.pack(len(body)) + body


class _Session:
    """One sandboxed harness process and its cgroup / scratch dir."""

    def __init__(
        self,
        mode: str,
        layers: SandboxLayers,
        memory_mb: int,
        warm: bool,
        extra_ro_paths: Sequence[str] = (),
    ) -> None:
        self.mode = mode
        cgroup = sandbox_cgroups.SandboxCgroup(layers.cgroups, memory_mb)
        self.cgroup: sandbox_cgroups.SandboxCgroup | None = cgroup if cgroup.active else None
        self.host_tmp: str | None = None
        python_argv = [layers.python, "-I", "-B", "-c", BOOTSTRAP]
        if mode == "bwrap":
            assert layers.bwrap is not None
            # After the scratch tmpfs mounts, so a directory under /tmp stays visible.
            binds = [arg for path in extra_ro_paths for arg in ("--ro-bind", path, path)]
            argv = bwrap_argv(layers.bwrap, layers.python_paths, [*binds, "--chdir", "/tmp"])
            argv += python_argv
            scratch = ["/tmp", "/dev/shm"]
            cwd = "/"
        else:
            # On a tmpfs, scratch files are charged to the memory cgroup: a disk-filling
            # program then hits the memory limit instead of the host's disk.
            shm = "/dev/shm" if self.cgroup and os.path.isdir("/dev/shm") else None
            self.host_tmp = tempfile.mkdtemp(prefix="docomplete-sandbox-", dir=shm)
            if layers.drop_uid:
                os.chown(self.host_tmp, SANDBOX_UID, SANDBOX_UID)
            os.chmod(self.host_tmp, 0o700)
            argv = python_argv
            scratch = [self.host_tmp]
            cwd = self.host_tmp
        if self.cgroup is not None:
            argv = self.cgroup.wrap(argv)
        nproc = _nproc_limit(layers.drop_uid, self.cgroup is not None)
        joining = self.cgroup

        def prepare_child() -> None:
            # Runs in the forked child before exec: cgroups need root, so join them first.
            if joining is not None:
                joining.join()
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            _as_sandbox_user()

        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=scrubbed_env(),
            cwd=cwd,
            preexec_fn=prepare_child,
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        if self.cgroup is not None:
            self.cgroup.found_scope(self.proc.pid)
        self.stdout_fd = self.proc.stdout.fileno()
        self.stderr_fd = self.proc.stderr.fileno()
        os.set_blocking(self.stdout_fd, False)
        os.set_blocking(self.stderr_fd, False)
        self.buffer = bytearray()
        self.errors = bytearray()
        self.ready = False
        self.alive = True
        self.oom_kills_before = 0  # OOM kills so far that a result already accounted for
        self.send_bytes(_sandbox_modules(layers.python_magic))
        self.send(
            {
                "scratch_dirs": scratch,
                "warm_modules": WARM_MODULES if warm else [],
                "landlock": layers.landlock_abi > 0,
                "readable": [*layers.readable(), *extra_ro_paths],
                "seccomp": layers.seccomp,
                "limit_child_tasks": (
                    None if self.cgroup is not None else sandbox_cgroups.RUN_TASKS_WITHOUT_CGROUPS
                ),
            }
        )

    def note_oom_kills(self) -> None:
        """Remember the OOM kills so far: one seen later is what ended this sandbox."""
        if self.cgroup is not None:
            self.oom_kills_before = self.cgroup.oom_kills()

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_bytes(FRAME_HEADER.pack(len(body)) + body)

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
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
        try:
            return parse_frames(self.buffer, RESULT_LIMIT)
        except WireError:
            self.alive = False
            return []

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
        if self.cgroup is not None:
            _retire_cgroup(self.cgroup)
        if self.host_tmp is not None:
            shutil.rmtree(self.host_tmp, ignore_errors=True)


def default_workers() -> int:
    """Sandboxes run in parallel by default: one more than the cores, because each one
    alternates between its verifier and the program it checks, leaving a core part idle."""
    return (os.cpu_count() or 1) + 1


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


_last_errors: dict[str, str] = {}


def execute_jobs(
    jobs: Sequence[dict[str, Any]],
    layers: SandboxLayers,
    *,
    workers: int | None = None,
    memory_mb: int = 512,
    isolation: Isolation = "auto",
    extra_ro_paths: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Run harness jobs over ``workers`` warm sandboxes; results in job order.

    Setting ``cancel`` (checked every ``CANCEL_POLL_S``) stops the batch: the sandboxes still
    running a job are killed, the idle ones kept, and ``JobsCancelled`` is raised.

    ``extra_ro_paths`` are existing directories the programs may read (bound read-only into
    bubblewrap; added to Landlock's read rules in the fallback), e.g. a project's virtualenv
    site-packages. Warm sandboxes are kept per set of paths.

    A sandbox that dies or stalls (the program killed its harness, the OOM killer, a stuck
    kernel) costs only its current job, which gets "crashed" / "memory" / "timeout"; a fresh
    sandbox takes over the rest.
    """
    if not jobs:
        return []
    mode = resolve_isolation(isolation, layers)
    workers = max(1, min(workers or default_workers(), len(jobs)))
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
                    target.send_bytes(FRAME_HEADER.pack(len(body)) + body)
            busy = [slot for slot in range(workers) if queues[slot]]
            if not busy:
                break
            deadlines = {
                slot: head_started[slot] + _job_budget_s(jobs[queues[slot][0]]) for slot in busy
            }
            timeout = max(0.0, min(deadlines.values()) - time.monotonic())
            if cancel is not None:
                if cancel.is_set():
                    raise JobsCancelled(f"{sum(map(len, queues)) + len(pending)} jobs cancelled")
                timeout = min(timeout, CANCEL_POLL_S)
            for key, _ in selector.select(timeout):
                slot = key.data
                session = slots[slot]
                if session is None:
                    continue
                for frame in session.read_available():
                    if "ready" in frame:
                        session.ready = True
                        failures_in_a_row = 0
                        session.note_oom_kills()
                    elif queues[slot]:
                        results[queues[slot].popleft()] = frame
                        start_head(slot)
                        if frame.get("status") == "memory":  # a kill the harness survived
                            session.note_oom_kills()
                if session.alive:
                    continue
                if not queues[slot]:
                    retire(slot)
                    continue
                index = queues[slot].popleft()
                errors = session.errors.decode(errors="replace")
                oom = (
                    session.cgroup is not None
                    and session.cgroup.oom_kills() > session.oom_kills_before
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


class _IdlePool:
    """Started sandboxes kept for the next call, so a one-off run (the LSP's doctest check)
    skips bubblewrap and interpreter start-up. Every program still gets a fresh process;
    what is reused is the harness (which never runs candidate code) and the pristine zygote
    each program's process is forked from."""

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


_idle_pool = _IdlePool(per_key=max(2, default_workers()))
atexit.register(_idle_pool.close_all, False)


def _forget_inherited_sandboxes() -> None:
    # A forked child (multiprocessing) shares the parent's pipes to its sandboxes: it must
    # neither use nor close them.
    _idle_pool.sessions = {}
    _idle_pool.lock = threading.Lock()
    _retired_cgroups.clear()


os.register_at_fork(after_in_child=_forget_inherited_sandboxes)


def prewarm(layers: SandboxLayers, *, memory_mb: int = 512, isolation: Isolation = "auto") -> None:
    """Start one sandbox now and keep it idle, so the next one-off call (e.g. the LSP's first
    doctest check) skips start-up. ``memory_mb`` must match the later calls'."""
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
