--- :checkhealth docomplete
local M = {}

local health = vim.health

function M.check()
  health.start("docomplete")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed (vim.lsp.start, inline virtual text)")
  end
  if vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
    health.ok("native inline completion available (vim.lsp.inline_completion)")
  else
    health.info("no native inline completion (Neovim < 0.12): ghost text is drawn by the plugin")
  end

  local docomplete = require("docomplete")
  local options = docomplete.options
  if not options then
    health.warn("setup() has not been called", { 'Add require("docomplete").setup({}) to your config' })
    return
  end
  local executable = options.cmd[1]
  if vim.fn.executable(executable) == 1 then
    health.ok(string.format("server command found: %s", table.concat(options.cmd, " ")))
  else
    health.error(string.format("server command %q is not executable", executable), {
      "pip install -e . in the docomplete checkout (or into the venv you point cmd at)",
      'or setup({ cmd = { "/path/to/venv/bin/docomplete", "lsp" } })',
    })
  end
  local backend = options.settings.backend
  health.info("backend: " .. (backend and vim.inspect(backend) or '"embedded" (server default)'))

  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  local clients = get({ name = "docomplete" })
  if #clients == 0 then
    health.info("no docomplete server running (open a " .. table.concat(options.filetypes, "/") .. " file)")
  end
  for _, client in ipairs(clients) do
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      health.ok(string.format("server %d running in %s, inline completion advertised", client.id, client.root_dir or "?"))
    else
      health.warn(string.format("server %d does not advertise inline completion", client.id))
    end
  end
end

return M
