-- JSON: decoding through lua-cjson (errors turned into line:column), and an
-- encoder of our own so output is stable (sorted keys), arrays and objects
-- are told apart even when empty (array_mt), and any byte string becomes
-- valid UTF-8 (invalid bytes are replaced by U+FFFD).
local cjson = require("cjson").new()

local M = {}

M.null = cjson.null
M.array_mt = { __name = "json.array" }

function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

local function position(text, offset)
  local line, col = 1, 1
  for i = 1, math.min(offset - 1, #text) do
    if text:byte(i) == 10 then
      line, col = line + 1, 1
    else
      col = col + 1
    end
  end
  return line, col
end

-- decode(text, name) -> value | nil, "NAME:LINE:COL: what is wrong"
function M.decode(text, name)
  local ok, value = pcall(cjson.decode, text)
  if ok then return value end
  local msg = tostring(value)
  local offset = tonumber(msg:match("at character (%d+)"))
  msg = msg:gsub(" at character %d+", ""):gsub("^Expected", "expected")
  if offset then
    local line, col = position(text, offset)
    return nil, string.format("%s:%d:%d: %s", name or "json", line, col, msg)
  end
  return nil, string.format("%s: %s", name or "json", msg)
end

-- integers(t) -> t with every integral number (lua-cjson decodes all
-- numbers as floats) an integer again, nested tables included
M.integers = require("shannot.core.data").integral

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end

-- Replaces every byte that is not part of valid UTF-8 with U+FFFD.
function M.valid_utf8(s)
  local out, i = {}, 1
  while true do
    local ok, bad = utf8.len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      return table.concat(out)
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\239\191\189"
    i = bad + 1
  end
end

local function c1(b) return string.format("\\u%04x", b:byte()) end

-- C1 controls (U+0080-U+009F) are escaped too: a JSON document printed
-- on a terminal must not drive it.
local function encode_string(s)
  s = M.valid_utf8(s)
  s = s:gsub('[%c"\\]', escape_char)
  if s:find("\194", 1, true) then s = s:gsub("\194([\128-\159])", c1) end
  return '"' .. s .. '"'
end

local function is_array(t)
  if getmetatable(t) == M.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

-- enc: {indent =, seen = (the tables open above: a cycle is an error)}
local function encode_table(enc, t, depth, out)
  local indent, seen = enc.indent, enc.seen
  if seen[t] then error("json: cannot encode a cycle", 0) end
  seen[t] = true
  local pad = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
  local close_pad = indent and ("\n" .. string.rep(indent, depth)) or ""
  local sep = indent and ": " or ":"
  if is_array(t) then
    if #t == 0 then out[#out + 1] = "[]" else
      out[#out + 1] = "["
      for i = 1, #t do
        out[#out + 1] = (i > 1 and "," or "") .. pad
        if depth <= 1 then
          -- Each element of a big list (a session's operations) becomes one
          -- string at once, so the pieces never pile up for the whole list.
          local piece = {}
          encode_value(enc, t[i], depth + 1, piece)
          out[#out + 1] = table.concat(piece)
        else
          encode_value(enc, t[i], depth + 1, out)
        end
      end
      out[#out + 1] = close_pad .. "]"
    end
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error("json: object key is not a string: " .. tostring(k), 0) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    if #keys == 0 then out[#out + 1] = "{}" else
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        out[#out + 1] = (i > 1 and "," or "") .. pad .. encode_string(k) .. sep
        encode_value(enc, t[k], depth + 1, out)
      end
      out[#out + 1] = close_pad .. "}"
    end
  end
  seen[t] = nil
end

function encode_value(enc, v, depth, out)
  local ty = type(v)
  if ty == "string" then
    out[#out + 1] = encode_string(v)
  elseif ty == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.14g", v)
    end
  elseif ty == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == nil or v == M.null then
    out[#out + 1] = "null"
  elseif ty == "table" then
    encode_table(enc, v, depth, out)
  else
    error("json: cannot encode a " .. ty, 0)
  end
end

-- Whether lua-cjson encodes a value exactly: strings (keys too) valid
-- UTF-8, numbers integers within its 14 significant digits, no cycle (in
-- C: asked of every record written)
local plain = require("shannot.core.data").plain

-- encode_line(value) -> text: one record of a JSON-lines file, through
-- lua-cjson (twenty times faster) where that is exact, else encode().
-- Keys are in no order and an empty list is written {}: for files our
-- own reader reads, record by record.
function M.encode_line(value)
  if plain(value) then
    local ok, text = pcall(cjson.encode, value)
    if ok then return text end
  end
  return M.encode(value)
end

-- encode(value [, {indent = "  "}]) -> text
function M.encode(value, opts)
  local out = {}
  encode_value({ indent = opts and opts.indent, seen = {} }, value, 0, out)
  return table.concat(out)
end

return M
