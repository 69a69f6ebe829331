"""The zygote: a pristine fork server inside the sandbox that starts every untrusted child.

The harness forks it at start-up, before it has read any job, so the zygote's memory never
holds a test, an expected value or a verdict, and neither does any child forked from it.
Over a private socket the harness sends "fork" (the child's limits plus its five fds, passed
with SCM_RIGHTS) and "finish" (collect the children's exit statuses, then kill everything
they left behind). The zygote is non-dumpable and a child subreaper: orphans of a child come
back to it and are killed with the rest. It confines itself (Landlock, seccomp) before its
first fork, so every child inherits that without paying for it again.
"""

from __future__ import annotations

import _signal
import contextlib
import fcntl
import gc
import marshal
import os
import shutil
import signal
import socket
import struct
import sys
from typing import Any

from evalkit import sandbox_confine as confine
from evalkit.sandbox_child import CHILD_KINDS, flush_std, read_job, warm_up

CONTROL_BUFFER = 1 << 16
CHILD_FDS = 5  # job, stdout, stderr, requests, replies -> fds 3, 1, 2, 4, 5
CLEANUP_ROUNDS = 1000


def _enter_child(settings: dict[str, Any], limits: dict[str, Any], fds: list[int]) -> None:
    """In the new child: own session, exactly fds 0-5, its own Landlock scope, limits, workdir.

    The zygote keeps fds 0-5 occupied, so the received fds are all above 5 and can be moved
    into place directly. Landlock's filesystem and network rules, the seccomp filter, being
    non-dumpable and oom_score_adj=1000 all come from the zygote, which took them once.
    """
    os.setsid()
    os.dup2(settings["devnull"], 0)
    for index, target in enumerate((3, 1, 2, 4, 5)):  # job, stdout, stderr, requests, replies
        os.dup2(fds[index], target)
    scope = settings.get("scope_ruleset")
    if scope is not None:  # a nested domain: no signals to the zygote or anything outside
        confine.restrict_self(scope)
    os.closerange(6, 1 << 16)  # the rulesets, our control socket, every inherited pipe
    confine.set_limits(
        int(limits["memory_mb"]),
        int(limits["cpu_s"]),
        int(limits["file_size_mb"]),
        limits.get("nproc"),
    )
    os.chdir(settings["workdir"])
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # the C function: no enum wrapping


def _spawn(settings: dict[str, Any], limits: dict[str, Any], fds: list[int]) -> int:
    flush_std()
    gc.freeze()  # the child's collections then never touch (and copy) our objects
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _enter_child(settings, limits, fds)
        job = read_job()
        code = CHILD_KINDS[job["kind"]](job)
    except MemoryError:
        code = 1
    except BaseException:  # a broken job: exit, the harness reports what it saw
        code = 1
    finally:
        flush_std()
        os._exit(code)


_children_fd: list[int] = []  # /proc/self/task/<tid>/children, opened before Landlock


def _children() -> list[int]:
    me = os.getpid()
    if _children_fd:  # one read when the kernel has CONFIG_PROC_CHILDREN (single-threaded)
        try:
            return [int(pid) for pid in os.pread(_children_fd[0], 1 << 16, 0).split()]
        except OSError:
            pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def kill_everything(pid_namespace: bool) -> None:
    """Kill every process the children left behind, and reap them."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        # No child at all: as a subreaper, every live descendant would be one (or have a live
        # ancestor that is one), so nothing is left. The usual case: skip the sweep.
        return
    if pid_namespace:
        # Inside the sandbox's pid namespace, kill(-1) reaches every process but ours and
        # the harness (pid 1, which no signal from inside can kill); orphans are re-parented
        # to us (a subreaper), so ECHILD means they are all gone.
        for _ in range(CLEANUP_ROUNDS):
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-1, 0)
            try:
                os.kill(-1, 0)
            except ProcessLookupError:
                return
        return
    # Without a pid namespace kill(-1) would hit the user's other processes: kill our own
    # descendants instead (as a subreaper, orphans of theirs become our children).
    for _ in range(CLEANUP_ROUNDS):
        children = _children()
        if not children:
            break
        for pid in children:
            for target in (-pid, pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(target, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def clean_scratch(directories: list[str]) -> None:
    """Empty the writable dirs (after every job: nothing a program leaves reaches the next)."""
    for directory in directories:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(directory, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _finish(pids: list[int], pid_namespace: bool) -> dict[int, int | None]:
    """Exit statuses of ``pids`` (killing those still running), then clean up the rest."""
    statuses: dict[int, int | None] = {}
    for pid in pids:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            statuses[pid] = status
        except ChildProcessError:
            statuses[pid] = None
    kill_everything(pid_namespace)
    return statuses


def _prepare_zygote(control: socket.socket, settings: dict[str, Any]) -> socket.socket:
    """Once: subreaper, die with the harness, children first in line for the OOM killer,
    fds 3-5 held (on /dev/null) so that fds received later never land on a child's slot,
    the serving path warmed up, then confined like the children (Landlock, seccomp)."""
    confine.prctl(confine.PR_SET_CHILD_SUBREAPER, 1)
    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL)  # the harness gone: so are we
    with contextlib.suppress(OSError):
        confine.prctl(confine.PR_SET_DUMPABLE, 1)  # needed to write our own oom_score_adj
        with open("/proc/self/oom_score_adj", "w") as oom:
            oom.write("1000")  # inherited by every child; we are tiny, they are not picked last
    confine.prctl(confine.PR_SET_DUMPABLE, 0)

    def move_up(fd: int) -> int:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    moved = socket.socket(fileno=move_up(control.detach()))
    for key in ("devnull", "landlock_ruleset", "scope_ruleset"):
        if settings.get(key) is not None:
            settings[key] = move_up(settings[key])
    for slot in (3, 4, 5):
        os.dup2(settings["devnull"], slot)
    if not settings["pid_namespace"]:
        with contextlib.suppress(OSError):
            me = os.getpid()
            _children_fd.append(os.open(f"/proc/{me}/task/{me}/children", os.O_RDONLY))
    warm_up()
    ruleset = settings.pop("landlock_ruleset", None)
    if ruleset is not None:
        confine.restrict_self(ruleset)
        os.close(ruleset)
    program = settings.get("seccomp_program")
    if program is not None:
        confine.install_seccomp(program)
    return moved


def _receive(control: socket.socket) -> tuple[Any, list[int]]:
    message, ancillary, _flags, _address = control.recvmsg(
        CONTROL_BUFFER, socket.CMSG_LEN(CHILD_FDS * 4)
    )
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4]))
    return (marshal.loads(message) if message else None), fds


def zygote_main(control: socket.socket, settings: dict[str, Any]) -> None:
    """Serve fork / finish requests from the harness until it closes the socket; never returns.

    Requests are marshal tuples from the harness: ``("fork", limits)`` with the child's five
    fds attached (answered with its pid), ``("finish", pids)`` (answered with their statuses).
    """
    code = 0
    pid_namespace = bool(settings["pid_namespace"])
    try:
        control = _prepare_zygote(control, settings)
        while True:
            request, fds = _receive(control)
            if request is None:
                break
            if request[0] == "fork" and len(fds) == CHILD_FDS:
                try:
                    pid = _spawn(settings, request[1], fds)
                finally:
                    for fd in fds:
                        os.close(fd)
                control.send(marshal.dumps(pid))
            elif request[0] == "finish":
                statuses = _finish(request[1], pid_namespace)
                clean_scratch(settings["scratch_dirs"])
                control.send(marshal.dumps(statuses))
            else:
                for fd in fds:
                    os.close(fd)
                raise ValueError(f"bad zygote request {request!r}")
    except BaseException as exc:  # the harness notices the closed socket
        print(f"sandbox zygote: {exc!r}", file=sys.stderr)
        code = 1
    finally:
        kill_everything(pid_namespace)
        os._exit(code)
