"""Which isolation layers this machine offers, which one a run uses, and bubblewrap's argv.

``auto`` means bubblewrap or nothing: without it, running untrusted code raises
``SandboxUnavailable`` naming the fixes. The weaker fallback (uid drop + Landlock +
seccomp + rlimits, no namespaces) runs only when asked for by name (``unsafe-fallback``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from evalkit import sandbox_cgroups
from evalkit.sandbox_confine import landlock_abi, seccomp_available

logger = logging.getLogger("evalkit.sandbox")

SANDBOX_UID = 65534
SCRATCH_MB = 64
ISOLATIONS = ("auto", "bwrap", "unsafe-fallback", "fallback")  # "fallback": the old name
ISOLATION_ENV = "DOCOMPLETE_SANDBOX_ISOLATION"
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin", "/sbin")
Isolation = str
FIXES = (
    "install bubblewrap (apt-get install bubblewrap), or allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; on Ubuntu also "
    "kernel.apparmor_restrict_unprivileged_userns=0), or accept weaker isolation explicitly "
    f"with --isolation unsafe-fallback ({ISOLATION_ENV}=unsafe-fallback)"
)


class SandboxError(RuntimeError):
    """The sandbox itself cannot run here (not a verdict about the program)."""


class JobsCancelled(Exception):
    """The caller stopped a batch of sandbox jobs (its ``cancel`` event was set); the sandboxes
    running them were killed."""


class SandboxUnavailable(SandboxError):
    """No strong isolation on this machine and no explicit opt-in to the weak fallback.

    The message is one line naming the fixes; callers show it once and carry on without
    running untrusted code (the LSP keeps completing, without its doctest filter)."""


@dataclasses.dataclass(frozen=True)
class SandboxLayers:
    """What this machine supports (detected once per process)."""

    python: str
    python_paths: tuple[str, ...]  # the interpreter's files outside the system dirs
    bwrap: str | None
    bwrap_error: str | None
    drop_uid: bool
    cgroups: sandbox_cgroups.CgroupSupport
    landlock_abi: int
    seccomp: bool
    python_magic: str = ""  # the sandbox interpreter's bytecode magic, hex

    def readable(self) -> list[str]:
        """What an untrusted child may read (Landlock): system dirs, the interpreter's files."""
        return [*SYSTEM_DIRS, *self.python_paths]

    def describe(self, isolation: Isolation = "auto") -> list[tuple[str, bool, str]]:
        """``(layer, active, detail)`` rows, exactly as a run with ``isolation`` would use them."""
        try:
            mode = resolve_isolation(isolation, self, warn=False)
        except SandboxUnavailable:
            mode = "refused"
        if mode == "bwrap":
            bwrap_detail = self.bwrap or ""
        elif self.bwrap is not None:
            bwrap_detail = "available, not used (unsafe-fallback requested)"
        else:
            bwrap_detail = self.bwrap_error or "unavailable"
        readable = ", ".join(self.readable())
        return [
            ("interpreter", True, self.python),
            (
                "bubblewrap (namespaces, no network, only system dirs visible, tmpfs scratch)",
                mode == "bwrap",
                bwrap_detail,
            ),
            (
                "unprivileged uid (root drops to it)",
                self.drop_uid,
                f"uid {SANDBOX_UID}" if self.drop_uid else f"runs as you (uid {os.getuid()})",
            ),
            ("rlimits (AS, CPU, FSIZE, NOFILE, CORE=0; NPROC)", True, "per program"),
            (
                "Landlock: reads only system dirs + interpreter + scratch",
                self.landlock_abi > 0,
                f"ABI {self.landlock_abi}: {readable}" if self.landlock_abi else "kernel lacks it",
            ),
            (
                "Landlock: writes only scratch",
                self.landlock_abi > 0,
                f"ABI {self.landlock_abi}" if self.landlock_abi else "kernel lacks it",
            ),
            (
                "Landlock: no TCP bind/connect",
                self.landlock_abi >= 4,
                "ABI >= 4" if self.landlock_abi >= 4 else "needs ABI 4",
            ),
            (
                "Landlock: no signals / abstract sockets out of the sandbox",
                self.landlock_abi >= 6,
                "ABI >= 6" if self.landlock_abi >= 6 else "needs ABI 6",
            ),
            (
                "seccomp: no new sockets (socket(2), io_uring)",
                self.seccomp,
                os.uname().machine if self.seccomp else "unsupported architecture or kernel",
            ),
            (
                "process-tree kill",
                mode != "refused",
                "kill(-1) in the sandbox's pid namespace" if mode == "bwrap" else "child subreaper",
            ),
            (
                "cgroups (memory + pids per sandbox)",
                self.cgroups.mode != "none",
                self.cgroups.detail,
            ),
            (
                "unsafe-fallback (no namespaces: weaker isolation)",
                mode == "fallback",
                "explicitly requested" if mode == "fallback" else "not used",
            ),
        ]


def _as_sandbox_user() -> None:
    """preexec step: drop root to the unprivileged sandbox uid (NPROC is not enforced on root)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(SANDBOX_UID)
        os.setuid(SANDBOX_UID)


def scrubbed_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


def _probe(argv: list[str], timeout: float = 10.0) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            argv,
            preexec_fn=_as_sandbox_user,
            env=scrubbed_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    detail = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    return proc.returncode == 0, detail


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


# The interpreter reports the files it needs: its stdlib, extension and site dirs, its
# shared library, itself. Never a parent directory "just in case" (~/bin/python3 must not
# expose ~).
_PROBE = (
    "import json, os, sys, sysconfig, importlib.util; assert sys.version_info >= (3, 9); "
    "import ctypes; "
    "paths = sysconfig.get_paths(); "
    "lib = sysconfig.get_config_var('LDLIBRARY') if sysconfig.get_config_var('Py_ENABLE_SHARED') "
    "else None; "
    "print(json.dumps({'executable': os.path.realpath(sys.executable), "
    "'dirs': [paths[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib') if k in paths], "
    "'library': os.path.join(sysconfig.get_config_var('LIBDIR') or '', lib) if lib else None, "
    "'magic': importlib.util.MAGIC_NUMBER.hex()}))"
)


def _outside_system(path: str) -> bool:
    return not any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS)


def interpreter_paths(report: Mapping[str, object]) -> tuple[str, ...]:
    """The real paths an interpreter needs that are not already in the system dirs."""
    dirs = report.get("dirs")
    wanted = [p for p in dirs if isinstance(p, str)] if isinstance(dirs, list) else []
    for key in ("executable", "library"):
        value = report.get(key)
        if isinstance(value, str) and value:
            wanted.append(value)
    found: list[str] = []
    for path in wanted:
        real = os.path.realpath(path)
        covered = any(real == f or real.startswith(f + "/") for f in found)
        if real != "/" and os.path.exists(real) and _outside_system(real) and not covered:
            found.append(real)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def detect_layers() -> SandboxLayers:
    """Find an interpreter the sandbox uid can run, and which layers work on this machine."""
    python = None
    paths: tuple[str, ...] = ()
    magic = ""
    for candidate in _interpreter_candidates():
        ok, detail = _probe([candidate, "-I", "-c", _PROBE])
        if ok:
            try:
                report = json.loads(detail.splitlines()[-1])
            except (ValueError, IndexError):
                continue
            python = candidate
            paths = interpreter_paths(report)
            magic = str(report.get("magic", ""))
            break
    if python is None:
        raise SandboxError(
            "no Python interpreter is runnable by the sandbox user (uid "
            f"{SANDBOX_UID}); install python3 from the system packages or set "
            "DOCOMPLETE_SANDBOX_PYTHON to a world-readable interpreter"
        )
    drop_uid = os.geteuid() == 0
    cgroups = sandbox_cgroups.detect()
    bwrap = shutil.which("bwrap")
    bwrap_error = None
    if bwrap is None:
        bwrap_error = "bubblewrap (bwrap) is not installed"
    else:
        ok, detail = _probe(
            [*bwrap_argv(bwrap, paths, ["--chdir", "/"]), python, "-I", "-c", "pass"]
        )
        if not ok:
            bwrap = None
            bwrap_error = f"bubblewrap cannot create namespaces here ({detail[-200:]})"
    return SandboxLayers(
        python,
        paths,
        bwrap,
        bwrap_error,
        drop_uid,
        cgroups,
        landlock_abi(),
        seccomp_available(),
        magic,
    )


def resolve_isolation(isolation: Isolation, layers: SandboxLayers, warn: bool = True) -> str:
    """``bwrap`` or ``fallback`` for a requested isolation; raises SandboxUnavailable when
    ``auto`` / ``bwrap`` cannot be had (``auto`` reads ``DOCOMPLETE_SANDBOX_ISOLATION``)."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    if isolation == "auto":
        isolation = os.environ.get(ISOLATION_ENV, "auto")
        if isolation not in ISOLATIONS:
            raise SandboxError(f"{ISOLATION_ENV}={isolation!r}: use auto, bwrap or unsafe-fallback")
    if isolation in ("unsafe-fallback", "fallback"):
        if warn:
            _warn_fallback_once(layers)
        return "fallback"
    if layers.bwrap is None:
        raise SandboxUnavailable(
            f"refusing to run untrusted code: {layers.bwrap_error}. To fix: {FIXES}"
        )
    return "bwrap"


@functools.lru_cache(maxsize=1)
def _warn_fallback_once(layers: SandboxLayers) -> None:
    missing = [name for name, active, _ in layers.describe("unsafe-fallback") if not active]
    logger.warning(
        "running generated code with WEAKER isolation (unsafe-fallback: no namespaces)%s",
        "; inactive layers: " + "; ".join(missing) if missing else "",
    )


def bwrap_argv(bwrap: str, paths: Iterable[str], extra: Sequence[str] = ()) -> list[str]:
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
    for path in paths:
        argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in ("/tmp", "/dev/shm"):
        argv += ["--size", str(SCRATCH_MB << 20), "--tmpfs", scratch]
    argv += list(extra)
    return argv
