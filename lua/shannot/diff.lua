-- Showing a person what a change does to a file: unified diffs from
-- shannot.core.diff, and describe(), which also copes with files that are
-- missing, binary or too large to diff.
local core = require("shannot.core.diff")

local M = {}

-- unified(a, b, opts) -> text, added, removed | nil, msg, code
-- (opts: context, a_label, b_label, max_cost; see src/diff.c)
M.unified = core.unified

M.MAX_BYTES = 4 * 1024 * 1024
-- The diff's time grows with the square of the edit distance (lines
-- added plus removed): 20 000 take about 0.2 s, 200 000 would take 20 s.
M.MAX_COST = 20000

-- is_binary(s) -> true if a NUL byte is in the first 8 KiB
function M.is_binary(s)
  return s:sub(1, 8192):find("\0", 1, true) ~= nil
end

local function human_size(n)
  if n < 1024 then return n .. " B" end
  local units, i = { "KiB", "MiB", "GiB", "TiB" }, 1
  n = n / 1024
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return string.format("%.1f %s", n, units[i])
end

-- "binary file, 1.2 KiB -> 3.4 KiB", "new binary file, 3.4 KiB", ...
local function sizes(noun, old, new)
  if old == nil then return string.format("new %s, %s", noun, human_size(#new)) end
  if new == nil then return string.format("deleted %s, %s", noun, human_size(#old)) end
  return string.format("%s, %s -> %s", noun, human_size(#old), human_size(#new))
end

local function counts(old, new, added, removed)
  local s = string.format("%d line%s added, %d removed", added, added == 1 and "" or "s", removed)
  if old == nil then return "new file, " .. s end
  if new == nil then return "deleted file, " .. s end
  return s
end

local function same(old, new)
  local summary = "no changes"
  if old == nil and new ~= nil then summary = "new empty file" end
  if new == nil and old ~= nil then summary = "deleted empty file" end
  return { kind = "same", text = "", added = 0, removed = 0, summary = summary }
end

-- describe(old, new, opts) -> {kind, text, added, removed, summary}
-- old / new: the contents before and after, nil for a file that did not
-- exist or is being deleted.  kind: "same", "text" (text is the unified
-- diff), "binary" or "huge" (no text: sizes only).  opts: those of
-- unified(), and max_bytes (default M.MAX_BYTES) for either side.
function M.describe(old, new, opts)
  local a, b = old or "", new or ""
  if type(a) ~= "string" or type(b) ~= "string" then
    error("describe: contents must be strings or nil", 2)
  end
  opts = opts or {}
  if a == b then return same(old, new) end
  if M.is_binary(a) or M.is_binary(b) then
    return { kind = "binary", summary = sizes("binary file", old, new) }
  end
  local huge = { kind = "huge", summary = sizes("file too large to diff", old, new) }
  local max_bytes = opts.max_bytes or M.MAX_BYTES
  if #a > max_bytes or #b > max_bytes then return huge end
  local text, added, removed = core.unified(a, b, {
    context = opts.context, a_label = opts.a_label, b_label = opts.b_label,
    max_cost = opts.max_cost or M.MAX_COST,
  })
  if not text then
    if removed == "E2BIG" then return huge end
    error("describe: " .. tostring(added))
  end
  return { kind = "text", text = text, added = added, removed = removed,
    summary = counts(old, new, added, removed) }
end

return M
