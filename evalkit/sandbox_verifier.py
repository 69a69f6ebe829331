"""The verifier: runs a trusted test in the harness, with the candidate's functions as proxies.

The harness never runs candidate code. For ``check_program(program, test)`` it starts a
child that runs ``program`` and serves calls; the test runs here, where every name it reads
from the program (``candidate`` in HumanEval's ``check(candidate)``) is a proxy that sends
the call's arguments to that child and gets back plain data (or a builtin exception type and
message). Comparisons, expected values and the verdict stay in this process. When the test
ends in ``check(ENTRY)`` and also reads helpers the program defines before ``def ENTRY``
(HumanEval's prompt helpers, e.g. ``poly``), those come from a second child that runs only
that prefix, so a completion that redefines them cannot change what the test sees. The test's
leading literal calls (``sandbox_plan``) are sent in one batch; each reply is taken only when
the test makes that exact call.
"""

from __future__ import annotations

import builtins
import collections
import io
import marshal
import signal
import sys
import traceback
from typing import Any

from evalkit.sandbox_plan import plan_test, prompt_prefix
from evalkit.sandbox_supervise import Child, JobRun, Stopped
from evalkit.sandbox_wire import FRAME_HEADER, Unsupported, WireError, decode, encode


class Unverifiable(BaseException):
    """The test needs something that cannot cross the boundary as data (an argument that is a
    function, an opaque program object): the run is "unverified", never "passed"."""


class CandidateFailure(BaseException):
    """The candidate broke the protocol, died, aborted the run or returned something that is
    not data; a BaseException so a test's ``except Exception`` cannot swallow it."""


# ---------------------------------------------------------------- proxies


class Findings:
    """What went wrong on the untrusted side during one verification."""

    __slots__ = ("failure", "lost", "memory", "unverifiable")

    def __init__(self) -> None:
        self.failure: str | None = None  # the candidate misbehaved: never a pass
        self.lost: Child | None = None  # the child that died or stopped answering
        self.unverifiable: str | None = None
        self.memory = False

    def fail(self, message: str) -> CandidateFailure:
        self.failure = self.failure or message
        return CandidateFailure(message)


class Link:
    """Requests to one serving child, with replies checked as data."""

    def __init__(
        self,
        run: JobRun,
        child: Child,
        role: str,
        findings: Findings,
        prefetch: tuple[bytes, ...] = (),
    ) -> None:
        self.run = run
        self.child = child
        self.role = role
        self.findings = findings
        self.prefetch = prefetch  # predicted call bodies, sent ahead in one batch
        self.due: collections.deque[bytes] = collections.deque()  # sent, reply not taken

    def next_frame(self) -> dict[str, Any]:
        child = self.child
        while True:
            if child.frames:
                frame = child.frames.popleft()
                if type(frame) is not dict:
                    raise self.findings.fail(f"the {self.role} process sent a malformed reply")
                return frame
            if child.broken:
                raise self.findings.fail(f"the {self.role} process sent a malformed reply")
            if child.exited or child.eof:
                child.drain()
                if child.frames:
                    continue
                self.findings.lost = self.findings.lost or child
                raise self.findings.fail(f"the {self.role} process exited before the test ended")
            self.run.pump()

    def ready(self) -> dict[str, Any] | None:
        """The program's names as the child describes them; None if the program failed."""
        frame = self.next_frame()
        if frame.get("error") == "memory":
            self.findings.memory = True
        described = frame.get("ready")
        return described if type(described) is dict else None

    def _send(self, bodies: Any) -> None:
        frames = b"".join(FRAME_HEADER.pack(len(body)) + body for body in bodies)
        if not self.run.send(self.child, frames):
            self.findings.lost = self.findings.lost or self.child
            raise self.findings.fail(f"the {self.role} process stopped reading requests")

    def request(self, message: tuple[Any, ...]) -> dict[str, Any]:
        """One request and its reply. Requests are marshal (to the child, from us: the
        trusted side); a call the test makes as predicted takes its batched reply instead."""
        body = marshal.dumps(message, 2)  # version 2: no back-references, so equal
        # requests give equal bytes whatever the objects' reference counts
        if self.due:
            if body == self.due[0]:
                self.due.popleft()
                return self.next_frame()
            while self.due:  # the test went another way: drop the replies still due
                self.due.popleft()
                self.next_frame()
        self._send((body,))
        return self.next_frame()

    def send_ahead(self) -> None:
        """Send the predicted calls now: the child answers them right after its program ran,
        with no round trip each. Replies the test does not ask for in order are dropped."""
        batch, self.prefetch = self.prefetch, ()
        frames = b"".join(FRAME_HEADER.pack(len(body)) + body for body in batch)
        if batch and self.run.send(self.child, frames):
            self.due.extend(batch)
        # Not sent: the child is already gone, which reading its "ready" reports.

    def call(self, path: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            sent_args = [encode(arg) for arg in args]
            sent_kwargs = {key: encode(value) for key, value in kwargs.items()}
        except (Unsupported, RecursionError) as exc:
            self.findings.unverifiable = f"an argument to {'.'.join(path)} is not data ({exc})"
            raise Unverifiable(self.findings.unverifiable) from None
        reply = self.request(("call", path, sent_args, sent_kwargs))
        try:
            self._write_back(args, reply.get("w", []))
            if "r" in reply:
                return decode(reply["r"])
        except (WireError, TypeError, ValueError, IndexError):
            raise self.findings.fail(f"the {self.role} process sent a malformed value") from None
        if type(reply.get("x")) is str:
            message = f"{'.'.join(path)}: {reply['x'][:300]}"
            if self.role == "prompt":
                self.findings.unverifiable = message
                raise Unverifiable(message)
            raise self.findings.fail(message)
        raise self._exception(reply)

    def attribute(self, path: list[str]) -> Any:
        reply = self.request(("attr", path, [], {}))
        if "e" in reply:
            raise self._exception(reply)
        return self.bind(path, reply)

    def bind(self, path: list[str], described: Any) -> Any:
        """A local stand-in for a child's object: its data, our own module, or a proxy."""
        if type(described) is not dict or len(described) != 1:
            raise self.findings.fail(f"the {self.role} process sent a malformed description")
        ((kind, body),) = described.items()
        if kind == "v":
            try:
                return decode(body)
            except WireError:
                raise self.findings.fail(
                    f"the {self.role} process sent a malformed value"
                ) from None
        if kind == "f":
            return Remote(self, path)
        if kind == "m" and len(path) == 1 and body == path[0]:
            try:  # our own, pristine copy of the module the program imported under its name
                import importlib

                return importlib.import_module(path[0])
            except Exception:
                pass
        return Opaque(".".join(path), self.findings)

    def _write_back(self, args: tuple[Any, ...], written: Any) -> None:
        """Apply the in-place changes the call made to list / dict / set / bytearray args."""
        for index, raw in written:
            value, target = decode(raw), args[index]
            if isinstance(target, (list, bytearray)) and type(value) is type(target):
                target[:] = value
            elif isinstance(target, (dict, set)) and type(value) is type(target):
                target.clear()
                target.update(value)

    def _exception(self, reply: dict[str, Any]) -> BaseException:
        names, message = reply.get("e"), reply.get("m", "")
        if type(names) is not list or type(message) is not str:
            return self.findings.fail(f"the {self.role} process sent a malformed reply")
        for name in names:
            cls = getattr(builtins, str(name), None)
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                continue
            if not issubclass(cls, Exception):
                # SystemExit, KeyboardInterrupt, ...: in one process these end the whole run.
                return self.findings.fail(f"the {self.role} raised {name}: {message[:200]}")
            if issubclass(cls, (StopIteration, StopAsyncIteration)):
                # Re-raised here it could end a loop of the test's early (PEP 479's reason).
                return RuntimeError(f"{name} raised inside the sandboxed call: {message}")
            if issubclass(cls, MemoryError):
                self.findings.memory = True
            try:
                return cls(message)
            except Exception:  # e.g. UnicodeDecodeError needs five arguments: use its base
                continue
        return RuntimeError(message)


class Remote:
    """A function (or module, class) living in a sandboxed child: calls go there as data."""

    __slots__ = ("_link", "_path")

    def __init__(self, link: Link, path: list[str]) -> None:
        self._link = link
        self._path = path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.call(self._path, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            return self._path[-1]
        if name.startswith("__"):
            raise AttributeError(name)
        return self._link.attribute([*self._path, name])

    def __repr__(self) -> str:
        return f"<sandboxed {'.'.join(self._path)}>"


class Opaque:
    """A program object that is neither data nor callable: any use makes the run unverified."""

    __slots__ = ("_findings", "_what")

    def __init__(self, what: str, findings: Findings) -> None:
        self._what = what
        self._findings = findings

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        message = f"the test uses {self._what}, an object that is not plain data"
        self._findings.unverifiable = message
        raise Unverifiable(message)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = __call__ = _refuse
    __hash__ = __int__ = __float__ = __index__ = __str__ = _refuse  # type: ignore[assignment]
    __add__ = __sub__ = __mul__ = __truediv__ = __mod__ = __neg__ = _refuse

    def __getattr__(self, name: str) -> Any:
        return self._refuse()

    def __repr__(self) -> str:
        return f"<opaque {self._what}>"


# ---------------------------------------------------------------- one verification


class _Alarm:
    """A hard stop for the test's own code (calls to children are timed by ``JobRun.pump``)."""

    armed = False
    fired = False

    @classmethod
    def handle(cls, _signum: int, _frame: Any) -> None:
        if cls.armed:
            cls.armed = False
            cls.fired = True
            raise Stopped("timeout")

    installed = False

    @classmethod
    def arm(cls, seconds: float) -> None:
        if not cls.installed:
            signal.signal(signal.SIGALRM, cls.handle)
            cls.installed = True
        cls.armed = True
        cls.fired = False
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))

    @classmethod
    def disarm(cls) -> None:
        cls.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _test_traceback(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test>"]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join(lines + traceback.format_exception_only(type(exc), exc))


class Verdict:
    """How the test went: a status (passed, failed, unverified; the harness maps a lost
    child to its signal), what went wrong, and what the test printed."""

    __slots__ = ("findings", "status", "test_stderr", "test_stdout")

    def __init__(self, status: str, findings: Findings, test_stdout: str, test_stderr: str):
        self.status = status
        self.findings = findings
        self.test_stdout = test_stdout
        self.test_stderr = test_stderr


def verify(run: JobRun, program: str, test: str) -> Verdict:
    """Run ``test`` here against ``program`` served by sandboxed children. Raises only
    ``Stopped`` (a time or output budget ran out) and ``SandboxBroken`` (no zygote)."""
    findings = Findings()
    plan = plan_test(test)
    if plan.code is None:
        return Verdict("failed", findings, "", plan.error)
    prompt_names: list[str] = []
    prefix = ""
    if plan.entry is not None and any(name != plan.entry for name in plan.names):
        found = prompt_prefix(program, plan.entry)
        if found is not None:
            prefix, bound = found
            prompt_names = [n for n in plan.names if n != plan.entry and n in bound]
    candidate_names = [n for n in plan.names if n not in prompt_names]
    links = [
        Link(
            run,
            run.spawn({"kind": "serve", "program": program, "names": candidate_names}, True),
            "candidate",
            findings,
            plan.prefetch,
        )
    ]
    links[0].send_ahead()
    if prompt_names:
        payload = {
            "kind": "serve",
            "program": prefix,
            "names": prompt_names,
            "filename": "<prompt>",
        }
        links.append(Link(run, run.spawn(payload, True), "prompt", findings))
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    captured = io.StringIO()
    saved_stdout = sys.stdout
    status, error = "passed", ""
    try:
        for link in links:
            described = link.ready()
            if described is None:
                return Verdict("failed", findings, "", "")
            for name, description in described.items():
                namespace[str(name)] = link.bind([str(name)], description)
        sys.stdout = captured
        _Alarm.arm(run.hard_deadline - run.started - run.duration_s())
        try:
            exec(plan.code, namespace)
        finally:
            _Alarm.disarm()
            sys.stdout = saved_stdout
    except Stopped:
        raise
    except Unverifiable as exc:
        status, error = "unverified", f"not verified: {exc}\n"
    except CandidateFailure as exc:
        status, error = "failed", f"{exc}\n"
    except BaseException as exc:
        status, error = "failed", _test_traceback(exc)
    if run.stopped is not None or _Alarm.fired:  # a budget ran out, even if the test caught it
        raise Stopped(run.stopped or "timeout")
    if status == "passed":
        for link in links:  # it must still be serving: an early exit is never a pass
            if not run.alive(link.child):
                findings.lost = findings.lost or link.child
                findings.fail(f"the {link.role} process exited before the test ended")
        if findings.unverifiable:
            status, error = "unverified", f"not verified: {findings.unverifiable}\n"
    if findings.failure is not None:
        status = "failed"
        if findings.failure not in error:
            error = f"{error}{findings.failure}\n"
    return Verdict(status, findings, captured.getvalue(), error)
