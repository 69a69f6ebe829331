"""Supervision of one job inside the sandbox: its children, time budget, output caps, cleanup.

Runs in the harness (trusted, never runs candidate code). A ``JobRun`` asks the zygote for
children, hands each its job through a memory file, drains their output pipes into capped
tails, reads their reply frames, enforces the time budget (not counting time spent waiting
for a CPU), and at the end has the zygote kill every process of the job.
"""

from __future__ import annotations

import collections
import functools
import marshal
import os
import select
import socket
import time
from typing import Any

from evalkit.sandbox_wire import WireError, parse_frames

STARVATION_CAP = 4.0  # a job never runs longer than this many times its timeout
READ_CHUNK = 65536
REPLY_LIMIT = 16 << 20  # the largest frame a child may send (a return value, a record)
ZYGOTE_TIMEOUT_S = 10.0


class Stopped(BaseException):
    """The job ran out of time or output; ``reason`` is the status to report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SandboxBroken(RuntimeError):
    """The zygote stopped answering: the whole sandbox must be replaced."""


class Zygote:
    """The harness's end of the zygote's control socket."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.unread = 0  # answers to "finish" requests we did not wait for
        sock.settimeout(ZYGOTE_TIMEOUT_S)

    def _answer(self) -> Any:
        try:
            message = self.sock.recv(1 << 16)
        except OSError as exc:
            raise SandboxBroken(f"zygote: {exc}") from None
        if not message:
            raise SandboxBroken("the zygote is gone")
        return marshal.loads(message)

    def _catch_up(self) -> None:
        """Answers come in request order: take the ones nobody waited for first."""
        while self.unread:
            self.unread -= 1
            self._answer()

    def spawn(self, limits: dict[str, Any], fds: list[int]) -> tuple[int, int]:
        """Start a child holding ``fds``; its pid and a pidfd for it (race-free: the zygote
        reaps its children only when told to finish)."""
        try:
            socket.send_fds(self.sock, [marshal.dumps(("fork", limits))], fds)
        except OSError as exc:
            raise SandboxBroken(f"zygote: {exc}") from None
        self._catch_up()
        pid = int(self._answer())
        return pid, os.pidfd_open(pid)

    def finish(self, pids: list[int], wait: bool = True) -> dict[int, int | None]:
        """Exit statuses of ``pids`` (killed if still running); every other leftover killed
        and the scratch dirs emptied, all before the zygote forks again. With ``wait`` False
        the statuses are not wanted: nothing is waited for (an empty dict comes back)."""
        try:
            self.sock.send(marshal.dumps(("finish", pids)))
        except OSError as exc:
            raise SandboxBroken(f"zygote: {exc}") from None
        if not wait:
            self.unread += 1
            return {}
        self._catch_up()
        statuses: dict[int, int | None] = self._answer()
        return statuses


class Child:
    """One untrusted child of a job: its pid, pidfd, request pipe and parsed reply frames."""

    def __init__(self, pid: int, pidfd: int, request_fd: int | None, reply_fd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.buffer = bytearray()
        self.frames: collections.deque[Any] = collections.deque()
        self.exited = False
        self.eof = False
        self.broken = False  # it sent bytes that are not frames

    def read(self) -> None:
        """Take what one read returns (the caller polls again while more is pending)."""
        try:
            chunk = os.read(self.reply_fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
            return
        self.buffer += chunk
        if len(self.buffer) > REPLY_LIMIT + 4:
            self.broken = self.eof = True
        elif not self.broken:
            try:
                self.frames.extend(parse_frames(self.buffer, REPLY_LIMIT))
            except WireError:
                self.broken = True

    def drain(self) -> None:
        """Read to the end (every writer is gone)."""
        while not self.eof:
            before = len(self.buffer)
            self.read()
            if len(self.buffer) == before and not self.eof:
                break


def _starved_s(pid: int | str) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (``/proc/PID/schedstat``)."""
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class JobRun:
    """The children, pipes and budgets of one job."""

    def __init__(self, zygote: Zygote, devnull: int, job: dict[str, Any]) -> None:
        self.zygote = zygote
        self.devnull = devnull
        self.timeout_s = float(job["timeout_s"])
        self.limits = {
            "memory_mb": int(job["memory_mb"]),
            "cpu_s": int(self.timeout_s) + 2,
            "file_size_mb": int(job["file_size_mb"]),
            "nproc": job.get("nproc"),
        }
        self.output_limit = int(job["output_limit_bytes"])
        self.tail_bytes = int(job["tail_bytes"])
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout_s
        # Time spent waiting for a CPU because of other load does not count against the
        # program (wall-clock limits are otherwise flaky on a busy machine), up to a hard cap.
        self.hard_deadline = self.started + float(job.get("starvation_cap", STARVATION_CAP)) * (
            self.timeout_s
        )
        self.children: list[Child] = []
        self.starved: dict[int, float] = {}
        self.stopped: str | None = None  # why a budget ran out (even if a test swallowed it)
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.tails = {self.out_r: bytearray(), self.err_r: bytearray()}
        self.total_output = 0
        self.poller = select.epoll()  # one registration per fd; cheaper waits than poll()
        self.handlers: dict[int, Any] = {}
        for fd in (self.out_r, self.err_r):
            os.set_blocking(fd, False)
            self._watch(fd, functools.partial(self._drain_output, fd))

    def _watch(self, fd: int, handler: Any) -> None:
        self.poller.register(fd, select.EPOLLIN)
        self.handlers[fd] = handler

    def _unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # -- children

    def spawn(self, payload: dict[str, Any], serve: bool) -> Child:
        """Start a child for ``payload`` (the job it reads from fd 3); ``serve`` gives it a
        request pipe, otherwise fd 4 is /dev/null."""
        job_fd = os.memfd_create("job", os.MFD_CLOEXEC)
        os.write(job_fd, marshal.dumps(payload))  # we write it, the child only reads it
        reply_r, reply_w = os.pipe()
        request_r, request_w = os.pipe() if serve else (self.devnull, None)
        try:
            pid, pidfd = self.zygote.spawn(
                self.limits, [job_fd, self.out_w, self.err_w, request_r, reply_w]
            )
        finally:
            os.close(job_fd)
            os.close(reply_w)
            if request_w is not None:
                os.close(request_r)
        os.set_blocking(reply_r, False)
        if request_w is not None:
            os.set_blocking(request_w, False)
        child = Child(pid, pidfd, request_w, reply_r)
        self.children.append(child)
        self._watch(reply_r, lambda: self._read_replies(child))
        self._watch(pidfd, lambda: self._exited(child))
        return child

    def _read_replies(self, child: Child) -> None:
        child.read()
        if child.eof:  # a hung-up pipe stays readable: stop polling it
            self._unwatch(child.reply_fd)

    def _exited(self, child: Child) -> None:
        child.exited = True
        self.starved[child.pid] = _starved_s(child.pid)
        self._unwatch(child.pidfd)

    def alive(self, child: Child) -> bool:
        """Whether ``child`` is still running (checked now, not at the last poll)."""
        if not child.exited and select.select([child.pidfd], [], [], 0)[0]:
            self._exited(child)
        return not child.exited

    # -- budgets

    def _starved(self) -> float:
        total = 0.0  # the children's: our own share of a job is small
        for child in self.children:
            if not child.exited:
                self.starved[child.pid] = _starved_s(child.pid)
            total += self.starved.get(child.pid, 0.0)
        return total

    def remaining_s(self) -> float:
        now = time.monotonic()
        if now >= self.deadline:
            self.deadline = min(self.started + self.timeout_s + self._starved(), self.hard_deadline)
        remaining = self.deadline - now
        if remaining <= 0:
            self.stopped = "timeout"
            raise Stopped("timeout")
        return remaining

    def pump(self, timeout_s: float | None = None, enforce: bool = True) -> None:
        """One round: wait for output / replies / exits (at most ``timeout_s``) and take them."""
        wait = self.remaining_s() if enforce else (timeout_s or 0.0)
        if timeout_s is not None:
            wait = min(wait, timeout_s)
        for fd, _event in self.poller.poll(max(wait, 0.0)):
            handler = self.handlers.get(fd)
            if handler is not None:
                handler()
        if enforce and self.total_output > self.output_limit:
            self.stopped = "output_limit"
            raise Stopped("output_limit")

    def _drain_output(self, fd: int, budget: int = 1 << 20) -> None:
        got = 0
        while got < budget and fd in self.handlers:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                self._unwatch(fd)
                break
            got += len(chunk)
            self.total_output += len(chunk)
            tail = self.tails[fd]
            tail.extend(chunk)
            if len(tail) > self.tail_bytes:
                del tail[: len(tail) - self.tail_bytes]

    def send(self, child: Child, frame: bytes) -> bool:
        """Write one request frame to ``child``; False if it no longer reads its requests."""
        assert child.request_fd is not None
        data = memoryview(frame)
        while data:
            try:
                data = data[os.write(child.request_fd, data) :]
            except BlockingIOError:
                if not self.alive(child):
                    return False
                self.pump(0.01)
            except OSError:  # EPIPE: nobody reads the requests any more
                return False
        return True

    # -- the end

    def finish(self, grace_s: float = 0.0, statuses: bool = True) -> dict[int, int | None]:
        """Close the children's requests, give them ``grace_s`` to exit, have the zygote kill
        the rest (with all their descendants), take the last output. Returns exit statuses by
        pid; with ``statuses`` False none are waited for (the output is already complete:
        serving children flush it before each reply)."""
        os.close(self.out_w)
        os.close(self.err_w)
        for child in self.children:
            if child.request_fd is not None:
                os.close(child.request_fd)
                child.request_fd = None
        give_up = time.monotonic() + grace_s
        while any(not c.exited for c in self.children) and time.monotonic() < give_up:
            self.pump(give_up - time.monotonic(), enforce=False)
        result = self.zygote.finish([child.pid for child in self.children], wait=statuses)
        # When waited for, every writer is dead now and the pipes end with EOF; otherwise
        # this takes what is there.
        self._drain_output(self.out_r, self.output_limit + READ_CHUNK)
        self._drain_output(self.err_r, self.output_limit + READ_CHUNK)
        for child in self.children:
            child.drain()
            for fd in (child.reply_fd, child.pidfd):
                self._unwatch(fd)
                os.close(fd)
        for fd in (self.out_r, self.err_r):
            self._unwatch(fd)
            os.close(fd)
        self.poller.close()
        return result

    def stdout(self) -> str:
        return bytes(self.tails[self.out_r]).decode(errors="replace")

    def stderr(self) -> str:
        return bytes(self.tails[self.err_r]).decode(errors="replace")

    def duration_s(self) -> float:
        return time.monotonic() - self.started
