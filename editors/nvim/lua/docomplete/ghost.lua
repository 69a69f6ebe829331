--- Ghost text: a suggestion drawn with extmarks, never written into the buffer.
--- The first line goes inline at the cursor, the rest as virtual lines below it.
local M = {}

M.namespace = vim.api.nvim_create_namespace("docomplete_ghost")

local inline_supported = vim.fn.has("nvim-0.10") == 1

local function expand_tabs(line)
  local width = vim.bo.tabstop > 0 and vim.bo.tabstop or 8
  return (line:gsub("\t", string.rep(" ", width)))
end

--- Removes the ghost text from a buffer.
---@param bufnr integer
function M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  end
end

--- Draws `text` as ghost text at the 0-based (row, byte col) position.
---@param bufnr integer
---@param row integer
---@param col integer
---@param text string
---@param hl_group string
---@return integer|nil extmark id
function M.show(bufnr, row, col, text, hl_group)
  M.clear(bufnr)
  if text == "" then
    return nil
  end
  local lines = vim.split(text, "\n", { plain = true })
  local first = table.remove(lines, 1)
  local opts = { hl_mode = "combine", priority = 1000 }
  if first ~= "" then
    opts.virt_text = { { expand_tabs(first), hl_group } }
    -- Before 0.10 virtual text cannot sit between characters; show it at the end of the line.
    opts.virt_text_pos = inline_supported and "inline" or "eol"
  end
  if #lines > 0 then
    opts.virt_lines = {}
    for _, line in ipairs(lines) do
      -- An empty chunk list would draw nothing; a single space keeps blank lines visible.
      table.insert(opts.virt_lines, { { line == "" and " " or expand_tabs(line), hl_group } })
    end
  end
  return vim.api.nvim_buf_set_extmark(bufnr, M.namespace, row, col, opts)
end

--- The text currently drawn in a buffer (read back from the extmark), or nil when none is.
---@param bufnr integer
---@return string|nil
function M.displayed(bufnr)
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, M.namespace, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local details = marks[1][4]
  local parts = {}
  local first = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    table.insert(first, chunk[1])
  end
  table.insert(parts, table.concat(first))
  for _, virt_line in ipairs(details.virt_lines or {}) do
    local line = {}
    for _, chunk in ipairs(virt_line) do
      table.insert(line, chunk[1])
    end
    local joined = table.concat(line)
    table.insert(parts, joined == " " and "" or joined)
  end
  return table.concat(parts, "\n")
end

return M
