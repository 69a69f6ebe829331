"""The sandbox run by a normal user on a machine without bubblewrap.

``auto`` must refuse (with the fixes named); the explicit ``unsafe-fallback`` must still keep
the user's own files, Unix sockets (ssh-agent, docker.sock) and the network out of reach,
and cap the processes a program may start. The tests run as root here, so the sandbox is
started by a real unprivileged user (uid 1000 via ``setpriv``) with a PATH without bwrap,
using the system interpreter that user can run. Nothing is faked: real user, real kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USER_UID = 1000
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root (to become another user), setpriv and /usr/bin/python3",
)

# What the sandboxed program tries; it prints one word per attempt.
PROBE = r"""
import json, os, socket
results = {"uid": os.getuid()}
def attempt(name, action):
    try:
        action()
        results[name] = "ALLOWED"
    except OSError as exc:
        results[name] = type(exc).__name__
attempt("read own 0600 file", lambda: open("__OWN__").read())
attempt("read another user's 0600 file", lambda: open("__OTHER__").read())
attempt("read world-readable file", lambda: open("__PUBLIC__").read())
attempt("read /etc/passwd", lambda: open("/etc/passwd").read())
attempt("list the user's dir", lambda: os.listdir("__DIR__"))
attempt("write next to it", lambda: open("__DIR__/planted", "w").write("x"))
def unix():
    s = socket.socket(socket.AF_UNIX)
    s.connect("__SOCK__")
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"leak", ("127.0.0.1", __UDP__))
def tcp():
    socket.create_connection(("127.0.0.1", __TCP__), timeout=2)
attempt("connect to a unix socket", unix)
attempt("send udp", udp)
attempt("connect tcp", tcp)
def processes():
    children = []
    try:
        for _ in range(8):
            pid = os.fork()
            if pid == 0:
                import time
                time.sleep(2)
                os._exit(0)
            children.append(pid)
    finally:
        results["processes started"] = len(children)
        for pid in children:
            os.waitpid(pid, 0)
attempt("start 8 processes", processes)
print(json.dumps(results))
"""

DRIVER = r"""
import json, sys
from evalkit import sandbox
out = {}
try:
    sandbox.run("print(1)")
    out["auto"] = "ran"
except sandbox.SandboxUnavailable as exc:
    out["auto"] = str(exc)
result = sandbox.run(sys.stdin.read(), isolation="unsafe-fallback", timeout_s=20)
out["status"] = result.status
out["stdout"] = result.stdout
out["stderr"] = result.stderr
print(json.dumps(out))
"""


def _as_user() -> None:
    os.setgroups([])
    os.setgid(USER_UID)
    os.setuid(USER_UID)


def _run_as_user(
    code: str, stdin: str = "", *args: str, path: str = "/nonexistent"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        preexec_fn=_as_user,
        env={"PATH": path, "PYTHONPATH": str(REPO), "HOME": "/nonexistent"},
    )


class Targets:
    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="docomplete-user-"))
        os.chown(self.directory, USER_UID, USER_UID)
        self.own = self.directory / "id_ed25519"
        self.own.write_text("user secret")
        os.chown(self.own, USER_UID, USER_UID)
        self.own.chmod(0o600)
        self.other = self.directory / "root-only.txt"  # another user's (root's) secret
        self.other.write_text("root secret")
        self.other.chmod(0o600)
        self.public = self.directory / "notes.txt"
        self.public.write_text("world readable")
        self.public.chmod(0o644)
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix_path = self.directory / "agent.sock"
        self.unix.bind(str(self.unix_path))
        self.unix_path.chmod(0o777)
        self.unix.listen()
        self.unix.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp.setblocking(False)

    def program(self) -> str:
        values = {
            "__OWN__": str(self.own),
            "__OTHER__": str(self.other),
            "__PUBLIC__": str(self.public),
            "__DIR__": str(self.directory),
            "__SOCK__": str(self.unix_path),
            "__UDP__": str(self.udp.getsockname()[1]),
            "__TCP__": str(self.tcp.getsockname()[1]),
        }
        text = PROBE
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    def close(self) -> None:
        for sock in (self.unix, self.udp, self.tcp):
            sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def targets() -> Iterator[Targets]:
    made = Targets()
    try:
        yield made
    finally:
        made.close()


def test_auto_refuses_and_the_unsafe_fallback_still_contains_a_user_run(targets: Targets) -> None:
    done = _run_as_user(DRIVER, targets.program())
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    refusal = out["auto"]
    assert refusal.startswith("refusing to run untrusted code: bubblewrap")
    for fix in ("apt-get install bubblewrap", "user namespaces", "--isolation unsafe-fallback"):
        assert fix in refusal

    assert out["status"] == "passed", out
    probe = json.loads(out["stdout"])
    assert probe.pop("uid") == USER_UID  # the user's own identity: only the layers protect
    started = probe.pop("processes started")
    assert started < 8  # no cgroups for this user: a small per-program process budget
    assert probe.pop("start 8 processes") != "ALLOWED"
    assert {name: outcome for name, outcome in probe.items() if outcome == "ALLOWED"} == {}
    assert "planted" not in os.listdir(targets.directory)
    for listener in (targets.unix, targets.tcp):
        with pytest.raises(BlockingIOError):
            listener.accept()
    with pytest.raises(BlockingIOError):
        targets.udp.recv(100)


def test_sandbox_check_as_a_user_names_the_active_layers() -> None:
    code = "import sys; from server.cli import main; sys.exit(main())"
    done = _run_as_user(code, "", "sandbox", "check", "--json", "--isolation", "unsafe-fallback")
    assert done.returncode == 0, done.stderr
    layers = {row["layer"]: row["active"] for row in json.loads(done.stdout)["layers"]}
    assert layers["Landlock: reads only system dirs + interpreter + scratch"]
    assert layers["seccomp: no new sockets (socket(2), io_uring)"]
    assert not layers["unprivileged uid (root drops to it)"]
    assert not layers[
        "bubblewrap (namespaces, no network, only system dirs visible, tmpfs scratch)"
    ]
    refused = _run_as_user(code, "", "sandbox", "check", "--json")
    assert refused.returncode == 1 and "bubblewrap" in json.loads(refused.stdout)["refused"]


@pytest.mark.parametrize(
    "isolation", ["unsafe-fallback", pytest.param("bwrap", marks=pytest.mark.bwrap)]
)
def test_many_processes_cannot_sum_past_the_memory_limit_without_cgroups(isolation: str) -> None:
    """6 x 200 MiB under --memory 256, as a user the cgroups do not cover here."""
    if isolation == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap unavailable")
    attack = (REPO / "tests/evalkit/attacks/memory_many_processes.py").read_text()
    attack = attack.replace("__TOKEN__", "dcmanyproc")
    code = (
        "import json, sys\nfrom evalkit import sandbox\n"
        "attack = sandbox.check_program(sys.stdin.read(), 'assert ATTACK_SUCCEEDED\\n',"
        f" memory_mb=256, timeout_s=20, isolation={isolation!r})\n"
        "honest = sandbox.check_program('def add(a, b):\\n    return a + b\\n',"
        f" 'assert add(1, 2) == 3\\n', isolation={isolation!r})\n"
        "print(json.dumps([attack.status, attack.stderr[-500:], honest.status]))\n"
    )
    done = _run_as_user(code, attack, path="/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    status, stderr, honest = json.loads(done.stdout)
    assert status != "passed", stderr
    assert honest == "passed"
