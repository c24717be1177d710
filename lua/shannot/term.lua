-- The terminal: shannot.core.term's primitives (isatty, size, raw,
-- read_key, write) and decoding what the keyboard sends into key names
-- ("up", "enter", "space", "j", ...).
local core = require("shannot.core.term")

local M = setmetatable({}, { __index = core })

-- What a command's output may have left a terminal in, undone before
-- shannot speaks after it, so no script can hide or disguise shannot's
-- own lines: attributes (colour, conceal, reverse), the character set,
-- insert mode, line wrap, a hidden cursor, the alternate screen (left
-- without restoring a cursor position), the colour palette.
-- isatty(fd) -> whether fd is a terminal
M.isatty = core.isatty

M.RESET_AFTER_OUTPUT = "\27[0m\27(B\27[4l\27[?7h\27[?25h\27[?1047l\27]104\7"

-- reset_after_output(tails): on each of stdout and stderr that is a
-- terminal, the reset above; then a newline if the output passed through
-- (tails: the last bytes of each stream, when known) ended mid-line.
function M.reset_after_output(tails)
  local reset = false
  for fd = 1, 2 do
    if core.isatty(fd) then
      core.write(fd, M.RESET_AFTER_OUTPUT)
      reset = true
    end
  end
  if not reset then return end
  for _, t in ipairs(tails or {}) do
    if t ~= "" and t:sub(-1) ~= "\n" then
      core.write(2, "\n")
      return
    end
  end
end

-- How long a lone ESC waits for the rest of an escape sequence.
M.ESC_WAIT_MS = 25

-- Final byte of ESC [ ... or ESC O ... -> key
local FINAL = { A = "up", B = "down", C = "right", D = "left", H = "home", F = "end", Z = "backtab",
  P = "f1", Q = "f2", R = "f3", S = "f4" }
-- ESC [ N ~ -> key
local TILDE = { ["1"] = "home", ["2"] = "insert", ["3"] = "delete", ["4"] = "end", ["5"] = "pgup",
  ["6"] = "pgdn", ["7"] = "home", ["8"] = "end" }
local SINGLE = { ["\r"] = "enter", ["\n"] = "enter", ["\t"] = "tab", ["\127"] = "backspace",
  ["\8"] = "backspace", [" "] = "space", ["\3"] = "ctrl-c", ["\4"] = "ctrl-d", ["\2"] = "ctrl-b",
  ["\6"] = "ctrl-f", ["\12"] = "ctrl-l", ["\14"] = "ctrl-n", ["\16"] = "ctrl-p", ["\21"] = "ctrl-u",
  ["\1"] = "ctrl-a", ["\5"] = "ctrl-e", ["\11"] = "ctrl-k", ["\23"] = "ctrl-w", ["\18"] = "ctrl-r",
  ["\7"] = "ctrl-g", ["\25"] = "ctrl-y" }
-- ESC [ 1 ; M C/D: the arrow with a modifier (xterm: 3 Alt, 5 Ctrl)
local MODIFIED = { ["3C"] = "alt-right", ["3D"] = "alt-left", ["5C"] = "ctrl-right", ["5D"] = "ctrl-left" }

-- A key with Alt: ESC, then the key ("alt-b"; ESC DEL is "alt-backspace").
local function alt(c)
  if c == "\127" then return "alt-backspace" end
  if c:find("^[\32-\126]$") then return "alt-" .. c end
end

-- An escape sequence at i: key, next index (nil when incomplete).
local function sequence(s, i)
  local intro = s:sub(i + 1, i + 1)
  if intro == "" then return nil end  -- a lone ESC, or the start of a sequence
  if intro == "O" then
    local f = s:sub(i + 2, i + 2)
    if f == "" then return nil end
    return FINAL[f] or "unknown", i + 3
  end
  if intro ~= "[" then
    local key = alt(intro)
    if key then return key, i + 2 end
    return "escape", i + 1
  end
  -- CSI: parameter bytes 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e
  local params, final, after = s:match("^([\48-\63]*)[\32-\47]*([\64-\126])()", i + 2)
  if not final then
    if s:find("^[\32-\63]*$", i + 2) then return nil end
    return "unknown", i + 2
  end
  if final == "~" then return TILDE[params:match("^%d+") or ""] or "unknown", after end
  local mod = params:match("^1;(%d+)$")
  return mod and MODIFIED[mod .. final] or FINAL[final] or "unknown", after
end

-- The length of the UTF-8 character at i: a whole valid one, 0 for the
-- start of one cut short at the end of s, nil for an invalid byte.
local function utf8_len(s, i)
  local b = s:byte(i)
  local len = b > 0xf4 and 0 or b >= 0xf0 and 4 or b >= 0xe0 and 3 or b >= 0xc2 and 2 or 0
  if len == 0 then return nil end
  local ch = s:sub(i, i + len - 1)
  if utf8.len(ch) == 1 then return len end
  if #ch < len and not ch:find("[^\128-\191]", 2) then return 0 end
  return nil
end

-- decode(bytes) -> keys, rest: key names, and an incomplete escape
-- sequence or UTF-8 character left at the end ("" when none).  A
-- printable character (UTF-8 too) is its own name, and so is a byte that
-- is not UTF-8; unknown sequences and controls are "unknown".
function M.decode(s)
  local keys, i = {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    local b = c:byte()
    if c == "\27" then
      local key, nxt = sequence(s, i)
      if not key then return keys, s:sub(i) end
      keys[#keys + 1], i = key, nxt
    elseif SINGLE[c] then
      keys[#keys + 1], i = SINGLE[c], i + 1
    elseif b < 32 then
      keys[#keys + 1], i = "unknown", i + 1
    else
      local len = b < 0x80 and 1 or utf8_len(s, i) or 1
      if len == 0 then return keys, s:sub(i) end
      keys[#keys + 1], i = s:sub(i, i + len - 1), i + len
    end
  end
  return keys, ""
end

-- read_keys(fd, timeout_ms) -> keys (empty on a timeout) | nil, msg, code
-- A lone ESC, or a sequence or character cut short, waits ESC_WAIT_MS
-- for its rest; what never completes counts as Escape (its bytes past the
-- ESC, or those of a character cut short, as keys of their own).
function M.read_keys(fd, timeout_ms)
  local data, msg, code = core.read_key(fd, timeout_ms)
  if not data then return nil, msg, code end
  local keys, rest = M.decode(data)
  for _ = 1, 4 do
    if rest == "" then break end
    local more, mmsg, mcode = core.read_key(fd, M.ESC_WAIT_MS)
    if not more then return nil, mmsg, mcode end
    if more == "" then
      keys[#keys + 1] = rest:byte() == 27 and "escape" or rest:sub(1, 1)
      local tail = M.decode(rest:sub(2))
      table.move(tail, 1, #tail, #keys + 1, keys)
      return keys
    end
    local next_keys
    next_keys, rest = M.decode(rest .. more)
    table.move(next_keys, 1, #next_keys, #keys + 1, keys)
  end
  if rest ~= "" then keys[#keys + 1] = "unknown" end
  return keys
end

return M
