"""The harness: the sandbox's trusted process (pid 1 under bubblewrap), which judges every job.

``evalkit.sandbox`` starts it (through ``BOOTSTRAP``, which loads these in-sandbox modules
from the first frame on stdin: marshal'd code when the runner's Python has the same bytecode
as the sandbox's, sources otherwise) and feeds it length-prefixed JSON jobs on stdin; results go
back on stdout. The harness never runs candidate code: at start-up it forks the zygote,
which starts every untrusted child, and it runs the trusted side of each job itself (the
test of a check, the supervision of a run). It is non-dumpable, so a child of the same uid
cannot open its memory or fds; as pid 1 of its pid namespace it cannot be killed from inside.
Stdlib only; runs on the sandbox's Python (3.9+, Linux).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import traceback
from typing import Any

from evalkit import sandbox_confine as confine
from evalkit.sandbox_child import flush_std
from evalkit.sandbox_supervise import JobRun, SandboxBroken, Stopped, Zygote
from evalkit.sandbox_verifier import verify
from evalkit.sandbox_wire import read_frame, write_frame
from evalkit.sandbox_zygote import kill_everything, zygote_main

# Imported once here so forked children start warm (HumanEval solutions use these).
# The runner asks for them only for batches; a one-off run starts faster without them.
WARM_MODULES = [
    "ast",
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "string",
    "hashlib",
    "heapq",
    "typing",
    "random",
    "bisect",
    "fractions",
    "decimal",
    "statistics",
    "copy",
    "operator",
    "json",
    "datetime",
]
# The modules shipped into the sandbox, in import order (see ``BOOTSTRAP``).
SANDBOX_MODULES = [
    "sandbox_wire",
    "sandbox_confine",
    "sandbox_child",
    "sandbox_zygote",
    "sandbox_supervise",
    "sandbox_plan",
    "sandbox_verifier",
    "sandbox_harness",
]
BOOTSTRAP = """
import marshal, os, struct, sys, types
def _read(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
_package = types.ModuleType("evalkit")
_package.__path__ = []
sys.modules["evalkit"] = _package
for _name, _code in marshal.loads(_read(struct.unpack(">I", _read(4))[0])):
    _module = types.ModuleType("evalkit." + _name)
    _module.__file__ = "<sandbox:" + _name + ">"
    sys.modules[_module.__name__] = _module
    setattr(_package, _name, _module)
    if isinstance(_code, str):
        _code = compile(_code, _module.__file__, "exec")
    exec(_code, _module.__dict__)
sys.modules["evalkit.sandbox_harness"].main()
"""
CHILD_KIND = {"run": "run", "check": "inline_check", "doctest": "doctest"}
RECORD_EVENTS = ("example", "setup_error", "memory", "done")
EXIT_GRACE_S = 0.05


def _valid_record(frame: Any) -> bool:
    """A child's record, checked as data (the child may send anything)."""
    if type(frame) is not dict or frame.get("event") not in RECORD_EVENTS:
        return False
    if frame["event"] == "example":
        return (
            type(frame.get("index")) is int
            and type(frame.get("output")) is str
            and (frame.get("exception") is None or type(frame.get("exception")) is str)
        )
    if frame["event"] == "setup_error":
        return type(frame.get("error")) is str
    return True


def _signal_of(status: int | None) -> int | None:
    if status is not None and os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    return None


def _exit_code_of(status: int | None) -> int | None:
    if status is None:
        return None
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return None


def _status_of_death(status: int | None) -> str | None:
    """What a child's death by a signal we did not send means, or None if it just exited."""
    number = _signal_of(status)
    if number is None:
        return None
    if number == signal.SIGXCPU:
        return "timeout"
    if number == signal.SIGKILL:
        return "memory"  # not from us: the kernel's OOM killer (cgroup limit)
    return "crashed"


def _tasks_of_uid() -> int:
    """Tasks (processes and threads) of our uid that we can see (the sandbox's, in bwrap)."""
    uid = str(os.getuid())
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


class Harness:
    """The trusted side: starts the zygote, runs each job's supervision and verdict."""

    def __init__(self, config: dict[str, Any], private_fds: list[int]) -> None:
        self.pid_namespace = os.getpid() == 1
        self.scratch_dirs: list[str] = list(config["scratch_dirs"])
        self.workdir = self.scratch_dirs[0]
        self.devnull = os.open(os.devnull, os.O_RDWR)
        ruleset = scope = None
        if config.get("landlock"):
            ruleset = confine.prepare_landlock(list(config["readable"]), self.scratch_dirs)
            scope = confine.prepare_scope_ruleset()
        seccomp = confine.seccomp_program() if config.get("seccomp") else None
        os.environ.clear()
        os.environ.update(
            {
                "HOME": self.workdir,
                "TMPDIR": self.workdir,
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
            }
        )
        for name in config.get("warm_modules", ()):
            try:
                __import__(name)
            except ImportError:
                pass
        # Children then never touch these objects during collection, so fewer pages are
        # copied on write after each fork.
        gc.collect()
        gc.freeze()
        settings = {
            "devnull": self.devnull,
            "landlock_ruleset": ruleset,
            "scope_ruleset": scope,
            "seccomp_program": seccomp,
            "workdir": self.workdir,
            "pid_namespace": self.pid_namespace,
            "scratch_dirs": self.scratch_dirs,
        }
        self.zygote = self._start_zygote(settings, private_fds)
        for fd in (ruleset, scope):
            if fd is not None:
                os.close(fd)
        # Without cgroups nothing caps the memory summed over a program's processes: then
        # each program gets only a few more tasks than exist now (NPROC counts the uid's).
        extra = config.get("limit_child_tasks")
        self.nproc = None if extra is None else _tasks_of_uid() + 1 + int(extra)

    def _start_zygote(self, settings: dict[str, Any], private_fds: list[int]) -> Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        flush_std()
        pid = os.fork()
        if pid == 0:
            ours.close()
            for fd in private_fds:  # the protocol with the runner stays ours alone
                os.close(fd)
            zygote_main(theirs, settings)
        theirs.close()
        return Zygote(ours, pid)

    def _new_run(self, job: dict[str, Any]) -> JobRun:
        return JobRun(self.zygote, self.devnull, {**job, "nproc": self.nproc})

    # -- jobs

    def serve(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["kind"] == "doctest":
            return {
                "candidates": [
                    self.run_plain({**job, "candidate": candidate})
                    for candidate in job["candidates"]
                ]
            }
        if job["kind"] == "check" and job.get("strict_compare", True):
            return self.run_check(job)
        return self.run_plain(job)

    def run_plain(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job judged by the child's exit and records: run, doctest, in-process check."""
        kind = CHILD_KIND[job["kind"]]
        payload = {"kind": kind}
        for field in ("program", "test", "prelude", "candidate", "examples", "output_limit_bytes"):
            if field in job:
                payload[field] = job[field]
        run = self._new_run(job)
        stopped: str | None = None
        try:
            child = run.spawn(payload, serve=False)
            while not child.exited:
                run.pump()
        except Stopped as exc:
            stopped = exc.reason
        statuses = run.finish()
        records = [frame for frame in child.frames if _valid_record(frame)]
        events = {record["event"] for record in records}
        status_word = statuses.get(child.pid)
        exit_code = _exit_code_of(status_word)
        stderr = run.stderr()
        if stopped is not None:
            status = stopped
        elif run.total_output > run.output_limit:
            status = "output_limit"
        elif "memory" in events:
            status = "memory"
        elif _status_of_death(status_word) is not None:
            status = str(_status_of_death(status_word))
        elif exit_code is None:
            status = "crashed"
        elif kind == "run":
            if exit_code == 0:
                status = "passed"
            elif stderr.rstrip().rpartition("\n")[2].startswith("MemoryError"):
                status = "memory"
            else:
                status = "failed"
        elif kind == "inline_check":
            status = "passed" if "done" in events and exit_code == 0 else "failed"
        else:
            status = "passed" if exit_code == 0 else "failed"
        return {
            "status": status,
            "exit_code": exit_code,
            "stdout": run.stdout(),
            "stderr": stderr,
            "duration_s": run.duration_s(),
            "records": [r for r in records if r["event"] in ("example", "setup_error")],
        }

    def run_check(self, job: dict[str, Any]) -> dict[str, Any]:
        """``check_program``: the test runs here, the program in a child serving calls."""
        run = self._new_run(job)
        stopped: str | None = None
        verdict = None
        try:
            verdict = verify(run, job["program"], job["test"])
        except Stopped as exc:
            stopped = exc.reason
        # With its requests closed a serving child exits at once; letting it go before the
        # zygote wakes spares the zygote copying pages the child still shares with it. The
        # exit statuses matter only to explain a child's death.
        explain = stopped is not None or verdict is None or verdict.findings.lost is not None
        statuses = run.finish(EXIT_GRACE_S if stopped is None else 0.0, statuses=explain)
        stdout, stderr = run.stdout(), run.stderr()
        if verdict is not None:
            stdout += verdict.test_stdout
            if verdict.test_stderr:
                stderr = (stderr + "\n" if stderr and not stderr.endswith("\n") else stderr) + (
                    verdict.test_stderr
                )
        if stopped is not None:
            status = stopped
        elif run.total_output > run.output_limit:
            status = "output_limit"
        else:
            assert verdict is not None
            status = verdict.status
            lost = verdict.findings.lost
            death = _status_of_death(statuses.get(lost.pid)) if lost is not None else None
            if death is not None:
                status = death
            elif status == "failed" and verdict.findings.memory:
                status = "memory"
        return {
            "status": status,
            "exit_code": 0 if status == "passed" else 1,
            "stdout": stdout,
            "stderr": stderr,
            "duration_s": run.duration_s(),
            "records": [],
        }


def _error_result(message: str) -> dict[str, Any]:
    return {
        "status": "crashed",
        "exit_code": None,
        "stdout": "",
        "stderr": message,
        "duration_s": 0.0,
        "records": [],
    }


def main() -> None:
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # a stray print must never corrupt the protocol stream
    config = read_frame(proto_in)
    if config is None:
        return
    # Non-dumpable: the children (same uid) cannot ptrace us or open /proc/<us>/fd or /mem.
    confine.prctl(confine.PR_SET_DUMPABLE, 0)
    if os.getpid() != 1:
        confine.prctl(confine.PR_SET_CHILD_SUBREAPER, 1)
    harness = Harness(config, [proto_in, proto_out])
    write_frame(proto_out, {"ready": True, "python": sys.version.split()[0]})
    while True:
        job = read_frame(proto_in)
        if job is None:
            break
        try:
            result = harness.serve(job)
        except SandboxBroken as exc:
            # A child took the zygote down. A new one cannot be forked from us (our memory
            # now holds tests): this sandbox ends, and the runner reports the job as lost.
            print(f"sandbox harness: {exc}", file=sys.stderr)
            break
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a harness bug must not look like a verdict
            line = traceback.format_exception_only(type(exc), exc)[-1]
            result = _error_result("sandbox harness error: " + line)
        write_frame(proto_out, result)
    harness.zygote.sock.close()
    kill_everything(harness.pid_namespace)
    os._exit(0)  # nothing to flush or finalise; skip interpreter teardown
