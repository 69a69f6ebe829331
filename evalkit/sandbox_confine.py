"""In-process confinement of one untrusted child: rlimits, Landlock, seccomp, prctl flags.

Runs inside the sandbox (and is probed from the host); stdlib + ctypes only, Python 3.9+.
Landlock (Linux >= 5.13) limits the filesystem to reading the interpreter's files and
writing the scratch dirs, forbids TCP bind/connect (ABI >= 4) and, from ABI 6, signals and
abstract Unix sockets to processes outside the child's domain. The seccomp filter makes
``socket(2)`` and ``io_uring_setup(2)`` fail, so no new socket of any family (Unix, IP,
netlink, packet) can be opened; ``socketpair(2)`` stays allowed (it reaches nobody).
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import struct
from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

# Landlock syscalls have the same numbers on every architecture (newer than the unification).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_READ_RIGHTS = 1 | 4 | 8  # execute, read file, read dir
LANDLOCK_READ_FILE = 4

# seccomp: architecture tags and the syscalls we refuse, per architecture.
_SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, {"socket": 41, "io_uring_setup": 425}),
    "aarch64": (0xC00000B7, {"socket": 198, "io_uring_setup": 425}),
}
_X32_SYSCALL_BIT = 0x40000000
_EACCES = 13


@functools.lru_cache(maxsize=1)
def libc() -> Any:
    handle = ctypes.CDLL(None, use_errno=True)
    handle.syscall.restype = ctypes.c_long
    return handle


def prctl(option: int, value: int) -> bool:
    try:
        return bool(libc().prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def set_process_name(name: str) -> None:
    """Name the process for ``ps`` / ``/proc/PID/comm`` (what tests look processes up by)."""
    try:
        libc().prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- rlimits


def set_limits(memory_mb: int, cpu_s: int, file_size_mb: int, nproc: int | None) -> None:
    """Per-process limits for the untrusted child (inherited by everything it starts)."""
    limits = [
        (resource.RLIMIT_AS, memory_mb << 20),
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, file_size_mb << 20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ]
    if nproc is not None:
        limits.append((resource.RLIMIT_NPROC, nproc))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            resource.setrlimit(which, (min(value, resource.getrlimit(which)[1]),) * 2)


# ---------------------------------------------------------------- Landlock


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    try:
        version = libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0), 1
        )
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def prepare_landlock(readable: list[str], writable: list[str]) -> int | None:
    """Build (once, in the harness) the child's ruleset: read ``readable`` (plus the harmless
    devices), read and write ``writable``, nothing else; no TCP bind/connect; and (ABI >= 6)
    no signals or abstract sockets out of the domain. Returns the ruleset fd, or None."""
    abi = landlock_abi()
    if abi < 1:
        return None
    handle = libc()
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
    ruleset = handle.syscall(SYS_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0)
    if ruleset < 0:
        return None
    read_write_file = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0)
    rules = [(path, LANDLOCK_READ_RIGHTS) for path in readable]
    rules += [("/dev/null", read_write_file)]
    rules += [(path, LANDLOCK_READ_FILE) for path in ("/dev/zero", "/dev/urandom", "/dev/random")]
    rules += [(path, fs_rights) for path in writable]
    for path, rights in rules:
        try:
            target = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if not os.path.isdir(path):
            rights &= read_write_file | 1  # file rules take file rights only
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, target), 12)
        handle.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0)
        os.close(target)
    return int(ruleset)


def prepare_scope_ruleset() -> int | None:
    """A ruleset that only scopes signals and abstract sockets (ABI >= 6): entering it gives
    each child a domain of its own, nested in the zygote's, so it cannot signal the zygote."""
    if landlock_abi() < 6:
        return None
    attr = struct.pack("=QQQ", 0, 0, 3)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc().syscall(SYS_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0)
    return int(ruleset) if ruleset >= 0 else None


def restrict_self(ruleset: int) -> bool:
    """Enter the Landlock domain (irreversible for this process and its descendants)."""
    handle = libc()
    handle.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    return bool(handle.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0)


# ---------------------------------------------------------------- seccomp


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def seccomp_program() -> bytes | None:
    """A BPF filter refusing new sockets (EACCES) on this architecture, or None if unknown."""
    arch = _SECCOMP_ARCHES.get(os.uname().machine)
    if arch is None:
        return None
    audit_arch, numbers = arch
    ld_w_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | _EACCES
    denied = sorted(numbers.values())
    # 0 load arch; 1 foreign arch -> deny; 2 load nr; 3 x32 -> deny; then one test per syscall.
    body = [_bpf(ld_w_abs, 0, 0, 4)]
    # Jumps are relative to the next instruction; "deny" is the last of 6 + len(denied).
    body.append(_bpf(jeq, 0, 3 + len(denied), audit_arch))
    body.append(_bpf(ld_w_abs, 0, 0, 0))
    body.append(_bpf(jge, len(denied) + 1, 0, _X32_SYSCALL_BIT))
    for index, number in enumerate(denied):
        body.append(_bpf(jeq, len(denied) - index, 0, number))
    body.append(_bpf(ret, 0, 0, allow))
    body.append(_bpf(ret, 0, 0, deny))
    return b"".join(body)


def seccomp_available() -> bool:
    if seccomp_program() is None:
        return False
    try:
        return int(libc().prctl(PR_GET_SECCOMP, 0, 0, 0, 0)) >= 0
    except (OSError, AttributeError):
        return False


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(program: bytes) -> bool:
    """Install the filter on this process (inherited by its children, never removable)."""
    handle = libc()
    filters = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(filters, ctypes.c_void_p))
    handle.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    return bool(handle.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0)
