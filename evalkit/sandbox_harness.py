"""Fork server that runs *inside* the sandbox; ``evalkit.sandbox`` starts it and feeds it jobs.

One harness process serves many jobs in turn. Each job (or each doctest candidate) runs in a
fresh forked child with its own session, rlimits, scrubbed fds and output pipes; after it ends
every other process the harness can reach is killed before the next job starts, and the
writable scratch directories are emptied. The harness reads length-prefixed JSON jobs on
stdin and answers on stdout; the untrusted child never holds those two pipes.

Verdicts: a "check" child proves that the test ran to its end by writing a per-job random
nonce to a report pipe; doctest children send one nonce-tagged record per example. The
nonce lives in the child's own memory, so code that deliberately searches its process for it
(or installs threads/audit hooks that outlive the program) can still forge a verdict; exit
codes and printed markers cannot. Stdlib only; runs on the sandbox's Python (3.9+, Linux).
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types
from typing import Any

FRAME_HEADER = struct.Struct(">I")
REPORT_FD = 3
REPORT_CAP_BYTES = 4 << 20
STARVATION_CAP = 4.0  # a program never runs longer than this many times its timeout
TEST_CACHE_SIZE = 256  # HumanEval has 164 tests; a batch may cycle through all of them
READ_CHUNK = 65536
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
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


# ---------------------------------------------------------------- framing (harness <-> runner)


def read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    header = read_exact(fd, FRAME_HEADER.size)
    if header is None:
        return None
    body = read_exact(fd, FRAME_HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


def write_frame(fd: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    data = FRAME_HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


# ---------------------------------------------------------------- trusted comparisons for tests

_PLAIN_SCALARS = frozenset({int, float, complex, bool, str, bytes, type(None)})
_NATIVE_METHOD_TYPES = (
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
)
_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__


def _native_comparisons(cls: type) -> bool:
    """True when no class in ``cls``'s MRO defines a comparison method in Python code."""
    for klass in _type_mro(cls):
        namespace = _type_dict(klass)
        for name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__"):
            method = namespace.get(name)
            if method is not None and not isinstance(method, _NATIVE_METHOD_TYPES):
                return False
    return True


def is_trusted_value(value: object, budget: int = 1_000_000) -> bool:
    """Plain data (recursively), or objects whose comparisons are implemented natively."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        cls = type(item)
        if cls in _PLAIN_SCALARS:
            continue
        if not _native_comparisons(cls):
            return False
        # Walk containers with the base type's own iterator: a subclass cannot hide items.
        if isinstance(item, dict):
            stack.extend(dict.keys(item))
            stack.extend(dict.values(item))
        elif isinstance(item, list):
            stack.extend(list.__iter__(item))
        elif isinstance(item, tuple):
            stack.extend(tuple.__iter__(item))
        elif isinstance(item, (set, frozenset)):
            stack.extend(frozenset.__iter__(frozenset(item)))
    return True


_COMPARATORS = {
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
    "Lt": lambda a, b: a < b,
    "LtE": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "GtE": lambda a, b: a >= b,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
}


def trusted_compare(op: str, left: object, right: object) -> bool:
    """A comparison the code under test cannot forge: untrusted operands never compare true."""
    if not (is_trusted_value(left) and is_trusted_value(right)):
        return op in ("NotEq", "NotIn")
    return bool(_COMPARATORS[op](left, right))


def compile_test(test: str, strict: bool) -> types.CodeType:
    """Compile the test; with ``strict``, ``a OP b`` becomes ``__docomplete_compare__(OP, a, b)``."""
    if not strict:
        return compile(test, "<test>", "exec")
    import ast  # imported here: one-off doctest runs never need it

    class StrictComparisons(ast.NodeTransformer):
        def visit_Compare(self, node: ast.Compare) -> ast.AST:
            self.generic_visit(node)
            op_name = type(node.ops[0]).__name__
            if len(node.ops) != 1 or op_name not in _COMPARATORS:
                return node  # chained comparisons keep Python's own semantics
            call = ast.Call(
                func=ast.Name(id="__docomplete_compare__", ctx=ast.Load()),
                args=[ast.Constant(op_name), node.left, node.comparators[0]],
                keywords=[],
            )
            return ast.copy_location(call, node)

    tree = ast.fix_missing_locations(StrictComparisons().visit(ast.parse(test, "<test>")))
    return compile(tree, "<test>", "exec")


# ---------------------------------------------------------------- the untrusted child


def _set_child_limits(job: dict[str, Any]) -> None:
    memory = int(job["memory_mb"]) << 20
    cpu = int(job["timeout_s"]) + 2
    limits = [
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, int(job["file_size_mb"]) << 20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            resource.setrlimit(which, (min(value, resource.getrlimit(which)[1]),) * 2)


# Landlock (Linux >= 5.13), driven through raw syscalls: the numbers are the same on every
# architecture because the calls are newer than the syscall-table unification.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
PR_SET_NO_NEW_PRIVS = 38
LANDLOCK_READ_RIGHTS = 1 | 4 | 8  # execute, read file, read dir


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    try:
        version = _libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0), 1
        )
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def prepare_landlock(writable_dirs: list[str]) -> int | None:
    """Build (once, in the harness) a ruleset: read-only filesystem except ``writable_dirs``,
    no TCP bind/connect, and (ABI >= 6) no signals or abstract sockets to processes outside
    the child's own domain. Returns the ruleset fd, or None without Landlock."""
    abi = landlock_abi()
    if abi < 1:
        return None
    libc = _libc()
    fs_rights = (1 << 13) - 1
    if abi >= 2:
        fs_rights |= 1 << 13  # refer
    if abi >= 3:
        fs_rights |= 1 << 14  # truncate
    if abi >= 5:
        fs_rights |= 1 << 15  # ioctl on devices
    net_rights = 3 if abi >= 4 else 0
    scopes = 3 if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs_rights, net_rights, scopes)[
        : 8 if abi < 4 else 16 if abi < 6 else 24
    ]
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0)
    if ruleset < 0:
        return None
    file_rights = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0)
    rules = [("/", LANDLOCK_READ_RIGHTS), ("/dev/null", file_rights)]
    rules += [(path, fs_rights) for path in writable_dirs]
    for path, rights in rules:
        try:
            target = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, target), 12)
        libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0)
        os.close(target)
    return int(ruleset)


def restrict_self(ruleset: int, libc: Any) -> bool:
    """Enter the Landlock domain (irreversible for this process and its descendants)."""
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    return bool(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0)


def _enter_child(
    job: dict[str, Any],
    out_w: int,
    err_w: int,
    report_w: int,
    harness: Harness,
) -> None:
    os.setsid()
    os.dup2(harness.devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(report_w, REPORT_FD)
    # The harness is non-dumpable (so children cannot reach its fds); the child itself need
    # not be, and must not be for /proc/self to stay writable by it.
    harness.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:  # before Landlock, which makes /proc read-only
        oom = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(oom, b"1000")  # under memory pressure, the untrusted child dies first
        os.close(oom)
    except OSError:
        pass
    if harness.landlock_ruleset is not None:
        restrict_self(harness.landlock_ruleset, harness.libc)
    os.closerange(REPORT_FD + 1, 1 << 16)
    _set_child_limits(job)
    os.chdir(harness.workdir)
    # The harness's environment is already scrubbed, and its std streams never wrote a byte,
    # so the inherited stream objects now simply write to the job's pipes.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _starved_s(pid: int) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (``/proc/PID/schedstat``)."""
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _report(nonce: str, record: dict[str, Any]) -> None:
    data = (nonce + " " + json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(REPORT_FD, data) :]


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(exc: BaseException) -> None:
    """Print a traceback without the harness's own frames (they mean nothing to the user)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _fresh_globals() -> dict[str, Any]:
    return {"__name__": "__main__", "__builtins__": builtins}


def _child_run(job: dict[str, Any], nonce: str) -> int:
    """Like ``python program.py``: exit status 0 means success."""
    namespace = _fresh_globals()
    try:
        exec(compile(job["program"], "<program>", "exec"), namespace)
    except SystemExit as exc:
        return _exit_code_of(exc)
    except MemoryError:
        _report(nonce, {"event": "memory"})
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    return 0


def _child_check(
    job: dict[str, Any],
    nonce: str,
    pristine_builtins: dict[str, Any],
    test_code: types.CodeType | BaseException,
) -> int:
    """Run program then test; only a test that returns normally earns the nonce."""
    namespace = _fresh_globals()
    try:
        if isinstance(test_code, BaseException):
            raise test_code
        exec(compile(job["program"], "<program>", "exec"), namespace)
        # Undo the cheapest tampering the program could have done before the test runs.
        sys.settrace(None)
        sys.setprofile(None)
        # The harness's snapshot, not a copy: copying would touch (and so copy-on-write)
        # every builtin's page in this short-lived process.
        namespace["__builtins__"] = pristine_builtins
        namespace["__docomplete_compare__"] = trusted_compare
        exec(test_code, namespace)
    except SystemExit as exc:
        print(f"program exited with status {exc.code!r} before the test finished", file=sys.stderr)
        return 1
    except MemoryError:
        _report(nonce, {"event": "memory"})
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    _flush_std()
    _report(nonce, {"event": "done"})
    return 0


def _exception_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1]


def _child_doctest(job: dict[str, Any], nonce: str) -> int:
    """Define prelude + candidate, then run each example like doctest does; report outputs."""
    namespace = _fresh_globals()
    try:
        exec(compile(job["prelude"], "<prelude>", "exec"), namespace)
        exec(compile(job["candidate"], "<candidate>", "exec"), namespace)
    except MemoryError:
        _report(nonce, {"event": "memory"})
        return 1
    except BaseException as exc:
        _report(nonce, {"event": "setup_error", "error": _exception_line(exc)})
        return 1
    real_stdout = sys.stdout
    limit = int(job["output_limit_bytes"])
    for index, source in enumerate(job["examples"]):
        captured = io.StringIO()
        sys.stdout = captured
        sys.displayhook = sys.__displayhook__
        exc_line: str | None = None
        try:
            exec(compile(source, f"<doctest example {index}>", "single"), namespace)
        except MemoryError:
            sys.stdout = real_stdout
            _report(nonce, {"event": "memory"})
            return 1
        except BaseException as exc:
            exc_line = _exception_line(exc)
        finally:
            sys.stdout = real_stdout
        output = captured.getvalue()[:limit]
        _report(
            nonce, {"event": "example", "index": index, "output": output, "exception": exc_line}
        )
    _report(nonce, {"event": "done"})
    return 0


# ---------------------------------------------------------------- the harness (trusted side)


class Harness:
    """The trusted side: forks one child per program, supervises it, cleans up after it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.is_pid1 = os.getpid() == 1
        self.scratch_dirs: list[str] = list(config["scratch_dirs"])
        self.workdir = self.scratch_dirs[0]
        self.pristine_builtins = dict(builtins.__dict__)
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.libc = _libc()
        self.landlock_ruleset = (
            prepare_landlock(self.scratch_dirs) if config.get("landlock") else None
        )
        os.environ.clear()
        os.environ.update(
            {
                "HOME": self.workdir,
                "TMPDIR": self.workdir,
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
            }
        )
        self.test_cache: dict[tuple[str, bool], types.CodeType | BaseException] = {}

    # -- process-tree cleanup

    def kill_everything(self) -> None:
        if self.is_pid1:
            # As pid 1 of the sandbox's pid namespace, every other process is ours to kill and
            # every orphan is re-parented to us, so ECHILD means the namespace is empty.
            for _ in range(1000):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    while True:
                        os.waitpid(-1, 0)
                except ChildProcessError:
                    pass
                try:
                    os.kill(-1, 0)
                except ProcessLookupError:
                    return
            return
        # Fallback: we are a child subreaper; orphans of the job come back to us as children.
        for _ in range(1000):
            children = self._children()
            if not children:
                break
            for pid in children:
                for target in (-pid, pid):
                    try:
                        os.kill(target, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass

    def _children(self) -> list[int]:
        me = str(os.getpid())
        try:  # one read when the kernel has CONFIG_PROC_CHILDREN (a single-threaded harness)
            with open(f"/proc/{me}/task/{me}/children") as listing:
                return [int(pid) for pid in listing.read().split()]
        except OSError:
            pass
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.append(int(entry))
        return found

    def clean_scratch(self) -> None:
        for directory in self.scratch_dirs:
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for name in entries:
                path = os.path.join(directory, name)
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        import shutil

                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
                except OSError:
                    pass

    # -- one child

    def compiled_test(self, job: dict[str, Any]) -> types.CodeType | BaseException:
        """The job's test, compiled once per harness (evalkit checks many samples per test)."""
        key = (job["test"], bool(job.get("strict_compare", True)))
        cached = self.test_cache.pop(key, None)
        if cached is None:
            try:
                cached = compile_test(*key)
            except Exception as exc:  # reported by the child, as a failing test
                cached = exc
        self.test_cache[key] = cached  # re-inserted last: the dict keeps LRU order
        while len(self.test_cache) > TEST_CACHE_SIZE:
            del self.test_cache[next(iter(self.test_cache))]
        return cached

    def run_child(self, job: dict[str, Any], kind: str) -> dict[str, Any]:
        nonce = os.urandom(16).hex()
        test_code = self.compiled_test(job) if kind == "check" else ValueError("no test")
        _flush_std()  # nothing buffered may leak into the child's output
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the untrusted child
            code = 1
            try:
                _enter_child(job, out_w, err_w, rep_w, self)
                if kind == "run":
                    code = _child_run(job, nonce)
                elif kind == "check":
                    code = _child_check(job, nonce, self.pristine_builtins, test_code)
                else:
                    code = _child_doctest(job, nonce)
            except MemoryError:
                code = 1
            finally:
                _flush_std()
                os._exit(code)
        for fd in (out_w, err_w, rep_w):
            os.close(fd)
        try:
            return self._supervise(job, pid, nonce, started, out_r, err_r, rep_r)
        finally:
            for fd in (out_r, err_r, rep_r):
                os.close(fd)
            self.kill_everything()
            self.clean_scratch()

    def _supervise(
        self,
        job: dict[str, Any],
        pid: int,
        nonce: str,
        started: float,
        out_r: int,
        err_r: int,
        rep_r: int,
    ) -> dict[str, Any]:
        tail_bytes = int(job["tail_bytes"])
        output_limit = int(job["output_limit_bytes"])
        tails = {out_r: bytearray(), err_r: bytearray()}
        report = bytearray()
        total_output = 0
        killed_for: str | None = None
        timeout_s = float(job["timeout_s"])
        deadline = started + timeout_s
        # Time spent waiting for a CPU because of other load does not count against the
        # program (wall-clock limits are otherwise flaky on a busy machine), up to a hard cap.
        hard_deadline = started + float(job.get("starvation_cap", STARVATION_CAP)) * timeout_s
        pidfd = os.pidfd_open(pid)
        for fd in (out_r, err_r, rep_r):
            os.set_blocking(fd, False)
        poller = select.poll()
        for fd in (out_r, err_r, rep_r, pidfd):
            poller.register(fd, select.POLLIN)
        open_fds = {out_r, err_r, rep_r}

        def drain(fd: int, budget: int) -> int:
            nonlocal total_output
            got = 0
            while got < budget:
                try:
                    chunk = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    break
                if not chunk:
                    open_fds.discard(fd)
                    poller.unregister(fd)
                    break
                got += len(chunk)
                if fd == rep_r:
                    if len(report) < REPORT_CAP_BYTES:
                        report.extend(chunk)
                    continue
                total_output += len(chunk)
                tail = tails[fd]
                tail.extend(chunk)
                if len(tail) > tail_bytes:
                    del tail[: len(tail) - tail_bytes]
            return got

        exited = False
        try:
            while not exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    deadline = min(started + timeout_s + _starved_s(pid), hard_deadline)
                    remaining = deadline - time.monotonic()
                if remaining <= 0:
                    killed_for = "timeout"
                    break
                for fd, _event in poller.poll(remaining * 1000):
                    if fd == pidfd:
                        exited = True
                    elif fd in open_fds:
                        drain(fd, 1 << 20)
                if total_output > output_limit:
                    killed_for = "output_limit"
                    break
            if killed_for is None:
                # The child is gone: take what is already buffered, but never wait for a
                # leftover daemon that still holds the pipes open.
                for fd in list(open_fds):
                    drain(fd, output_limit + READ_CHUNK)
                if total_output > output_limit:
                    killed_for = "output_limit"
        finally:
            poller.unregister(pidfd)
            os.close(pidfd)
        if killed_for is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, wait_status = os.waitpid(pid, 0)
        duration = time.monotonic() - started
        records = []
        for line in bytes(report).split(b"\n"):
            prefix, _, body = line.partition(b" ")
            if prefix.decode(errors="replace") == nonce and body:
                try:
                    records.append(json.loads(body))
                except ValueError:
                    pass
        events = {record.get("event") for record in records}
        exit_code: int | None = None
        signal_number: int | None = None
        if os.WIFEXITED(wait_status):
            exit_code = os.WEXITSTATUS(wait_status)
        elif os.WIFSIGNALED(wait_status):
            signal_number = os.WTERMSIG(wait_status)
            exit_code = -signal_number
        stderr_tail = bytes(tails[err_r]).decode(errors="replace")
        if killed_for is not None:
            status = killed_for
        elif "memory" in events:
            status = "memory"
        elif signal_number == signal.SIGXCPU:
            status = "timeout"
        elif signal_number == signal.SIGKILL:
            status = "memory"  # we did not send it: the kernel's OOM killer did (cgroup limit)
        elif signal_number is not None:
            status = "crashed"
        elif job["kind"] == "run":
            if exit_code == 0:
                status = "passed"
            elif stderr_tail.rstrip().rpartition("\n")[2].startswith("MemoryError"):
                status = "memory"
            else:
                status = "failed"
        else:
            status = "passed" if "done" in events and exit_code == 0 else "failed"
        return {
            "status": status,
            "exit_code": exit_code,
            "stdout": bytes(tails[out_r]).decode(errors="replace"),
            "stderr": stderr_tail,
            "duration_s": duration,
            "records": [r for r in records if r.get("event") in ("example", "setup_error")],
        }

    def serve(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["kind"] in ("run", "check"):
            return self.run_child(job, job["kind"])
        results = []
        for candidate in job["candidates"]:
            results.append(self.run_child({**job, "candidate": candidate}, "doctest"))
        return {"candidates": results}


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main() -> None:
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # a stray print must never corrupt the protocol stream
    config = read_frame(proto_in)
    if config is None:
        return
    # Non-dumpable: the children (same uid) cannot open /proc/<harness>/fd/* or ptrace us,
    # so they cannot reach the result stream.
    _prctl(PR_SET_DUMPABLE, 0)
    harness = Harness(config)
    if not harness.is_pid1:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    for name in config.get("warm_modules", ()):
        try:
            __import__(name)
        except ImportError:
            pass
    # Children then never touch the harness's objects during collection, so fewer pages are
    # copied on write after each fork.
    gc.collect()
    gc.freeze()
    write_frame(proto_out, {"ready": True, "python": sys.version.split()[0]})
    while True:
        job = read_frame(proto_in)
        if job is None:
            break
        try:
            result = harness.serve(job)
        except Exception as exc:  # a harness bug must not look like a verdict
            result = {"status": "crashed", "exit_code": None, "stdout": "", "duration_s": 0.0}
            result["stderr"] = "sandbox harness error: " + _exception_line(exc)
            result["records"] = []
        write_frame(proto_out, result)
    harness.kill_everything()
    os._exit(0)  # nothing to flush or finalise; skip interpreter teardown


if __name__ == "__main__":
    main()
