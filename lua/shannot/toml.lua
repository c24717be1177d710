-- TOML 1.0.0 parser and a minimal, comment-preserving table editor.
local M = {}

local byte, sub, find, match, gsub, format, rep =
  string.byte, string.sub, string.find, string.match, string.gsub, string.format, string.rep
local concat = table.concat
local utf8_char, utf8_len = utf8.char, utf8.len
local mtype = math.type

local array_mt = {__name = "toml.array"}
local datetime_mt = {__name = "toml.datetime"}
datetime_mt.__tostring = function(d) return d.text end
M.array_mt = array_mt
M.datetime_mt = datetime_mt

local error_mt = {__name = "toml.error"}
error_mt.__tostring = function(e)
  if e.line then
    return format("%s:%d:%d: %s", e.file or "<toml>", e.line, e.col, e.msg)
  end
  return format("%s: %s", e.file or "<toml>", e.msg)
end

-- Errors about the input travel as tables with this metatable so that
-- M.parse can tell them apart from genuine bugs, which are re-raised.
local Fail = {}

local MAX_DEPTH = 256
local NAN = 0.0 / 0.0

local function fail(pos, fmt, ...)
  error(setmetatable({pos = pos, msg = format(fmt, ...)}, Fail), 0)
end

local function line_col(src, pos)
  local line, start = 1, 1
  while true do
    local nl = find(src, "\n", start, true)
    if not nl or nl >= pos then break end
    line, start = line + 1, nl + 1
  end
  -- columns count characters, not bytes: skip UTF-8 continuation bytes
  local _, chars = gsub(sub(src, start, pos - 1), "[^\128-\191]", "")
  return line, chars + 1
end

local function new_error(src, pos, msg, file)
  local e = {file = file, msg = msg}
  if pos then e.line, e.col = line_col(src, pos) end
  return setmetatable(e, error_mt)
end

local function line_of(src, pos)
  return (line_col(src, pos))
end

-- Human-readable name of the character at pos, for error messages.
local function describe(src, pos)
  local c = byte(src, pos)
  if not c then return "end of file" end
  if c == 10 or c == 13 then return "end of line" end
  if c < 32 or c == 127 then return format("control character U+%04X", c) end
  return format("'%s'", match(src, "^[\0-\127\194-\244][\128-\191]*", pos) or sub(src, pos, pos))
end

local BARE_KEY = "^[A-Za-z0-9_%-]+$"

local ESCAPE_OUT = {
  ["\b"] = "\\b", ["\t"] = "\\t", ["\n"] = "\\n", ["\f"] = "\\f", ["\r"] = "\\r",
  ['"'] = '\\"', ["\\"] = "\\\\",
}

local function escape_char(c)
  return ESCAPE_OUT[c] or format("\\u%04X", byte(c))
end

local function quote(s)
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function key_text(k)
  if find(k, BARE_KEY) then return k end
  return quote(k)
end

local function keys_text(keys, n)
  local parts = {}
  for i = 1, n or #keys do parts[i] = key_text(keys[i]) end
  return concat(parts, ".")
end

-- key_text("a.b") -> "\"a.b\"": a key as TOML writes it (bare when it can
-- be); keys_text({...}) -> the dotted key of its parts.
M.key_text, M.keys_text = key_text, keys_text

local function is_plain(v)
  return type(v) == "table" and getmetatable(v) == nil
end

---------------------------------------------------------------------------
-- Lexical helpers. The parser state `p` holds src, pos and bookkeeping.
---------------------------------------------------------------------------

local function skip_ws(p)
  local _, e = find(p.src, "^[ \t]*", p.pos)
  p.pos = e + 1
end

local function skip_comment(p)
  local src, pos = p.src, p.pos
  if byte(src, pos) ~= 35 then return end
  local e = find(src, "[\0-\8\10-\31\127]", pos + 1)
  if not e then
    p.pos = #src + 1
    return
  end
  local c = byte(src, e)
  if c ~= 10 and c ~= 13 then
    fail(e, "control character U+%04X is not allowed in a comment", c)
  end
  p.pos = e
end

-- Consumes one LF or CRLF; returns false when there is none at p.pos.
local function newline(p)
  local src, pos = p.src, p.pos
  local c = byte(src, pos)
  if c == 10 then
    p.pos = pos + 1
    return true
  elseif c == 13 then
    if byte(src, pos + 1) ~= 10 then
      fail(pos, "carriage return must be followed by a line feed")
    end
    p.pos = pos + 2
    return true
  end
  return false
end

local function end_of_line(p, what)
  skip_ws(p)
  skip_comment(p)
  if p.pos > #p.src or newline(p) then return end
  fail(p.pos, "expected end of line after %s, found %s", what, describe(p.src, p.pos))
end

-- Whitespace, newlines and comments, as allowed between array elements.
local function skip_array_space(p)
  while true do
    skip_ws(p)
    local c = byte(p.src, p.pos)
    if c == 35 then
      skip_comment(p)
    elseif c ~= 10 and c ~= 13 then
      return
    else
      newline(p)
    end
  end
end

---------------------------------------------------------------------------
-- Strings
---------------------------------------------------------------------------

local ESCAPE_IN = {b = "\b", t = "\t", n = "\n", f = "\f", r = "\r", ['"'] = '"', ["\\"] = "\\"}

-- pos is at a backslash; returns the decoded text and the position after it.
local function parse_escape(src, pos)
  local c = sub(src, pos + 1, pos + 1)
  local simple = ESCAPE_IN[c]
  if simple then return simple, pos + 2 end
  if c ~= "u" and c ~= "U" then
    fail(pos, "invalid escape sequence: backslash followed by %s", describe(src, pos + 1))
  end
  local n = c == "u" and 4 or 8
  local hex = sub(src, pos + 2, pos + 1 + n)
  if #hex < n or not find(hex, "^%x+$") then
    fail(pos, "invalid unicode escape: \\%s needs %d hex digits", c, n)
  end
  local cp = tonumber(hex, 16)
  if cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
    fail(pos, "escape \\%s%s is not a valid unicode scalar value", c, hex)
  end
  return utf8_char(cp), pos + 2 + n
end

local function control_in_string(pos, c)
  if c == 10 or c == 13 then
    fail(pos, "unterminated string: end of line before the closing quote")
  end
  fail(pos, "control character U+%04X must be escaped in a string", c)
end

local function parse_basic(p)
  local src, start = p.src, p.pos
  local pos, buf, n = start + 1, {}, 0
  while true do
    local e = find(src, '[\0-\8\10-\31\127"\\]', pos)
    if not e then fail(start, "unterminated string") end
    if e > pos then
      n = n + 1
      buf[n] = sub(src, pos, e - 1)
    end
    local c = byte(src, e)
    if c == 34 then
      p.pos = e + 1
      return concat(buf)
    elseif c == 92 then
      n = n + 1
      buf[n], pos = parse_escape(src, e)
    else
      control_in_string(e, c)
    end
  end
end

local function parse_literal(p)
  local src, start = p.src, p.pos
  local e = find(src, "['\0-\8\10-\31\127]", start + 1)
  if not e then fail(start, "unterminated string") end
  local c = byte(src, e)
  if c ~= 39 then control_in_string(e, c) end
  p.pos = e + 1
  return sub(src, start + 1, e - 1)
end

-- Position after the newline that may directly follow an opening delimiter.
local function after_opening(src, pos)
  if byte(src, pos) == 10 then return pos + 1 end
  if byte(src, pos) == 13 and byte(src, pos + 1) == 10 then return pos + 2 end
  return pos
end

-- A run of quotes inside a multi-line string: returns the content part and
-- whether the run closed the string.
local function quote_run(src, e, q)
  local _, last = find(src, "^" .. q .. "+", e)
  local run = last - e + 1
  if run < 3 then return sub(src, e, last), false, last end
  if run > 5 then fail(e, "too many quotes at the end of a multi-line string") end
  return rep(q, run - 3), true, last
end

local function ml_newline(src, e)
  if byte(src, e) == 13 and byte(src, e + 1) ~= 10 then
    fail(e, "carriage return must be followed by a line feed")
  end
  return byte(src, e) == 13 and e + 2 or e + 1
end

-- After a line-ending backslash, all whitespace and newlines are dropped.
local function skip_line_continuation(src, pos)
  while true do
    local _, e = find(src, "^[ \t]*", pos)
    local c = byte(src, e + 1)
    if c ~= 10 and c ~= 13 then return e + 1 end
    pos = ml_newline(src, e + 1)
  end
end

local function parse_ml(p, q, special)
  local src, start = p.src, p.pos
  local pos, buf, n = after_opening(src, start + 3), {}, 0
  while true do
    local e = find(src, special, pos)
    if not e then fail(start, "unterminated multi-line string") end
    if e > pos then
      n = n + 1
      buf[n] = sub(src, pos, e - 1)
    end
    local c = byte(src, e)
    local text, closed, last
    if c == 10 or c == 13 then
      text, pos = "\n", ml_newline(src, e)
    elseif c == 92 then
      if find(src, "^[ \t]*\r?\n", e + 1) then
        text, pos = "", skip_line_continuation(src, e + 1)
      else
        text, pos = parse_escape(src, e)
      end
    elseif c == byte(q) then
      text, closed, last = quote_run(src, e, q)
      pos = last + 1
    else
      fail(e, "control character U+%04X must be escaped in a string", c)
    end
    n = n + 1
    buf[n] = text
    if closed then
      p.pos = pos
      return concat(buf)
    end
  end
end

local ML_BASIC_SPECIAL = '[\0-\8\10-\31\127"\\]'
local ML_LITERAL_SPECIAL = "[\0-\8\10-\31\127']"

local function parse_string(p)
  local src, pos = p.src, p.pos
  local c = byte(src, pos)
  if c == 34 then
    if find(src, '^"""', pos) then return parse_ml(p, '"', ML_BASIC_SPECIAL) end
    return parse_basic(p)
  end
  if find(src, "^'''", pos) then return parse_ml(p, "'", ML_LITERAL_SPECIAL) end
  return parse_literal(p)
end

---------------------------------------------------------------------------
-- Keys
---------------------------------------------------------------------------

local function parse_key_part(p)
  local src, pos = p.src, p.pos
  local c = byte(src, pos)
  if c == 34 or c == 39 then
    if find(src, '^"""', pos) or find(src, "^'''", pos) then
      fail(pos, "multi-line strings cannot be used as keys")
    end
    return parse_string(p)
  end
  local s, e = find(src, "^[A-Za-z0-9_%-]+", pos)
  if not s then fail(pos, "expected a key, found %s", describe(src, pos)) end
  p.pos = e + 1
  return sub(src, s, e)
end

-- Returns the key parts and the position of each part.
local function parse_key(p)
  local keys, where = {}, {}
  while true do
    where[#where + 1] = p.pos
    keys[#keys + 1] = parse_key_part(p)
    skip_ws(p)
    if byte(p.src, p.pos) ~= 46 then return keys, where end
    p.pos = p.pos + 1
    skip_ws(p)
  end
end

---------------------------------------------------------------------------
-- Numbers
---------------------------------------------------------------------------

-- Digits of one class, with single underscores only between digits.
local function digits_ok(s, set)
  return find(s, "^[" .. set .. "]") ~= nil and find(s, "[" .. set .. "]$") ~= nil
    and not find(s, "__", 1, true) and find(s, "^[" .. set .. "_]+$") ~= nil
end

-- max_len: digit count above which any value (without leading zeros)
-- overflows; at exactly max_len, `too_big` decides.
local RADIX = {
  x = {set = "%x", base = 16, max_len = 16, too_big = function(d) return d > "7fffffffffffffff" end},
  o = {set = "0-7", base = 8, max_len = 21, too_big = function() return false end},
  b = {set = "01", base = 2, max_len = 63, too_big = function() return false end},
}

local function parse_radix(tok, pos)
  local r = RADIX[sub(tok, 2, 2)]
  local body = sub(tok, 3)
  if not r or not digits_ok(body, r.set) then fail(pos, "invalid number '%s'", tok) end
  local digits = match(gsub(body, "_", ""):lower(), "^0*(.*)$")
  if #digits > r.max_len or (#digits == r.max_len and r.too_big(digits)) then
    fail(pos, "integer '%s' does not fit in 64 bits", tok)
  end
  if digits == "" then return 0 end
  return tonumber(digits, r.base)
end

local function parse_decimal_int(sign, int, tok, pos)
  local digits = gsub(int, "_", "")
  local limit = sign == "-" and "9223372036854775808" or "9223372036854775807"
  if #digits > #limit or (#digits == #limit and digits > limit) then
    fail(pos, "integer '%s' does not fit in 64 bits", tok)
  end
  return math.tointeger(tonumber(sign .. digits))
end

local function parse_float(tok, rest, pos)
  local frac, after = match(rest, "^%.([%d_]*)(.*)$")
  if frac == "" then
    fail(pos, "invalid float '%s': a decimal point needs digits on both sides", tok)
  elseif frac and not digits_ok(frac, "%d") then
    fail(pos, "invalid number '%s'", tok)
  end
  rest = after or rest
  if rest ~= "" then
    local exp = match(rest, "^[eE][%+%-]?([%d_]*)$")
    if not exp or not digits_ok(exp, "%d") then fail(pos, "invalid number '%s'", tok) end
  end
  return tonumber((gsub(tok, "_", ""))) + 0.0
end

local SPECIAL_FLOAT = {
  inf = math.huge, ["+inf"] = math.huge, ["-inf"] = -math.huge,
  nan = NAN, ["+nan"] = NAN, ["-nan"] = NAN,
}

local function parse_number(tok, pos)
  local special = SPECIAL_FLOAT[tok]
  if special then return special end
  if find(tok, "^0[xob]") then return parse_radix(tok, pos) end
  local sign, int, rest = match(tok, "^([%+%-]?)([%d_]*)(.*)$")
  if not digits_ok(int, "%d") then fail(pos, "invalid value '%s'", tok) end
  if find(int, "^0[%d_]") then fail(pos, "leading zeros are not allowed in '%s'", tok) end
  if rest == "" then return parse_decimal_int(sign, int, tok, pos) end
  return parse_float(tok, rest, pos)
end

---------------------------------------------------------------------------
-- Dates and times
---------------------------------------------------------------------------

local DAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

local function days_in(year, month)
  if month == 2 and year % 4 == 0 and (year % 100 ~= 0 or year % 400 == 0) then return 29 end
  return DAYS[month]
end

-- in_range(v, {lo, hi}, what, src) -> v; src: {tok =, pos =}, the token
-- read and where (for the error)
local function in_range(v, range, what, src)
  if v < range[1] or v > range[2] then fail(src.pos, "invalid %s in '%s'", what, src.tok) end
  return v
end

-- set_date(dt, {y, mo, d}, src) -> the date's text
local function set_date(dt, ymd, src)
  local y, mo, d = ymd[1], ymd[2], ymd[3]
  dt.year = tonumber(y)
  dt.month = in_range(tonumber(mo), { 1, 12 }, "month", src)
  dt.day = in_range(tonumber(d), { 1, days_in(dt.year, dt.month) }, "day", src)
  return format("%s-%s-%s", y, mo, d)
end

-- set_time(dt, {h, mi, s, frac}, src) -> the time's text
local function set_time(dt, hms, src)
  local h, mi, s, frac = hms[1], hms[2], hms[3], hms[4]
  dt.hour = in_range(tonumber(h), { 0, 23 }, "hour", src)
  dt.min = in_range(tonumber(mi), { 0, 59 }, "minute", src)
  dt.sec = in_range(tonumber(s), { 0, 60 }, "second", src)
  local text = format("%s:%s:%s", h, mi, s)
  if frac == "" then return text end
  if frac == "." then fail(src.pos, "invalid time '%s': the fraction needs digits", src.tok) end
  dt.frac = sub(frac, 2)
  -- toml-test's canonical form shows at least milliseconds
  return text .. "." .. dt.frac .. rep("0", 3 - #dt.frac)
end

local function set_offset(dt, off, tok, pos)
  if off == "Z" or off == "z" then
    dt.offset = 0
    return "Z"
  end
  local sign, oh, om = match(off, "^([%+%-])(%d%d):(%d%d)$")
  if not sign then fail(pos, "invalid date-time '%s'", tok) end
  in_range(tonumber(oh), { 0, 23 }, "offset hour", { tok = tok, pos = pos })
  in_range(tonumber(om), { 0, 59 }, "offset minute", { tok = tok, pos = pos })
  dt.offset = (tonumber(oh) * 60 + tonumber(om)) * (sign == "-" and -1 or 1)
  return off
end

local TIME = "^(%d%d):(%d%d):(%d%d)(.*)$"

local function parse_datetime(tok, pos)
  local dt = setmetatable({}, datetime_mt)
  local y, mo, d, rest = match(tok, "^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  local src = { tok = tok, pos = pos }
  local date = y and set_date(dt, { y, mo, d }, src)
  if date and rest == "" then
    dt.kind, dt.text = "local-date", date
    return dt
  end
  if date then
    rest = match(rest, "^[Tt ](.*)$")
    if not rest then fail(pos, "invalid date-time '%s'", tok) end
  end
  local h, mi, s, after = match(rest or tok, TIME)
  if not h then fail(pos, "invalid date or time '%s'", tok) end
  local frac = match(after, "^%.%d*") or ""
  local off = sub(after, #frac + 1)
  local time = set_time(dt, { h, mi, s, frac }, src)
  if not date then
    if off ~= "" then fail(pos, "invalid time '%s': a local time cannot have an offset", tok) end
    dt.kind, dt.text = "local-time", time
  elseif off == "" then
    dt.kind, dt.text = "local-datetime", date .. "T" .. time
  else
    dt.kind, dt.text = "offset-datetime", date .. "T" .. time .. set_offset(dt, off, tok, pos)
  end
  return dt
end

---------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------

local parse_value

-- Bare values (booleans, numbers, dates) are read as one token first.
local function bare_token(p)
  local src, pos = p.src, p.pos
  local s, e = find(src, "^[%w_%+%-%.:]+", pos)
  if not s then fail(pos, "expected a value, found %s", describe(src, pos)) end
  -- a local date may be followed by a space and a time
  if e - s == 9 and byte(src, e + 1) == 32 and find(src, "^%d%d:", e + 2)
    and find(src, "^%d%d%d%d%-%d%d%-%d%d", s) then
    local _, time_end = find(src, "^[%w_%+%-%.:]+", e + 2)
    e = time_end
  end
  p.pos = e + 1
  return sub(src, s, e), s
end

local function parse_bare(p)
  local tok, pos = bare_token(p)
  if tok == "true" then return true end
  if tok == "false" then return false end
  if find(tok, "^%d%d%d%d%-") or find(tok, "^%d%d:") then return parse_datetime(tok, pos) end
  return parse_number(tok, pos)
end

local function enter(p)
  p.depth = p.depth + 1
  if p.depth > MAX_DEPTH then fail(p.pos, "values nested too deeply") end
end

local function parse_array(p)
  enter(p)
  local src, arr, n = p.src, setmetatable({}, array_mt), 0
  p.kind[arr] = "static"
  p.pos = p.pos + 1
  while true do
    skip_array_space(p)
    if byte(src, p.pos) == 93 then break end
    n = n + 1
    arr[n] = parse_value(p)
    skip_array_space(p)
    local c = byte(src, p.pos)
    if c == 93 then break end
    if c ~= 44 then fail(p.pos, "expected ',' or ']' in array, found %s", describe(src, p.pos)) end
    p.pos = p.pos + 1
  end
  p.pos = p.pos + 1
  p.depth = p.depth - 1
  return arr
end

local function what_is(p, v)
  if type(v) ~= "table" then return "a value" end
  if getmetatable(v) == datetime_mt then return "a value" end
  local kind = p.kind[v]
  if kind == "aot" then return "an array of tables" end
  if kind == "static" then return "an array" end
  if kind == "inline" then return "an inline table" end
  if kind == "dotted" then return "a table defined by dotted keys" end
  if kind == "explicit" then return "a table with its own [header]" end
  return "a table"
end

-- Stores value under a (possibly dotted) key relative to tbl.
-- Remembers where key k of tbl was written (for M.parse_located).
local function mark(p, tbl, k, pos)
  local t = p.keypos[tbl]
  if not t then t = {}; p.keypos[tbl] = t end
  if t[k] == nil then t[k] = pos end
end

-- assign(p, tbl, key, value): key = {keys, where} as parse_key read them
local function assign(p, tbl, key, value)
  local keys, where = key[1], key[2]
  local kind, n = p.kind, #keys
  for i = 1, n - 1 do
    local v = tbl[keys[i]]
    mark(p, tbl, keys[i], where[i])
    if v == nil then
      v = {}
      tbl[keys[i]] = v
      p.where[v] = where[i]
    elseif not is_plain(v) or (kind[v] ~= "dotted" and kind[v] ~= "implicit") then
      fail(where[i], "cannot add keys to %s: it is already %s", keys_text(keys, i), what_is(p, v))
    end
    kind[v] = "dotted"
    tbl = v
  end
  if tbl[keys[n]] ~= nil then fail(where[n], "duplicate key %q", keys_text(keys)) end
  if type(value) == "table" and p.kind[value] then p.where[value] = where[n] end
  mark(p, tbl, keys[n], where[n])
  tbl[keys[n]] = value
end

-- parse_keyval(p, tbl) -> the key's parts, the position after the value
local function parse_keyval(p, tbl)
  local keys, where = parse_key(p)
  if byte(p.src, p.pos) ~= 61 then
    fail(p.pos, "expected '=' after key %s, found %s", keys_text(keys), describe(p.src, p.pos))
  end
  p.pos = p.pos + 1
  skip_ws(p)
  assign(p, tbl, { keys, where }, parse_value(p))
  return keys, p.pos
end

local function parse_inline_table(p)
  enter(p)
  local src, tbl = p.src, {}
  p.pos = p.pos + 1
  skip_ws(p)
  if byte(src, p.pos) ~= 125 then
    while true do
      parse_keyval(p, tbl)
      skip_ws(p)
      local c = byte(src, p.pos)
      if c == 125 then break end
      if c ~= 44 then
        fail(p.pos, "expected ',' or '}' in inline table, found %s", describe(src, p.pos))
      end
      p.pos = p.pos + 1
      skip_ws(p)
      if byte(src, p.pos) == 125 then fail(p.pos, "trailing comma is not allowed in an inline table") end
    end
  end
  p.pos = p.pos + 1
  p.kind[tbl] = "inline"
  p.depth = p.depth - 1
  return tbl
end

parse_value = function(p)
  local c = byte(p.src, p.pos)
  if c == 34 or c == 39 then return parse_string(p) end
  if c == 91 then return parse_array(p) end
  if c == 123 then return parse_inline_table(p) end
  return parse_bare(p)
end

---------------------------------------------------------------------------
-- Tables and the document
---------------------------------------------------------------------------

-- Walks the parent part of a [header], creating implicit tables.
local function header_parent(p, keys, where)
  local kind, tbl = p.kind, p.root
  for i = 1, #keys - 1 do
    local v = tbl[keys[i]]
    mark(p, tbl, keys[i], where[i])
    if v == nil then
      v = {}
      kind[v] = "implicit"
      tbl[keys[i]] = v
    elseif kind[v] == "aot" then
      v = v[#v]
    elseif not is_plain(v) or kind[v] == "inline" then
      fail(where[i], "cannot define table [%s]: %s is %s", keys_text(keys), keys_text(keys, i), what_is(p, v))
    end
    tbl = v
  end
  return tbl
end

local function redefined(p, keys, where, v)
  local first = p.where[v]
  local at = first and format(" (line %d)", line_of(p.src, first)) or ""
  if p.kind[v] == "explicit" then
    fail(where[#keys], "table [%s] is defined twice (first at line %d)", keys_text(keys), line_of(p.src, first))
  end
  fail(where[#keys], "cannot define table [%s]: it is already %s%s", keys_text(keys), what_is(p, v), at)
end

local function open_table(p, keys, where)
  local parent = header_parent(p, keys, where)
  local k = keys[#keys]
  local v = parent[k]
  mark(p, parent, k, where[#keys])
  if v == nil then
    v = {}
    parent[k] = v
  elseif not is_plain(v) or p.kind[v] ~= "implicit" then
    redefined(p, keys, where, v)
  end
  p.kind[v] = "explicit"
  p.where[v] = where[#keys]
  return v
end

local function open_array_table(p, keys, where)
  local parent = header_parent(p, keys, where)
  local k = keys[#keys]
  local arr = parent[k]
  mark(p, parent, k, where[#keys])
  if arr == nil then
    arr = setmetatable({}, array_mt)
    p.kind[arr] = "aot"
    p.where[arr] = where[#keys]
    parent[k] = arr
  elseif p.kind[arr] ~= "aot" then
    fail(where[#keys], "cannot define array of tables [[%s]]: it is already %s",
      keys_text(keys), what_is(p, arr))
  end
  local t = {}
  p.kind[t] = "explicit"
  arr[#arr + 1] = t
  return t
end

local function parse_header(p)
  local src = p.src
  local aot = byte(src, p.pos + 1) == 91
  p.pos = p.pos + (aot and 2 or 1)
  skip_ws(p)
  local keys, where = parse_key(p)
  local close = aot and "]]" or "]"
  if sub(src, p.pos, p.pos + #close - 1) ~= close then
    fail(p.pos, "expected '%s' to close the table header, found %s", close, describe(src, p.pos))
  end
  p.pos = p.pos + #close
  p.current = aot and open_array_table(p, keys, where) or open_table(p, keys, where)
  return keys, aot
end

-- Sections record where each [header] and its key/value lines sit, for the editor.
-- lines: {keys, start, stop} of each key/value line (the key's first and
-- the value's last byte + 1).
local function new_section(p, keys, aot)
  local s = {keys = keys, aot = aot, start = p.line_start, lines = {}}
  p.sections[#p.sections + 1] = s
  return s
end

local function parse_document(p)
  local src = p.src
  local ok, bad = utf8_len(src)
  if not ok then fail(bad, "invalid UTF-8 byte sequence") end
  p.pos = find(src, "^\239\187\191") and 4 or 1
  p.line_start = p.pos
  local section = new_section(p, {}, false)
  section.body_end = p.pos
  while true do
    p.line_start = p.pos
    skip_ws(p)
    local c = byte(src, p.pos)
    if c == nil then break end
    if c == 91 then
      section = new_section(p, parse_header(p))
      end_of_line(p, "table header")
      section.body_end = p.pos
    elseif c == 35 or c == 10 or c == 13 then
      end_of_line(p, "comment")
    else
      local start = p.pos
      local keys, stop = parse_keyval(p, p.current)
      section.lines[#section.lines + 1] = {keys = keys, start = start, stop = stop}
      end_of_line(p, "value")
      section.body_end = p.pos
    end
  end
  return p.root
end

local function run_parser(text, filename)
  if type(text) ~= "string" then
    error("toml: text must be a string, got " .. type(text), 3)
  end
  local root = {}
  local p = {
    src = text, pos = 1, depth = 0, root = root, current = root,
    kind = {[root] = "explicit"}, where = {}, sections = {}, keypos = {},
  }
  local ok, res = pcall(parse_document, p)
  if ok then return p end
  if getmetatable(res) ~= Fail then error(res, 0) end
  return nil, new_error(text, res.pos, res.msg, filename)
end

function M.parse(text, filename)
  local p, err = run_parser(text, filename)
  if not p then return nil, err end
  return p.root
end

-- parse_located(text, filename) -> root, locate | nil, err.
-- locate(tbl, key) -> line, col where key of tbl (a table in root) was
-- written, or nil; for errors about the values a parse cannot judge.
function M.parse_located(text, filename)
  local p, err = run_parser(text, filename)
  if not p then return nil, err end
  local function locate(tbl, key)
    local pos = p.keypos[tbl] and p.keypos[tbl][key]
    if pos then return line_col(text, pos) end
  end
  return p.root, locate
end

---------------------------------------------------------------------------
-- Tagged form (toml-test)
---------------------------------------------------------------------------

local DATETIME_TAG = {
  ["offset-datetime"] = "datetime", ["local-datetime"] = "datetime-local",
  ["local-date"] = "date-local", ["local-time"] = "time-local",
}

local function float_text(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  for digits = 15, 17 do
    local s = format("%." .. digits .. "g", x)
    if tonumber(s) == x then return s end
  end
  return format("%.17g", x)
end

local function scalar_tag(v)
  local t = type(v)
  if t == "string" then return {type = "string", value = v} end
  if t == "boolean" then return {type = "bool", value = tostring(v)} end
  if mtype(v) == "integer" then return {type = "integer", value = format("%d", v)} end
  if t == "number" then return {type = "float", value = float_text(v)} end
  error("toml.tagged: unsupported value of type " .. t, 3)
end

function M.tagged(v)
  if type(v) ~= "table" then return scalar_tag(v) end
  local mt = getmetatable(v)
  if mt == datetime_mt then return {type = DATETIME_TAG[v.kind], value = v.text} end
  local out = {}
  if mt == array_mt then
    for i = 1, #v do out[i] = M.tagged(v[i]) end
    return setmetatable(out, array_mt)
  end
  for k, x in pairs(v) do out[k] = M.tagged(x) end
  return out
end

---------------------------------------------------------------------------
-- Editor
---------------------------------------------------------------------------

local function newline_style(text)
  local nl = find(text, "\n", 1, true)
  if nl and nl > 1 and byte(text, nl - 1) == 13 then return "\r\n" end
  return "\n"
end

local function check_utf8(s, what)
  if not utf8_len(s) then
    return nil, setmetatable({msg = what .. " is not valid UTF-8"}, error_mt)
  end
  return s
end

local emit_value

local function emit_array(v)
  local items = {}
  for i = 1, #v do
    local item, err = emit_value(v[i])
    if not item then return nil, err end
    items[i] = item
  end
  return "[" .. concat(items, ", ") .. "]"
end

local function is_sequence(v)
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n == #v
end

emit_value = function(v)
  local t = type(v)
  if t == "string" then
    local s, err = check_utf8(v, "value")
    return s and quote(s), err
  end
  if t == "boolean" then return tostring(v) end
  if mtype(v) == "integer" then return format("%d", v) end
  if t == "number" then
    local s = float_text(v)
    return find(s, "^[%+%-]?%d+$") and s .. ".0" or s
  end
  if t == "table" and getmetatable(v) == datetime_mt then return v.text end
  if t == "table" and (getmetatable(v) == array_mt or is_sequence(v)) then return emit_array(v) end
  error("toml: cannot write a value of type " .. t, 4)
end

local function render_table(path, kv, nl)
  local lines = {"[" .. keys_text(path) .. "]"}
  for i, pair in ipairs(kv) do
    if type(pair) ~= "table" or type(pair[1]) ~= "string" then
      error("toml: kv[" .. i .. "] must be a {key, value} pair", 3)
    end
    local key, err = check_utf8(pair[1], "key")
    if not key then return nil, err end
    local value, verr = emit_value(pair[2])
    if not value then return nil, verr end
    lines[#lines + 1] = key_text(key) .. " = " .. value
  end
  return concat(lines, nl) .. nl
end

local function check_path(path)
  if type(path) ~= "table" or #path == 0 then
    error("toml: path must be a non-empty array of key parts", 3)
  end
  for i = 1, #path do
    if type(path[i]) ~= "string" then error("toml: path parts must be strings", 3) end
  end
end

local function edit_error(p, pos, file, fmt, ...)
  return nil, new_error(p.src, pos, format(fmt, ...), file)
end

-- Finds how the table at path is defined: returns "absent", "implicit" or
-- the section that defines it, or nil and an error when it cannot be edited.
local function locate(p, path, file)
  local tbl, name = p.root, keys_text(path)
  for i = 1, #path do
    local v = tbl[path[i]]
    if v == nil then return "absent" end
    local kind, part = p.kind[v], keys_text(path, i)
    if not is_plain(v) or kind == "inline" or kind == "aot" then
      return edit_error(p, p.where[v], file, "cannot edit table [%s]: %s is %s; edit the file by hand",
        name, part, what_is(p, v))
    end
    if kind == "dotted" and i == #path then
      return edit_error(p, p.where[v], file,
        "cannot edit table [%s]: it is defined by dotted keys, not a [%s] header; edit the file by hand",
        name, name)
    end
    tbl = v
  end
  if p.kind[tbl] == "implicit" then return "implicit" end
  for _, s in ipairs(p.sections) do
    if not s.aot and #s.keys == #path and keys_text(s.keys) == name then return s end
  end
  error("toml: internal error: no section for [" .. name .. "]")
end

local function lookup(root, path)
  local v = root
  for i = 1, #path do
    if not is_plain(v) then return nil end
    v = v[path[i]]
  end
  return v
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b and mtype(a) == mtype(b)
  end
  if getmetatable(b) == datetime_mt then return getmetatable(a) == datetime_mt and a.text == b.text end
  if #a ~= #b then return false end
  for i = 1, #a do
    if not same(a[i], b[i]) then return false end
  end
  return true
end

-- Re-parses the edited text so that a bad edit is reported, never written.
local function verify(text, path, check, file)
  local p, err = run_parser(text, file)
  if not p then
    return nil, setmetatable({file = file, msg = "edit produced invalid TOML (" .. err.msg .. ")"}, error_mt)
  end
  if not check(p, lookup(p.root, path)) then
    return nil, setmetatable({file = file, msg = "edit of [" .. keys_text(path) .. "] did not take effect"}, error_mt)
  end
  return text
end

local function append_table(text, block, nl)
  if text == "" then return block end
  local sep = ""
  if sub(text, -1) ~= "\n" then
    sep = nl .. nl
  elseif not find(text, "\n\r?\n$") then
    sep = nl
  end
  return text .. sep .. block
end

local function replace_section(text, s, block, nl)
  local body_end = s.body_end
  -- keep a missing final newline missing
  if body_end > #text and sub(text, -1) ~= "\n" then block = sub(block, 1, -1 - #nl) end
  return sub(text, 1, s.start - 1) .. block .. sub(text, body_end)
end

-- A check for verify: the table is a [header] table with each pair of kv.
local function holds(kv)
  return function(q, t)
    if not is_plain(t) or q.kind[t] ~= "explicit" then return false end
    for _, pair in ipairs(kv) do
      if not same(t[pair[1]], pair[2]) then return false end
    end
    return true
  end
end

function M.set_table(text, path, kv, filename)
  check_path(path)
  if type(kv) ~= "table" then error("toml: kv must be an array of {key, value} pairs", 2) end
  local p, err = run_parser(text, filename)
  if not p then return nil, err end
  local nl = newline_style(text)
  local block, berr = render_table(path, kv, nl)
  if not block then return nil, berr end
  local where, lerr = locate(p, path, filename)
  if not where then return nil, lerr end
  local out
  if type(where) == "table" then
    out = replace_section(text, where, block, nl)
  else
    out = append_table(text, block, nl)
  end
  return verify(out, path, holds(kv), filename)
end

-- update_table(text, path, kv, filename) -> text | nil, err: like
-- set_table, but a table that has a [header] keeps its other keys and
-- every comment: a key of kv already there gets the new value on its own
-- line, the others are added after the table's last key.
function M.update_table(text, path, kv, filename)
  check_path(path)
  if type(kv) ~= "table" then error("toml: kv must be an array of {key, value} pairs", 2) end
  local p, err = run_parser(text, filename)
  if not p then return nil, err end
  local where, lerr = locate(p, path, filename)
  if not where then return nil, lerr end
  if type(where) ~= "table" then return M.set_table(text, path, kv, filename) end
  local nl, edits, added = newline_style(text), {}, {}
  for i, pair in ipairs(kv) do
    if type(pair) ~= "table" or type(pair[1]) ~= "string" then
      error("toml: kv[" .. i .. "] must be a {key, value} pair", 2)
    end
    local key, kerr = check_utf8(pair[1], "key")
    if not key then return nil, kerr end
    local value, verr = emit_value(pair[2])
    if not value then return nil, verr end
    local line = key_text(key) .. " = " .. value
    local found
    for _, l in ipairs(where.lines) do
      if #l.keys == 1 and l.keys[1] == key then found = l end
    end
    if found then
      edits[#edits + 1] = {found.start, found.stop, line}
    else
      added[#added + 1] = line .. nl
    end
  end
  if #added > 0 then
    local at, block = where.body_end, concat(added)
    if byte(text, at - 1) ~= 10 then block = nl .. sub(block, 1, -1 - #nl) end
    edits[#edits + 1] = {at, at, block}
  end
  table.sort(edits, function(a, b) return a[1] > b[1] end)
  local out = text
  for _, e in ipairs(edits) do out = sub(out, 1, e[1] - 1) .. e[3] .. sub(out, e[2]) end
  return verify(out, path, holds(kv), filename)
end

local function section_index(p, s)
  for i, x in ipairs(p.sections) do
    if x == s then return i end
  end
end

-- Comment lines directly above a header (no blank line between) belong to
-- that header, so removing the previous table must keep them.
local function attached_comments_start(text, lo, hi)
  local cut = hi
  while cut > lo do
    local ls = lo
    for i = cut - 2, lo, -1 do
      if byte(text, i) == 10 then
        ls = i + 1
        break
      end
    end
    if not find(sub(text, ls, cut - 1), "^[ \t]*#") then break end
    cut = ls
  end
  return cut
end

function M.remove_table(text, path, filename)
  check_path(path)
  local p, err = run_parser(text, filename)
  if not p then return nil, err end
  local s, lerr = locate(p, path, filename)
  if not s then return nil, lerr end
  if s == "absent" then
    return nil, setmetatable({file = filename, msg = "no table [" .. keys_text(path) .. "] to remove"}, error_mt)
  end
  if s == "implicit" then
    return nil, setmetatable({file = filename, msg = "table [" .. keys_text(path)
      .. "] has no header of its own (only sub-tables); edit the file by hand"}, error_mt)
  end
  local nxt = p.sections[section_index(p, s) + 1]
  local stop = #text + 1
  if nxt then stop = attached_comments_start(text, s.body_end, nxt.start) end
  local out = sub(text, 1, s.start - 1) .. sub(text, stop)
  return verify(out, path, function(q, t)
    return t == nil or q.kind[t] == "implicit"
  end, filename)
end

return M
