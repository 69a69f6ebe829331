-- User commands for docomplete; the server starts only after require("docomplete").setup().
if vim.g.loaded_docomplete then
  return
end
vim.g.loaded_docomplete = true

local function docomplete()
  return require("docomplete")
end

vim.api.nvim_create_user_command("DocompleteCandidates", function()
  docomplete().pick_candidate()
end, { desc = "docomplete: pick one of the ranked candidates" })

vim.api.nvim_create_user_command("DocompleteTrigger", function()
  docomplete().trigger()
end, { desc = "docomplete: request a suggestion at the cursor" })

vim.api.nvim_create_user_command("DocompleteToggle", function()
  docomplete().toggle_auto_trigger()
end, { desc = "docomplete: turn suggestions while typing on or off" })
