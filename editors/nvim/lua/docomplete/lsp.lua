--- The LSP side: finding our client, positions, and the shapes of docomplete's messages.
local M = {}

M.client_name = "docomplete"
M.methods = {
  inline = "textDocument/inlineCompletion",
  candidates = "docomplete/candidates",
  shown = "docomplete/shown",
  execute = "workspace/executeCommand",
}
M.accept_command = "docomplete.accept"
M.accept_partial_command = "docomplete.acceptPartial"
M.trigger_kind = { invoked = 1, automatic = 2 }

--- Our running client for a buffer, or nil.
---@param bufnr integer
function M.client_for(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  for _, client in ipairs(get({ bufnr = bufnr, name = M.client_name })) do
    if not (client.is_stopped and client:is_stopped()) then
      return client
    end
  end
  return nil
end

--- Sends a request with the method-call API of 0.11+, or the older function API.
function M.request(client, method, params, handler, bufnr)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel(client, request_id)
  if vim.fn.has("nvim-0.11") == 1 then
    return client:cancel_request(request_id)
  end
  return client.cancel_request(request_id)
end

--- Converts an LSP character offset on `line_text` to a byte column.
---@param line_text string
---@param character integer
---@param encoding string "utf-8" | "utf-16" | "utf-32"
---@return integer
function M.byte_col(line_text, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line_text)
  end
  local ok, col
  if vim.fn.has("nvim-0.11") == 1 then
    ok, col = pcall(vim.str_byteindex, line_text, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line_text, character, encoding == "utf-16")
  end
  return ok and col or #line_text
end

--- Converts a byte column on `line_text` to an LSP character offset.
function M.lsp_character(line_text, byte_col, encoding)
  if encoding == "utf-8" then
    return byte_col
  end
  local ok, index
  if vim.fn.has("nvim-0.11") == 1 then
    ok, index = pcall(vim.str_utfindex, line_text, encoding, byte_col, false)
  else
    local utf32, utf16
    ok, utf32, utf16 = pcall(vim.str_utfindex, line_text, byte_col)
    index = encoding == "utf-16" and utf16 or utf32
  end
  return ok and index or byte_col
end

--- The 0-based (row, byte col) of an LSP position in a buffer.
function M.to_buffer_position(bufnr, position, encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, position.line, position.line + 1, false)[1] or ""
  return position.line, M.byte_col(line, position.character, encoding)
end

--- textDocument + position params for the cursor of the current window.
function M.cursor_params(client)
  return vim.lsp.util.make_position_params(0, client.offset_encoding or "utf-16")
end

--- The text of an inline completion item (a plain string or a StringValue snippet).
local function insert_text_of(item)
  local text = item.insertText
  if type(text) == "table" then
    -- Snippets are not expanded: strip placeholders to their default text.
    text = (text.value or ""):gsub("%${%d+:([^}]*)}", "%1"):gsub("%$%d+", "")
  end
  return type(text) == "string" and text or nil
end

--- Normalises an inlineCompletion result to a list of {text, range, command}.
---@param result table|nil InlineCompletionList or InlineCompletionItem[]
---@return table[]
function M.inline_items(result)
  if type(result) ~= "table" then
    return {}
  end
  local list = result.items or result
  local items = {}
  for _, item in ipairs(list) do
    local text = insert_text_of(item)
    if text and text ~= "" then
      table.insert(items, { text = text, range = item.range, command = item.command })
    end
  end
  return items
end

--- Normalises a docomplete/candidates result to the same shape, plus verdicts and scores.
---@param result table|nil
---@param position table the LSP position the request was made at
---@return table[]
function M.candidate_items(result, position)
  if type(result) ~= "table" or type(result.candidates) ~= "table" then
    return {}
  end
  local items = {}
  for index, candidate in ipairs(result.candidates) do
    local text = candidate.insertText or candidate.text
    if type(text) == "string" and text ~= "" then
      table.insert(items, {
        text = text,
        range = candidate.range or { start = position, ["end"] = position },
        command = candidate.command or (result.requestId ~= nil and result.requestId ~= vim.NIL) and {
          title = "docomplete: accepted",
          command = M.accept_command,
          arguments = { { requestId = result.requestId, index = (candidate.rank or index) - 1 } },
        } or nil,
        score = candidate.meanLogprob or candidate.score,
        doctest = candidate.doctest,
        verdict = type(candidate.verdict) == "string" and candidate.verdict or nil,
        -- false when the server keeps it out of ghost text (it fails its docstring's examples)
        ghost = candidate.ghostText ~= false,
      })
    end
  end
  return items
end

--- The doctest part of a picker row: "doctests 2/2" (all passed), "doctests 1/2 failed",
--- "doctests unverifiable" (the examples could not run), "doctests skipped" (nothing checked).
---@param doctest table|nil {passed, total, status}
---@param verdict string|nil the server's verdict word
---@return string|nil
function M.describe_verdict(doctest, verdict)
  if type(doctest) ~= "table" or type(doctest.total) ~= "number" then
    return nil
  end
  local counts = string.format("doctests %d/%d", doctest.passed or 0, doctest.total)
  if verdict == "passed" then
    return counts
  elseif verdict == "failed" then
    return doctest.total > 0 and (counts .. " failed") or "doctests failed"
  elseif verdict == "unverifiable" or verdict == "skipped" then
    return "doctests " .. verdict
  elseif doctest.total > 0 then
    return counts
  end
  return "doctests: " .. tostring(doctest.status or "none")
end

--- A message with one "docomplete: " prefix (the server's messages carry their own).
---@param message string
---@return string
function M.prefixed(message)
  if message:sub(1, #"docomplete:") == "docomplete:" then
    return message
  end
  return "docomplete: " .. message
end

--- One line describing a candidate, for pickers: "return a + b  [doctests 2/2 · -0.42]".
function M.describe(item)
  local lines = vim.split(item.text, "\n", { plain = true })
  local first = ""
  for _, line in ipairs(lines) do
    if vim.trim(line) ~= "" then
      first = vim.trim(line)
      break
    end
  end
  local facts = {}
  local verdict = M.describe_verdict(item.doctest, item.verdict)
  if verdict then
    table.insert(facts, verdict)
  end
  if type(item.score) == "number" then
    table.insert(facts, string.format("score %.2f", item.score))
  end
  local more = #lines > 1 and string.format(" (+%d lines)", #lines - 1) or ""
  local suffix = #facts > 0 and ("  [" .. table.concat(facts, " · ") .. "]") or ""
  return first .. more .. suffix
end

--- Payload of docomplete/shown for an item: the argument of its accept command.
function M.shown_params(item)
  local args = item.command and item.command.arguments
  if type(args) == "table" and type(args[1]) == "table" then
    return args[1]
  end
  return {}
end

--- Runs an item's command on the server (docomplete.accept: telemetry).
function M.execute_command(client, command, bufnr)
  if type(command) ~= "table" or type(command.command) ~= "string" then
    return
  end
  M.request(client, M.methods.execute, {
    command = command.command,
    arguments = command.arguments,
  }, function() end, bufnr)
end

return M
