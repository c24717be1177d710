-- Checks a tool call's arguments against the tool's inputSchema: the part
-- of JSON Schema the tools use (type, properties, required,
-- additionalProperties = false, items, minItems, enum, minimum, maximum,
-- maxLength).
-- A failure is a sentence the model can act on: which argument, what was
-- expected, what came.
local json = require("shannot.json")
local text = require("shannot.text")

local M = {}

local function is_array(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" then return false end
    n = n + 1
  end
  return n == #v
end

local function kind_of(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "table" then
    if next(v) == nil then return getmetatable(v) == json.array_mt and "array" or "empty" end
    return is_array(v) and "array" or "object"
  end
  -- lua-cjson decodes every number as a float
  if t == "number" and (math.type(v) == "integer" or v == math.floor(v)) then return "integer" end
  return t
end

local ARTICLE = { array = "an array", object = "an object", string = "a string", number = "a number",
  integer = "an integer", boolean = "a boolean", null = "null", empty = "an empty object or array" }

-- does a value of kind `got` satisfy schema type `want`
local function fits(want, got)
  if want == got then return true end
  if want == "number" and got == "integer" then return true end
  -- cjson decodes [] and {} alike: an empty one fits either
  return got == "empty" and (want == "array" or want == "object")
end

local check

local function check_object(schema, v, where)
  for _, name in ipairs(schema.required or {}) do
    if v[name] == nil then
      return string.format('missing required argument "%s"', where .. name)
    end
  end
  local props = schema.properties or {}
  local names = {}
  for k in pairs(v) do names[#names + 1] = tostring(k) end
  table.sort(names)
  for _, k in ipairs(names) do
    local sub = props[k]
    if sub then
      local problem = check(sub, v[k], where .. k)
      if problem then return problem end
    elseif schema.additionalProperties == false then
      local known = {}
      for p in pairs(props) do known[#known + 1] = p end
      table.sort(known)
      return string.format('unknown argument "%s"%s', text.inert(where .. k), #known > 0 and
        " (this tool takes: " .. table.concat(known, ", ") .. ")" or " (this tool takes none)")
    end
  end
end

function check(schema, v, where)
  local got = kind_of(v)
  if schema.type and not fits(schema.type, got) then
    return string.format('"%s" must be %s, not %s', where, ARTICLE[schema.type] or schema.type, ARTICLE[got] or got)
  end
  if schema.enum then
    local ok = false
    for _, e in ipairs(schema.enum) do ok = ok or e == v end
    if not ok then
      return string.format('"%s" must be one of %s', where, table.concat(schema.enum, ", "))
    end
  end
  if type(v) == "string" and schema.maxLength then
    local n = utf8.len(v)
    if not n then return string.format('"%s" must be valid UTF-8', where) end
    if n > schema.maxLength then
      return string.format('"%s" must be at most %d characters long', where, schema.maxLength)
    end
  end
  if type(v) == "number" then
    if schema.minimum and v < schema.minimum then
      return string.format('"%s" must be at least %g', where, schema.minimum)
    end
    if schema.maximum and v > schema.maximum then
      return string.format('"%s" must be at most %g', where, schema.maximum)
    end
  end
  if schema.type == "array" and type(v) == "table" then
    if schema.minItems and #v < schema.minItems then
      return string.format('"%s" must have at least %d item%s', where, schema.minItems,
        schema.minItems == 1 and "" or "s")
    end
    for i, item in ipairs(v) do
      local problem = schema.items and check(schema.items, item, string.format("%s[%d]", where, i - 1))
      if problem then return problem end
    end
  elseif schema.type == "object" and type(v) == "table" then
    return check_object(schema, v, where == "" and "" or where .. ".")
  end
end

-- arguments(schema, args) -> nil | problem: args checked against a tool's
-- inputSchema (an object schema)
function M.arguments(schema, args)
  if kind_of(args) ~= "object" and kind_of(args) ~= "empty" then
    return "the arguments must be an object, not " .. (ARTICLE[kind_of(args)] or kind_of(args))
  end
  return check_object(schema, args, "")
end

return M
