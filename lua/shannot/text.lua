-- Wording helpers shared by every command: close-match suggestions for
-- misspelt names, and making untrusted strings safe to print.
local M = {}

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- suggest(word, candidates) -> the closest candidate, if close enough
function M.suggest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if not best_d or d < best_d or (d == best_d and c < best) then
      best, best_d = c, d
    end
  end
  if best and best_d <= math.max(2, #word // 3) then return best end
end

-- " (did you mean "x"?)" or ""
function M.did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  return s and string.format(' (did you mean "%s"?)', s) or ""
end

-- cp, length of the valid UTF-8 character at i, or nil
local function utf8_at(s, i)
  local b = s:byte(i)
  local len, cp, min
  if b >= 0xc2 and b <= 0xdf then len, cp, min = 2, b & 0x1f, 0x80
  elseif b >= 0xe0 and b <= 0xef then len, cp, min = 3, b & 0x0f, 0x800
  elseif b >= 0xf0 and b <= 0xf4 then len, cp, min = 4, b & 0x07, 0x10000
  else return nil end
  for k = 1, len - 1 do
    local c = s:byte(i + k)
    if not c or c & 0xc0 ~= 0x80 then return nil end
    cp = (cp << 6) | (c & 0x3f)
  end
  if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then return nil end
  return cp, len
end

-- Code points shown escaped: C1 controls (U+0080-U+009F: CSI, OSC, ...)
-- and the invisible ones that reorder or hide text (bidi overrides,
-- zero-width characters, line separators, BOM, soft hyphen, fillers,
-- variation selectors, tag characters, the Arabic letter mark and the
-- shorthand format controls), blanks that pass for a space
-- (no-break, ideographic, braille blank) and the combining marks of no
-- script of their own (they stack on the character before: "f" and "f"
-- with a mark above look alike at a glance).
local INVISIBLE = {  -- ranges of code points that show nothing (or nearly)
  { 0x00a0, 0x00a0 }, { 0x00ad, 0x00ad }, { 0x0300, 0x036f }, { 0x061c, 0x061c }, { 0x115f, 0x1160 },
  { 0x1680, 0x1680 }, { 0x17b4, 0x17b5 }, { 0x180b, 0x180f }, { 0x1ab0, 0x1aff }, { 0x1dc0, 0x1dff },
  { 0x2000, 0x200f }, { 0x2028, 0x202f }, { 0x205f, 0x206f }, { 0x20d0, 0x20ff }, { 0x2800, 0x2800 },
  { 0x3000, 0x3000 }, { 0x3164, 0x3164 }, { 0xfe00, 0xfe0f }, { 0xfe20, 0xfe2f }, { 0xfeff, 0xfeff },
  { 0xffa0, 0xffa0 }, { 0xfff9, 0xfffb }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0000, 0xe007f },
  { 0xe0100, 0xe01ef },
}

local function hidden(cp)
  if cp <= 0x9f then return true end
  for _, r in ipairs(INVISIBLE) do
    if cp >= r[1] and cp <= r[2] then return true end
  end
  return false
end

local NAMED = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }

-- inert(s) -> s with every byte < 0x20, DEL, C1 control, invisible
-- formatting character and invalid UTF-8 byte shown visibly (\x1b,
-- \u{9b}), so the result is printable UTF-8 only and nothing from a
-- script can drive a terminal (move the cursor, set the title).
function M.inert(s)
  s = tostring(s)
  if not s:find("[%z\1-\31\127-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    if b < 0x20 or b == 0x7f then
      out[#out + 1] = NAMED[string.char(b)] or string.format("\\x%02x", b)
      i = i + 1
    elseif b < 0x80 then
      local j = s:find("[%z\1-\31\127-\255]", i) or n + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    else
      local cp, len = utf8_at(s, i)
      if not cp then
        out[#out + 1] = string.format("\\x%02x", b)
        i = i + 1
      elseif hidden(cp) then
        out[#out + 1] = string.format("\\u{%x}", cp)
        i = i + len
      else
        out[#out + 1] = s:sub(i, i + len - 1)
        i = i + len
      end
    end
  end
  return table.concat(out)
end

-- without_strings(s) -> s without terminal control strings (OSC: title,
-- clipboard; DCS, APC, PM, SOS), each from its opener (ESC ], or the C1
-- control UTF-8 encoded) to BEL or ST, as the
-- copy of a command's output for a terminal gets them (proc.c does the
-- same while streaming).  Colours and cursor movement pass.
M.MAX_STRING = 4096
local STRING_OPENERS = { "\27[%]P_%^X]", "\194[\144\152\157\158\159]" }
local STRING_ENDS = { { "\7", 0 }, { "\27\\", 1 }, { "\194\156", 1 } }  -- BEL, ST, C1 ST: last byte's offset

function M.without_strings(s)
  if not s:find("[\27\194]") then return s end
  local out, i = {}, 1
  -- where each kind of opener and end comes next (false: nowhere): found
  -- again only once passed, so many strings cost one pass, not one each
  local next_end, next_open = {}, {}
  while true do
    -- an opener: ESC ] P _ ^ X, or the C1 control UTF-8 encoded
    local e
    for k, pattern in ipairs(STRING_OPENERS) do
      local at = next_open[k]
      if at ~= false and (at == nil or at < i) then
        at = s:find(pattern, i) or false
        next_open[k] = at
      end
      if at and (not e or at < e) then e = at end
    end
    if not e then break end
    out[#out + 1] = s:sub(i, e - 1)
    local stop
    for k, t in ipairs(STRING_ENDS) do
      local at = next_end[k]
      if at ~= false and (at == nil or at < e + 2) then
        at = s:find(t[1], e + 2, true) or false
        next_end[k] = at
      end
      if at and (not stop or at + t[2] < stop) then stop = at + t[2] end
    end
    -- never ended (or too long to be one): the rest is text, less the opener
    if not stop or stop - e > M.MAX_STRING then stop = e + 1 end
    i = stop + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- inert_lines(s) -> s made inert line by line, its newlines kept (a diff
-- or a log shown as it is, but never driving the terminal)
function M.inert_lines(s)
  return (tostring(s):gsub("[^\n]+", M.inert))
end

-- middle(s, max) -> s, or its first and last max/2 bytes around "..."
-- when longer (a path too long to show whole in a one-line message)
function M.middle(s, max)
  if #s <= max then return s end
  return s:sub(1, max // 2) .. "..." .. s:sub(-(max // 2))
end

-- What a shell word may hold unquoted
local UNQUOTED = "[^%w%%+,./:=@_%-]"

-- quote(s) -> s as a POSIX shell word (for showing command lines)
function M.quote(s)
  if s ~= "" and not s:find(UNQUOTED) then return s end
  if not s:find("'", 1, true) then return "'" .. s .. "'" end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- command_line(argv) -> the words as one line a shell would read back,
-- each made inert first (so the line is inert too)
function M.command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do
    -- a plain word (most are) is inert and needs no quotes: one look
    if type(a) == "string" and a ~= "" and not a:find(UNQUOTED) then
      words[i] = a
    else
      words[i] = M.quote(M.inert(a))
    end
  end
  return table.concat(words, " ")
end

return M
