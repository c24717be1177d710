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

local function human_size(n)
  if n < 1024 then return n .. " B" end
  local units, i = { "KiB", "MiB", "GiB", "TiB" }, 1
  n = n / 1024
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return string.format("%.1f %s", n, units[i])
end

-- Formats a person cannot read as text, by their first bytes.
local MAGIC = { "\127ELF", "\31\139", "PK\3\4", "\137PNG", "\253" .. "7zXZ", "BZh91", "\40\181\47\253",
  "!<arch>\n", "SQLite format 3\0", "\255\216\255", "GIF8", "%PDF-" }

-- (the magic numbers by their first byte: capture asks this of every file)
local MAGIC_BY_FIRST = {}
for _, m in ipairs(MAGIC) do
  local b = m:byte(1)
  MAGIC_BY_FIRST[b] = MAGIC_BY_FIRST[b] or {}
  table.insert(MAGIC_BY_FIRST[b], m)
end
local CONTROL = "[%z\1-\7\14-\26\28-\31\127]"
local NONE = {}

-- is_binary(s) -> true when the first 8 KiB look like no text: a known
-- binary format, or more than 1 in 20 bytes control bytes other than
-- tab, newline, carriage return, form feed, backspace and escape.  A text
-- with a stray NUL is text (its diff shows the NUL escaped).
function M.is_binary(s)
  local head = #s > 8192 and s:sub(1, 8192) or s
  for _, m in ipairs(MAGIC_BY_FIRST[head:byte(1) or false] or NONE) do
    if head:sub(1, #m) == m then return true end
  end
  if not head:find(CONTROL) then return false end
  local _, controls = head:gsub(CONTROL, "")
  return controls > 2 and controls * 20 > #head
end

-- content_kind(head, size) -> "text" | "binary" | "huge": how a content
-- can be shown, from its first 8 KiB and its size (capture records it;
-- policy rates what cannot be read as text).
function M.content_kind(head, size)
  if M.is_binary(head) then return "binary" end
  if size > M.MAX_BYTES then return "huge" end
  return "text"
end

M.PREVIEW_BYTES = 256       -- of a binary, at each end, as hex
M.PREVIEW_TEXT_BYTES = 4096 -- of a huge text, at each end
M.PREVIEW_LINES = 40        -- of a huge text, at each end

local function hex_lines(data, offset, out)
  for i = 1, #data, 16 do
    local chunk = data:sub(i, i + 15)
    local hex = chunk:gsub(".", function(c) return string.format("%02x ", c:byte()) end)
    if #chunk > 8 then hex = hex:sub(1, 24) .. " " .. hex:sub(25) end
    local ascii = chunk:gsub("[^\32-\126]", ".")
    out[#out + 1] = string.format("%08x  %-49s |%s|", offset + i - 1, hex, ascii)
  end
end

local function head_lines(data, n)
  local out = {}
  for line in data:gmatch("([^\n]*)\n") do
    if #out == n then break end
    out[#out + 1] = line
  end
  return out
end

-- The first and last n bytes of a content given as store.peek's head and
-- tail (which together are the whole content when it is short).
local function ends(head, tail, size, n)
  if #head + #tail == size then
    local all = head .. tail
    return all:sub(1, n), #all > 2 * n and all:sub(-n) or all:sub(n + 1)
  end
  return head:sub(1, n), tail:sub(-n)
end

-- preview(head, tail, size) -> kind, text: what can be shown of a content
-- that cannot be diffed, from store.peek's head and tail (at least
-- PREVIEW_TEXT_BYTES each): a binary's first and last PREVIEW_BYTES as
-- hex, or a text's first and last PREVIEW_LINES lines.
function M.preview(head, tail, size)
  local out = {}
  if M.is_binary(head) then
    local first, last = ends(head, tail, size, M.PREVIEW_BYTES)
    hex_lines(first, 0, out)
    if size > #first + #last then
      out[#out + 1] = string.format("... %d bytes not shown ...", size - #first - #last)
    end
    hex_lines(last, size - #last, out)
    return "binary", table.concat(out, "\n") .. "\n"
  end
  for _, l in ipairs(head_lines(head, M.PREVIEW_LINES)) do out[#out + 1] = l end
  out[#out + 1] = string.format("... %s not shown ...", human_size(size - #head - #tail))
  local last = {}
  for line in tail:gmatch("([^\n]*)\n") do last[#last + 1] = line end
  table.remove(last, 1)  -- the tail starts mid-line
  for i = math.max(1, #last - M.PREVIEW_LINES + 1), #last do out[#out + 1] = last[i] end
  return "text", table.concat(out, "\n") .. "\n"
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
