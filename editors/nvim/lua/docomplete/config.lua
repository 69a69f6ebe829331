--- Options for require("docomplete").setup(), with their defaults.
local M = {}

M.defaults = {
  -- Command that starts the language server (stdio).
  cmd = { "docomplete", "lsp" },
  -- Server settings (camelCase, as in docs/LSP.md): sent as initializationOptions and
  -- returned for workspace/configuration section "docomplete".
  settings = {},
  filetypes = { "python" },
  -- Files or directories that mark a project root; the file's directory when none is found.
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", ".git" },
  -- Request a completion while typing in insert mode (otherwise only :DocompleteTrigger).
  auto_trigger = true,
  -- Milliseconds without typing before a request is sent.
  debounce_ms = 150,
  -- Use Neovim's native vim.lsp.inline_completion (0.12+) when it exists: "auto" | true | false.
  native = "auto",
  -- Insert-mode keys; set one to false to leave that key alone.
  keymaps = {
    accept = "<Tab>",
    accept_line = "<C-Right>",
    next = "<M-]>",
    prev = "<M-[>",
    dismiss = "<C-]>",
  },
  -- Highlight group of the ghost text.
  hl_group = "Comment",
}

--- Merges user options over the defaults and checks their types.
---@param user table|nil
---@return table
function M.resolve(user)
  local opts = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), user or {})
  -- A list given by the user replaces the default list instead of merging index by index.
  for _, key in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if user and user[key] ~= nil then
      opts[key] = user[key]
    end
  end
  local expected = {
    cmd = "table",
    settings = "table",
    filetypes = "table",
    root_markers = "table",
    auto_trigger = "boolean",
    debounce_ms = "number",
    keymaps = "table",
    hl_group = "string",
  }
  for key, kind in pairs(expected) do
    if type(opts[key]) ~= kind then
      error(string.format("docomplete: setup option %q must be a %s, got %s", key, kind, type(opts[key])), 0)
    end
  end
  if #opts.cmd == 0 then
    error("docomplete: setup option \"cmd\" must name the server command, e.g. { 'docomplete', 'lsp' }", 0)
  end
  return opts
end

return M
