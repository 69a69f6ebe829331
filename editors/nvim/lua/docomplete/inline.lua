--- Inline suggestions on Neovim without native inline completion (< 0.12): debounced
--- requests, cancellation of the previous one, ghost text, accept and cycling.
local ghost = require("docomplete.ghost")
local lsp = require("docomplete.lsp")

local M = {}

local uv = vim.uv or vim.loop

---@type table<integer, table> per-buffer state
local states = {}

local opts = { debounce_ms = 150, hl_group = "Comment" }

function M.configure(options)
  opts = options
end

local function state_of(bufnr)
  local state = states[bufnr]
  if not state then
    state = { items = {}, index = 1 }
    states[bufnr] = state
  end
  return state
end

local function cursor_anchor(bufnr)
  local cursor = vim.api.nvim_win_get_cursor(0)
  return { row = cursor[1] - 1, col = cursor[2], tick = vim.api.nvim_buf_get_changedtick(bufnr) }
end

local function same_anchor(a, b)
  return a and b and a.row == b.row and a.col == b.col and a.tick == b.tick
end

local function cancel_inflight(state)
  local inflight = state.inflight
  state.inflight = nil
  if inflight then
    pcall(lsp.cancel, inflight.client, inflight.id)
  end
end

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
    state.timer:close()
    state.timer = nil
  end
end

--- Hides the suggestion and forgets it; also cancels a request still in flight.
---@param bufnr integer
function M.dismiss(bufnr)
  local state = states[bufnr]
  if not state then
    return
  end
  stop_timer(state)
  cancel_inflight(state)
  state.items, state.index, state.anchor, state.client = {}, 1, nil, nil
  ghost.clear(bufnr)
end

--- Drops everything kept for a buffer that is going away.
---@param bufnr integer
function M.forget(bufnr)
  M.dismiss(bufnr)
  states[bufnr] = nil
end

--- The suggestion's part that is not typed yet, and where it starts.
local function pending_text(bufnr, state, item)
  local encoding = state.client.offset_encoding or "utf-16"
  local anchor = state.anchor
  if not item.range then
    return item.text, anchor.row, anchor.col
  end
  local start_row, start_col = lsp.to_buffer_position(bufnr, item.range.start, encoding)
  if start_row ~= anchor.row or start_col > anchor.col then
    -- A range starting on another line or after the cursor cannot be shown as ghost text.
    return nil
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, anchor.row, anchor.row + 1, false)[1] or ""
  local typed = line:sub(start_col + 1, anchor.col)
  if item.text:sub(1, #typed) ~= typed then
    return nil
  end
  return item.text:sub(#typed + 1), anchor.row, anchor.col
end

local function render(bufnr)
  local state = states[bufnr]
  local item = state and state.items[state.index]
  if not item then
    ghost.clear(bufnr)
    return
  end
  local text, row, col = pending_text(bufnr, state, item)
  if not text or text == "" then
    ghost.clear(bufnr)
    return
  end
  ghost.show(bufnr, row, col, text, opts.hl_group)
  if not item.shown then
    item.shown = true
    lsp.notify(state.client, lsp.methods.shown, lsp.shown_params(item))
  end
end

--- Asks the server for a suggestion at the cursor now (no debounce).
---@param bufnr integer
---@param trigger_kind integer|nil 1 = invoked by the user, 2 = automatic (default)
function M.request(bufnr, trigger_kind)
  local state = state_of(bufnr)
  stop_timer(state)
  cancel_inflight(state)
  local client = lsp.client_for(bufnr)
  if not client or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local caps = client.server_capabilities or {}
  if not caps.inlineCompletionProvider then
    return
  end
  local params = lsp.cursor_params(client)
  params.context = { triggerKind = trigger_kind or lsp.trigger_kind.automatic }
  local anchor = cursor_anchor(bufnr)
  local ok, request_id
  ok, request_id = lsp.request(client, lsp.methods.inline, params, function(err, result)
    if not state.inflight or state.inflight.id ~= request_id then
      return -- superseded by a newer request
    end
    state.inflight = nil
    if err then
      -- The server reports outages once with window/showMessage; stay quiet per keystroke.
      return
    end
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr then
      return
    end
    if not same_anchor(anchor, cursor_anchor(bufnr)) then
      return -- the user typed or moved on; a fresh request is already scheduled
    end
    state.client, state.anchor = client, anchor
    state.items, state.index = lsp.inline_items(result), 1
    for _, item in ipairs(state.items) do
      -- Without a range the item is inserted at the request's position; pin that down now so
      -- that typing ahead (follow_typing) keeps the same starting point.
      item.range = item.range or { start = params.position, ["end"] = params.position }
    end
    state.candidates_loaded = false
    render(bufnr)
  end, bufnr)
  if ok and request_id then
    state.inflight = { client = client, id = request_id }
  end
end

--- Requests a suggestion after `debounce_ms` without further calls (typing restarts the wait).
---@param bufnr integer
function M.schedule(bufnr)
  local state = state_of(bufnr)
  stop_timer(state)
  local timer = uv.new_timer()
  state.timer = timer
  timer:start(opts.debounce_ms, 0, function()
    vim.schedule(function()
      if state.timer == timer then
        stop_timer(state)
        M.request(bufnr)
      end
    end)
  end)
end

--- Keeps the suggestion when the user types what it predicted (typed-ahead): the ghost text
--- shrinks instead of disappearing, and no new request is needed. False when it no longer fits.
---@param bufnr integer
---@return boolean
function M.follow_typing(bufnr)
  local state = states[bufnr]
  local item = state and state.items[state.index]
  if not item or not state.anchor or vim.api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  local now = cursor_anchor(bufnr)
  if now.row ~= state.anchor.row or now.col < state.anchor.col then
    return false
  end
  local previous = state.anchor
  state.anchor = now
  local text = pending_text(bufnr, state, item)
  if not text or text == "" then
    state.anchor = previous
    return false
  end
  render(bufnr)
  return true
end

--- Whether a request is waiting for its debounce or for the server's answer.
function M.is_pending(bufnr)
  local state = states[bufnr]
  return state ~= nil and (state.timer ~= nil or state.inflight ~= nil)
end

--- Whether a suggestion is drawn in the buffer now.
function M.is_visible(bufnr)
  local state = states[bufnr]
  return state ~= nil and state.items[state.index] ~= nil and ghost.displayed(bufnr) ~= nil
end

--- The suggestion drawn now, as read back from the extmark (nil when none).
function M.displayed(bufnr)
  return ghost.displayed(bufnr)
end

--- Inserts `item` into the buffer, moves the cursor after it, and reports the acceptance.
---@return boolean inserted
function M.insert_item(bufnr, client, item, default_position)
  local encoding = client.offset_encoding or "utf-16"
  local range = item.range or { start = default_position, ["end"] = default_position }
  local start_row, start_col = lsp.to_buffer_position(bufnr, range.start, encoding)
  vim.lsp.util.apply_text_edits({ { range = range, newText = item.text } }, bufnr, encoding)
  local lines = vim.split(item.text, "\n", { plain = true })
  local end_row = start_row + #lines - 1
  local end_col = #lines == 1 and start_col + #lines[1] or #lines[#lines]
  if vim.api.nvim_get_current_buf() == bufnr then
    pcall(vim.api.nvim_win_set_cursor, 0, { end_row + 1, end_col })
  end
  lsp.execute_command(client, item.command, bufnr)
  return true
end

--- The item that inserts only `item`'s first line, with the next line's indentation (so the
--- cursor lands where the rest goes on), and reports a partial accept of that many characters.
local function first_line_of(item)
  local newline = item.text:find("\n", 1, true)
  local indent = item.text:match("^[ \t]*", newline + 1)
  local text = item.text:sub(1, newline) .. indent
  local command = item.command
  local details = command and command.arguments and command.arguments[1]
  if command and command.command == lsp.accept_command and type(details) == "table" then
    local partial = vim.tbl_extend("force", details, { acceptedLength = vim.fn.strchars(text) })
    command = {
      title = "docomplete: accepted a line",
      command = lsp.accept_partial_command,
      arguments = { partial },
    }
  end
  return vim.tbl_extend("force", item, { text = text, command = command })
end

--- Accepts the suggestion shown now, or only its first line (`line`: the rest is then asked
--- for again, which the server answers from its cache). Returns false when none was shown.
---@param bufnr integer
---@param line boolean|nil
---@return boolean
function M.accept(bufnr, line)
  local state = states[bufnr]
  local item = state and state.items[state.index]
  if not item or not M.is_visible(bufnr) then
    return false
  end
  local partial = line and item.text:find("\n", 1, true) ~= nil
  if partial then
    item = first_line_of(item)
  end
  local client, anchor = state.client, state.anchor
  M.dismiss(bufnr)
  local line = vim.api.nvim_buf_get_lines(bufnr, anchor.row, anchor.row + 1, false)[1] or ""
  local encoding = client.offset_encoding or "utf-16"
  local cursor = { line = anchor.row, character = lsp.lsp_character(line, anchor.col, encoding) }
  local range = item.range
  if range and range["end"].line == cursor.line and range["end"].character < cursor.character then
    -- The user typed the start of the suggestion: replace that typed text with the whole item.
    item = vim.tbl_extend("force", item, { range = { start = range.start, ["end"] = cursor } })
  end
  M.insert_item(bufnr, client, item, cursor)
  if partial then
    M.request(bufnr, lsp.trigger_kind.invoked)
  end
  return true
end

--- Shows the next (step 1) or previous (step -1) ranked suggestion. The inline answer may hold
--- a single item; then every ranked candidate is fetched once with docomplete/candidates.
function M.cycle(bufnr, step)
  local state = states[bufnr]
  if not state or not state.anchor or #state.items == 0 then
    M.request(bufnr, lsp.trigger_kind.invoked)
    return
  end
  local function move()
    local count = #state.items
    state.index = ((state.index - 1 + step) % count) + 1
    render(bufnr)
  end
  if #state.items > 1 or state.candidates_loaded then
    move()
    return
  end
  local client, anchor = state.client, state.anchor
  local params = lsp.cursor_params(client)
  lsp.request(client, lsp.methods.candidates, params, function(err, result)
    state.candidates_loaded = true
    if err or not same_anchor(anchor, cursor_anchor(bufnr)) then
      return
    end
    -- Cycling shows ghost text: only the candidates the server lets be ghost text.
    local items = vim.tbl_filter(function(item)
      return item.ghost
    end, lsp.candidate_items(result, params.position))
    if #items > 0 then
      state.items, state.index = items, 1
    end
    move()
  end, bufnr)
end

return M
