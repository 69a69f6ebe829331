"""What the untrusted child process does once confined: run, serve calls, or run doctests.

Runs inside the sandbox in a fresh process forked by the zygote (``sandbox_zygote``). Its
only channels are fd 0 (/dev/null), 1 and 2 (its own output pipes), 3 (its job, read-only),
4 (requests) and 5 (replies / records). Nothing it can reach holds a test, an expected
value, a verdict or a key: whatever it writes on fd 5 is data that a process which never ran
candidate code checks.
"""

from __future__ import annotations

import builtins
import io
import marshal
import os
import sys
import traceback
import types
from typing import Any

from evalkit.sandbox_wire import (
    FRAME_HEADER,
    Unsupported,
    decode,
    encode,
    exception_message,
    exception_names,
    pack_frame,
    write_frame,
)

JOB_FD = 3
REQUEST_FD = 4
REPLY_FD = 5


def read_job(fd: int = JOB_FD) -> dict[str, Any]:
    """The job the harness wrote to a memory file (marshal: it comes from the trusted side)."""
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    os.close(fd)
    job: dict[str, Any] = marshal.loads(b"".join(chunks))
    return job


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _send(record: dict[str, Any]) -> None:
    try:
        write_frame(REPLY_FD, record)
    except OSError:
        pass


def _fresh_globals() -> dict[str, Any]:
    return {"__name__": "__main__", "__builtins__": builtins}


def _print_user_traceback(exc: BaseException) -> None:
    """A traceback without the sandbox's own frames (they mean nothing to the user)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<sandbox:")
    ]
    sys.stderr.write("".join(traceback.format_list(frames)))
    sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _exception_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1]


# ---------------------------------------------------------------- kinds of job


def child_run(job: dict[str, Any]) -> int:
    """Like ``python program.py``: exit status 0 means success."""
    namespace = _fresh_globals()
    try:
        exec(compile(job["program"], "<program>", "exec"), namespace)
    except SystemExit as exc:
        return _exit_code_of(exc)
    except MemoryError:
        _send({"event": "memory"})
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    return 0


def child_inline_check(job: dict[str, Any]) -> int:
    """Program then test in this one process (``strict_compare=False``): trusts the program."""
    namespace = _fresh_globals()
    try:
        exec(compile(job["program"], "<program>", "exec"), namespace)
        sys.settrace(None)
        sys.setprofile(None)
        exec(compile(job["test"], "<test>", "exec"), namespace)
    except SystemExit as exc:
        print(f"program exited with status {exc.code!r} before the test finished", file=sys.stderr)
        return 1
    except MemoryError:
        _send({"event": "memory"})
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    flush_std()
    _send({"event": "done"})
    return 0


def child_doctest(job: dict[str, Any]) -> int:
    """Define prelude + candidate, run each example source like doctest; report what it showed.

    The job holds the example sources only: the expected outputs stay with the caller.
    """
    namespace = _fresh_globals()
    try:
        exec(compile(job["prelude"], "<prelude>", "exec"), namespace)
        exec(compile(job["candidate"], "<candidate>", "exec"), namespace)
    except MemoryError:
        _send({"event": "memory"})
        return 1
    except BaseException as exc:
        _send({"event": "setup_error", "error": _exception_line(exc)})
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
            _send({"event": "memory"})
            return 1
        except BaseException as exc:
            exc_line = _exception_line(exc)
        finally:
            sys.stdout = real_stdout
        output = captured.getvalue()[:limit]
        _send({"event": "example", "index": index, "output": output, "exception": exc_line})
    return 0


# ---------------------------------------------------------------- serving calls for a verifier


def describe(value: Any) -> dict[str, Any]:
    """How a verifier should see one of our objects: data, a module, a callable, or opaque."""
    if isinstance(value, types.FunctionType):  # the usual case: checked first, it is cheap
        return {"f": 1}
    if isinstance(value, types.ModuleType):
        return {"m": str(getattr(value, "__name__", ""))}
    try:
        return {"v": encode(value)}
    except (Unsupported, RecursionError):
        pass
    if callable(value):
        return {"f": 1}
    return {"o": type(value).__qualname__}


def _resolve(namespace: dict[str, Any], path: list[str]) -> Any:
    value = namespace[path[0]]
    for name in path[1:]:
        value = getattr(value, name)
    return value


_MUTABLE = (list, dict, set, bytearray)


def _call(namespace: dict[str, Any], path: list[str], raw_args: Any, raw_kwargs: Any) -> Any:
    args = [decode(arg) for arg in raw_args]
    kwargs = {str(key): decode(value) for key, value in raw_kwargs.items()}
    # Arguments the call changes in place go back, so the test sees them changed (as it
    # would if it shared our process); a snapshot tells which changed.
    before = [marshal.dumps(a, 2) if type(a) in _MUTABLE else None for a in args]
    try:
        result = _resolve(namespace, path)(*args, **kwargs)
    except BaseException as exc:
        reply: dict[str, Any] = {"e": exception_names(exc), "m": exception_message(exc)}
    else:
        try:
            reply = {"r": encode(result)}
        except Unsupported as exc:
            reply = {"x": f"unsupported return type: {exc}"}
        except RecursionError:
            reply = {"x": "unsupported return value: nested too deeply"}
    written = []
    for index, snapshot in enumerate(before):
        if snapshot is not None:
            try:
                if marshal.dumps(args[index], 2) == snapshot:
                    continue
            except ValueError:
                pass
            try:
                written.append([index, encode(args[index])])
            except (Unsupported, RecursionError):
                continue
    if written:
        reply["w"] = written
    return reply


def child_serve(job: dict[str, Any]) -> int:
    """Run the program, then answer a verifier's requests (calls, attribute reads) until EOF.

    Requests are marshal tuples ``(op, path, args, kwargs)`` from the harness (the trusted
    side; args in the tagged encoding); replies are JSON frames the harness checks as data.
    """
    namespace = _fresh_globals()
    try:
        exec(compile(job["program"], job.get("filename", "<program>"), "exec"), namespace)
    except SystemExit as exc:
        print(f"program exited with status {exc.code!r} before the test ran", file=sys.stderr)
        _send({"error": "exit"})
        return 1
    except MemoryError:
        _send({"error": "memory"})
        return 1
    except BaseException as exc:
        _print_user_traceback(exc)
        _send({"error": "exception"})
        return 1
    flush_std()
    ready = {name: describe(namespace[name]) for name in job["names"] if name in namespace}
    replies = [pack_frame({"ready": ready})]
    # Requests sent ahead are already waiting: answer them with "ready", in one write.
    os.set_blocking(REQUEST_FD, False)
    try:
        pending = os.read(REQUEST_FD, 1 << 16)
    except OSError:
        pending = b""
    os.set_blocking(REQUEST_FD, True)
    while True:
        if len(pending) < 4 or len(pending) < 4 + FRAME_HEADER.unpack_from(pending)[0]:
            # No complete request left: send the replies gathered so far, then wait.
            try:
                if replies:
                    data = b"".join(replies)
                    replies.clear()
                    while data:
                        data = data[os.write(REPLY_FD, data) :]
                chunk = os.read(REQUEST_FD, 1 << 16)
            except OSError:
                return 1
            if not chunk:
                return 0
            pending += chunk
            continue
        size = 4 + FRAME_HEADER.unpack_from(pending)[0]
        body, pending = pending[4:size], pending[size:]
        try:
            op, path, raw_args, raw_kwargs = marshal.loads(body)
            if op == "call":
                reply = _call(namespace, path, raw_args, raw_kwargs)
            else:
                reply = describe(_resolve(namespace, path))
        except MemoryError:
            reply = {"e": ["MemoryError"], "m": ""}
        except BaseException as exc:
            reply = {"e": exception_names(exc), "m": exception_message(exc)}
        flush_std()
        try:
            replies.append(pack_frame(reply))
        except (ValueError, MemoryError):
            return 1


def warm_up() -> None:
    """Exercise the serving path in the zygote, so every child starts with its bytecode
    already specialised (CPython 3.11+ rewrites hot code in place; done once here, not in
    each short-lived child)."""
    namespace = {"echo": lambda *args, **kwargs: args}
    samples = [5, "text", [1, 2, 3], (1, [2.5, None]), {"k": {1, 2}}, True]
    for _ in range(16):
        for value in samples:
            reply = _call(namespace, ["echo"], [encode(value)], {"key": encode(value)})
            pack_frame(reply)
            decode(reply["r"])
            describe(value)


CHILD_KINDS = {
    "run": child_run,
    "inline_check": child_inline_check,
    "doctest": child_doctest,
    "serve": child_serve,
}
