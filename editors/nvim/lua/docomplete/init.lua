--- docomplete for Neovim: starts the docomplete language server for Python buffers and shows
--- its doctest-ranked completions as ghost text.
---
---   require("docomplete").setup({ cmd = { "docomplete", "lsp" }, settings = { n = 4 } })
---
--- See :help docomplete.
local config = require("docomplete.config")
local ghost = require("docomplete.ghost")
local inline = require("docomplete.inline")
local lsp = require("docomplete.lsp")

local M = {}

---@type table|nil options after setup()
M.options = nil

local augroup = vim.api.nvim_create_augroup("docomplete", { clear = true })

--- Whether to use Neovim's own inline completion (0.12+) instead of our ghost text.
local function use_native()
  local available = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  if M.options.native == "auto" then
    return available
  end
  return M.options.native == true and available
end

--- The settings as a JSON object: an empty Lua table would be sent as `[]`, which the server
--- rightly rejects as "not an object".
local function settings_object(settings)
  return next(settings) == nil and vim.empty_dict() or settings
end

local function root_dir_for(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if vim.fs.root then
    local root = vim.fs.root(bufnr, M.options.root_markers)
    if root then
      return root
    end
  else
    local found = vim.fs.find(M.options.root_markers, { upward = true, path = vim.fs.dirname(name) })[1]
    if found then
      return vim.fs.dirname(found)
    end
  end
  return name ~= "" and vim.fs.dirname(name) or vim.fn.getcwd()
end

local function set_keymaps(bufnr)
  local keys = M.options.keymaps
  local function map(lhs, desc, when_visible)
    if not lhs then
      return
    end
    vim.keymap.set("i", lhs, function()
      if M.is_visible(bufnr) then
        -- Buffer edits are not allowed while an <expr> mapping is evaluated: defer them.
        vim.schedule(when_visible)
        return ""
      end
      return lhs
    end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = desc })
  end
  map(keys.accept, "docomplete: accept suggestion", function()
    M.accept(bufnr)
  end)
  map(keys.accept_line, "docomplete: accept one line of the suggestion", function()
    M.accept_line(bufnr)
  end)
  map(keys.dismiss, "docomplete: dismiss suggestion", function()
    M.dismiss(bufnr)
  end)
  for name, step in pairs({ next = 1, prev = -1 }) do
    if keys[name] then
      vim.keymap.set("i", keys[name], function()
        M.cycle(step, bufnr)
      end, { buffer = bufnr, desc = "docomplete: " .. name .. " suggestion" })
    end
  end
end

local function attach_autocmds(bufnr)
  local group = vim.api.nvim_create_augroup("docomplete_buffer_" .. bufnr, { clear = true })
  local function retrigger()
    ghost.clear(bufnr)
    if M.options.auto_trigger then
      inline.schedule(bufnr)
    end
  end
  vim.api.nvim_create_autocmd("InsertEnter", {
    group = group,
    buffer = bufnr,
    callback = retrigger,
  })
  -- Typing fires CursorMovedI, then TextChangedI. Text that matches the suggestion only shrinks
  -- it; anything else (another character, a move, a deletion) asks again after the debounce.
  vim.api.nvim_create_autocmd({ "CursorMovedI", "TextChangedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if not inline.follow_typing(bufnr) then
        inline.dismiss(bufnr)
        retrigger()
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      inline.dismiss(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = bufnr,
    callback = function()
      inline.forget(bufnr)
      pcall(vim.api.nvim_del_augroup_by_id, group)
    end,
  })
  vim.api.nvim_create_autocmd("LspDetach", {
    group = group,
    buffer = bufnr,
    callback = function(event)
      local client = vim.lsp.get_client_by_id(event.data.client_id)
      if client and client.name == lsp.client_name then
        inline.forget(bufnr)
        pcall(vim.api.nvim_del_augroup_by_id, group)
      end
    end,
  })
end

local function on_attach(client, bufnr)
  if use_native() then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    local accept = M.options.keymaps.accept
    if accept then
      vim.keymap.set("i", accept, function()
        if not vim.lsp.inline_completion.get({ bufnr = bufnr }) then
          return accept
        end
        return ""
      end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = "docomplete: accept" })
    end
    return
  end
  attach_autocmds(bufnr)
  set_keymaps(bufnr)
end

--- Starts (or reuses) the server for a buffer whose filetype is one of ours.
---@param bufnr integer|nil
---@return integer|nil client id
function M.start(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not M.options then
    vim.notify("docomplete: call require('docomplete').setup() first", vim.log.levels.ERROR)
    return nil
  end
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  if vim.fn.executable(M.options.cmd[1]) ~= 1 then
    vim.notify(
      string.format(
        "docomplete: %q is not executable. Install docomplete (pip install -e . in its checkout) "
          .. "or set setup{ cmd = {...} } to the full path. :checkhealth docomplete shows more.",
        M.options.cmd[1]
      ),
      vim.log.levels.ERROR
    )
    return nil
  end
  local settings = settings_object(M.options.settings)
  return vim.lsp.start({
    name = lsp.client_name,
    cmd = M.options.cmd,
    root_dir = root_dir_for(bufnr),
    init_options = settings,
    -- Answers workspace/configuration for section "docomplete".
    settings = { docomplete = settings },
    on_attach = on_attach,
  }, { bufnr = bufnr })
end

--- Configures the plugin and starts the server for matching buffers (also those already open).
---@param user_options table|nil see :help docomplete-setup
function M.setup(user_options)
  M.options = config.resolve(user_options)
  inline.configure(M.options)
  vim.api.nvim_clear_autocmds({ group = augroup })
  vim.api.nvim_create_autocmd("FileType", {
    group = augroup,
    pattern = M.options.filetypes,
    callback = function(event)
      M.start(event.buf)
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.options.filetypes, vim.bo[bufnr].filetype) then
      M.start(bufnr)
    end
  end
end

--- Pushes new server settings to running servers (workspace/didChangeConfiguration).
---@param settings table
function M.update_settings(settings)
  M.options.settings = vim.tbl_deep_extend("force", M.options.settings, settings)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  for _, client in ipairs(get({ name = lsp.client_name })) do
    client.settings = { docomplete = settings_object(M.options.settings) }
    lsp.notify(client, "workspace/didChangeConfiguration", { settings = client.settings })
  end
end

--- Requests a suggestion at the cursor now.
function M.trigger(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if use_native() then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return
  end
  inline.request(bufnr, lsp.trigger_kind.invoked)
end

--- Accepts the suggestion shown now; false when none is shown.
function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if use_native() then
    return vim.lsp.inline_completion.get({ bufnr = bufnr }) or false
  end
  return inline.accept(bufnr)
end

--- Accepts the first line of the suggestion shown now (all of a one-line one) and shows the
--- rest; false when none is shown. With Neovim's native inline completion: the whole of it.
function M.accept_line(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if use_native() then
    return M.accept(bufnr)
  end
  return inline.accept(bufnr, true)
end

function M.dismiss(bufnr)
  inline.dismiss(bufnr or vim.api.nvim_get_current_buf())
end

--- Shows the next (1) or previous (-1) ranked suggestion.
function M.cycle(step, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if use_native() then
    vim.lsp.inline_completion.select({ bufnr = bufnr, count = step })
    return
  end
  inline.cycle(bufnr, step)
end

function M.is_visible(bufnr)
  return inline.is_visible(bufnr or vim.api.nvim_get_current_buf())
end

--- The ghost text drawn in the buffer now, read from its extmark (nil when none).
function M.ghost_text(bufnr)
  return inline.displayed(bufnr or vim.api.nvim_get_current_buf())
end

function M.toggle_auto_trigger()
  M.options.auto_trigger = not M.options.auto_trigger
  vim.notify("docomplete: auto trigger " .. (M.options.auto_trigger and "on" or "off"))
end

--- :DocompleteCandidates — every ranked candidate in vim.ui.select; the chosen one is inserted.
function M.pick_candidate(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = lsp.client_for(bufnr)
  if not client then
    vim.notify("docomplete: no server attached to this buffer (:checkhealth docomplete)", vim.log.levels.WARN)
    return
  end
  local params = lsp.cursor_params(client)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  lsp.request(client, lsp.methods.candidates, params, function(err, result)
    if err then
      vim.notify(lsp.prefixed(err.message or tostring(err)), vim.log.levels.ERROR)
      return
    end
    local items = lsp.candidate_items(result, params.position)
    if #items == 0 then
      vim.notify("docomplete: no candidate here; put the cursor in a function body, below its docstring")
      return
    end
    vim.ui.select(items, {
      prompt = "docomplete candidates (best first)",
      format_item = lsp.describe,
      kind = "docomplete",
    }, function(choice)
      if not choice then
        return
      end
      if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
        vim.notify("docomplete: the buffer changed; run :DocompleteCandidates again", vim.log.levels.WARN)
        return
      end
      inline.dismiss(bufnr)
      inline.insert_item(bufnr, client, choice, params.position)
    end)
  end, bufnr)
end

return M
