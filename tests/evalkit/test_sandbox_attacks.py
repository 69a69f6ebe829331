"""The attack corpus (tests/evalkit/attacks/) against the real sandbox, in every isolation mode.

Each attack runs through ``check_many`` followed by a harmless canary in the same batch, and
containment is checked from the outside: the verdict is not "passed", host files are intact,
the loopback listener saw no connection, no marked process survives, and the runner still
serves the canary. The "fallback without Landlock" mode simulates an older kernel by hiding
the Landlock layer from the runner (a fake of the layer detection only; the processes and
limits are real).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit import sandbox, sandbox_pool

ATTACKS = Path(__file__).with_name("attacks")
CANARY = ("value = 6 * 7\n", "assert value == 42\n")
DEFAULT_TEST = "assert ATTACK_SUCCEEDED\n"
ADD_TEST = "assert add(2, 2) == 4\nassert 4 == add(2, 2)\nassert add(1, 1) in [2]\n"

# attack file -> (test, timeout_s, allowed statuses); None allows any non-passing status.
EXPECTED: dict[str, tuple[str, float, set[str] | None]] = {
    "infinite_loop.py": (DEFAULT_TEST, 1.0, {"timeout"}),
    "fork_bomb.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "memory_hog.py": (DEFAULT_TEST, 10.0, {"memory"}),
    "memory_many_processes.py": (DEFAULT_TEST, 10.0, None),
    "escape_write.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "read_root_only.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "tcp_connect.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "kill_parent.py": (DEFAULT_TEST, 10.0, {"failed", "crashed"}),
    "kill_other.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "daemon_stdout.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "output_flood.py": (DEFAULT_TEST, 10.0, {"output_limit"}),
    "disk_fill.py": (DEFAULT_TEST, 10.0, None),
    "recursion_bomb.py": (DEFAULT_TEST, 10.0, {"crashed", "failed", "memory"}),
    "exit_sys_exit.py": (ADD_TEST, 10.0, {"failed"}),
    "exit_os_exit.py": (ADD_TEST, 10.0, {"failed"}),
    "exit_raise_systemexit.py": (ADD_TEST, 10.0, {"failed"}),
    "fake_success_marker.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "forge_result_channel.py": (DEFAULT_TEST, 10.0, {"failed"}),
    "freeze_parent.py": (DEFAULT_TEST, 2.0, {"failed", "timeout"}),
    "always_equal.py": (ADD_TEST, 10.0, {"failed"}),
    "patch_main_comparators.py": (ADD_TEST, 10.0, {"failed"}),
    "forge_nonce_from_frames.py": (ADD_TEST, 10.0, {"failed"}),
    "forge_everything.py": (ADD_TEST, 10.0, {"failed"}),
    "forge_then_serve_wrong.py": (ADD_TEST, 10.0, {"failed"}),
}
# Without Landlock (and without namespaces) the fallback cannot stop these: documented.
NEEDS_LANDLOCK_IN_FALLBACK = {"tcp_connect.py", "escape_write.py", "kill_other.py"}
IS_ROOT = os.geteuid() == 0


def _layers_or_skip() -> sandbox.SandboxLayers:
    try:
        return sandbox.detect_layers()
    except sandbox.SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


def _modes() -> list[object]:
    bwrap = pytest.param("bwrap", marks=pytest.mark.bwrap)
    return [bwrap, "fallback", "fallback-no-landlock"]


@dataclasses.dataclass
class HostTargets:
    token: str
    directory: Path
    host_file: Path
    host_victim: Path
    root_file: Path
    secret: str
    listener: socket.socket
    victim: subprocess.Popen[bytes]

    def substitutions(self) -> dict[str, str]:
        return {
            "__TOKEN__": self.token,
            "__HOST_FILE__": str(self.host_file),
            "__HOST_VICTIM__": str(self.host_victim),
            "__ROOT_FILE__": str(self.root_file),
            "__PORT__": str(self.listener.getsockname()[1]),
            "__VICTIM_PID__": str(self.victim.pid),
        }


def _as_sandbox_uid() -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(sandbox.SANDBOX_UID)
        os.setuid(sandbox.SANDBOX_UID)


@pytest.fixture
def targets() -> Iterator[HostTargets]:
    """World-writable host files, a root-only secret, a listener and a same-uid victim."""
    token = "dc" + secrets.token_hex(6)
    directory = Path(tempfile.mkdtemp(prefix="docomplete-attack-"))
    directory.chmod(0o777)  # only the sandbox, not file permissions, may protect these
    host_file = directory / "keep.txt"
    host_file.write_text("original")
    host_file.chmod(0o666)
    host_victim = directory / "victim.txt"
    host_victim.write_text("do not delete")
    host_victim.chmod(0o666)
    secret = "secret-" + secrets.token_hex(8)
    root_file = directory / "root-only.txt"
    root_file.write_text(secret)
    root_file.chmod(0o600)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    # Bounded victim: exits by itself after 60 s even if the test dies.
    victim = subprocess.Popen(
        [shutil.which("sleep") or "/bin/sleep", "60"], preexec_fn=_as_sandbox_uid
    )
    try:
        yield HostTargets(
            token, directory, host_file, host_victim, root_file, secret, listener, victim
        )
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)
        for place in ("/tmp", "/dev/shm", "/var/tmp"):
            for leftover in Path(place).glob(f"fill-{token}-*"):
                leftover.unlink()


def _processes_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _survivors(token: str) -> list[int]:
    # A dying pid namespace is torn down asynchronously; give the kernel a moment.
    deadline = time.monotonic() + 5
    while (alive := _processes_named(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("mode", _modes())
@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_attack_is_contained(
    attack: str, mode: str, targets: HostTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = _layers_or_skip()
    if mode == "bwrap" and layers.bwrap is None:
        pytest.skip(f"bubblewrap unavailable: {layers.bwrap_error}")
    if mode == "fallback-no-landlock" or (mode == "fallback" and not layers.landlock_abi):
        if attack in NEEDS_LANDLOCK_IN_FALLBACK:
            pytest.skip("the fallback without Landlock does not isolate files/network/signals")
        weaker = dataclasses.replace(layers, landlock_abi=0)
        monkeypatch.setattr(sandbox, "detect_layers", lambda: weaker)
    if attack == "read_root_only.py" and not IS_ROOT:
        pytest.skip("needs root to create a file only root can read")
    if attack == "kill_other.py" and not IS_ROOT:
        pytest.skip("needs root to start a victim under the sandbox uid")
    # A frozen harness is caught by the runner's own watchdog; keep its grace short here.
    monkeypatch.setattr(sandbox_pool, "WATCHDOG_GRACE_S", 2.0)
    isolation = "bwrap" if mode == "bwrap" else "fallback"
    program = (ATTACKS / attack).read_text()
    for placeholder, value in targets.substitutions().items():
        program = program.replace(placeholder, value)
    test, timeout_s, allowed = EXPECTED[attack]

    result, canary = sandbox.check_many(
        [(program, test), CANARY],
        workers=1,
        timeout_s=timeout_s,
        memory_mb=256,
        output_limit_bytes=1 << 20,
        isolation=isolation,
    )

    assert result.status != "passed", result
    if allowed is not None:
        assert result.status in allowed, result
    assert canary.passed, f"the runner did not survive {attack}: {canary}"
    assert targets.host_file.read_text() == "original"
    assert targets.host_victim.exists()
    assert targets.secret not in result.stdout + result.stderr
    with pytest.raises(BlockingIOError):
        targets.listener.accept()
    assert targets.victim.poll() is None, "a process outside the sandbox was killed"
    assert _survivors(targets.token) == []
    for place in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not list(Path(place).glob(f"fill-{targets.token}-*"))
    if attack == "output_flood.py":
        assert len(result.stdout) <= sandbox.DEFAULT_TAIL_BYTES
