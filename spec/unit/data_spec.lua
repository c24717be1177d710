-- shannot.core.data.  integral (json.integers): lua-cjson decodes every
-- JSON number as a float; what comes back integral is an integer again, at
-- any depth, and nothing else changes.  plain (json.encode_line's check):
-- exactly the rule it followed in Lua.
local json = require("shannot.json")
local h = require("support.h")

describe("json.integers", function()
  it("makes integral floats integers, nested tables included, and leaves the rest", function()
    local v = assert(json.decode('{"id": 7, "new": {"mode": 420, "mtime_nsec": 999999999, "ratio": 0.5,' ..
      '"big": 9007199254740992, "neg": -3, "huge": 1e300}, "argv": ["1", 2.0, [3]], "ok": true, "s": "12"}'))
    assert.equal(v, json.integers(v))
    assert.equal("integer", math.type(v.id))
    assert.equal("integer", math.type(v.new.mode))
    assert.equal(999999999, v.new.mtime_nsec)
    assert.equal("integer", math.type(v.new.mtime_nsec))
    assert.equal("float", math.type(v.new.ratio))
    assert.equal(9007199254740992, v.new.big)
    assert.equal("integer", math.type(v.new.big))
    assert.equal("integer", math.type(v.new.neg))
    assert.equal("float", math.type(v.new.huge))  -- past the integers: stays as it is
    assert.equal("1", v.argv[1])
    assert.equal("integer", math.type(v.argv[2]))
    assert.equal("integer", math.type(v.argv[3][1]))
    assert.is_true(v.ok)
    assert.equal("12", v.s)
  end)

  it("refuses what is not a table, and nesting past a decoded document's depth", function()
    assert.has_error(function() json.integers("x") end)
    local deep = {}
    local t = deep
    for _ = 1, 1100 do t[1] = {}; t = t[1] end
    assert.has_error(function() json.integers(deep) end, "integral: tables nested more than 1000 deep")
  end)
end)

-- The rule json.encode_line followed in Lua, beside the C one it uses now.
local function plain_reference(v, depth)
  local t = type(v)
  if t == "string" then return utf8.len(v) ~= nil end
  if t == "number" then return math.type(v) == "integer" and v > -1e14 and v < 1e14 end
  if t == "boolean" or v == json.null then return true end
  if t ~= "table" or depth > 16 then return false end
  for k, x in pairs(v) do
    if (type(k) == "string" and not utf8.len(k)) or not plain_reference(x, depth + 1) then return false end
  end
  return true
end

describe("core.data.plain", function()
  local plain = require("shannot.core.data").plain
  local STRINGS = { "", "a", "\0", "é", "€", "𝄞", "\xC0\x80", "\xC3", "\xE0\x80\xAF", "\xED\xA0\x80", "\xED\x9F\xBF",
    "\xF4\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF", "\x80", "ok\xE2\x82", "\xEF\xBF\xBD" }
  local VALUES = { 0, -1, 99999999999999, 100000000000000, -99999999999999, -100000000000000, 0.5, 2.0, true,
    false, json.null, print, io.stdout }

  local function random_value(rng, depth)
    local r = rng(1, 10)
    if r <= 4 then
      local parts = {}
      for i = 1, rng(0, 3) do parts[i] = STRINGS[rng(1, #STRINGS)] end
      return table.concat(parts)
    elseif r <= 7 or depth > 18 then
      return VALUES[rng(1, #VALUES)]
    end
    local t = {}
    for _ = 1, rng(0, 4) do
      local key = rng(1, 3) == 1 and rng(1, 5) or random_value(rng, 99)
      if type(key) == "string" or math.type(key) == "integer" then t[key] = random_value(rng, depth + 1) end
    end
    return t
  end

  it("says what the Lua rule said, for odd strings, numbers and nesting", function()
    local rng, seed = h.seeded()
    for _ = 1, 20000 do
      local v = random_value(rng, 0)
      local want = plain_reference(v, 0)
      if plain(v) ~= want then error(string.format("seed %d: %s for %s", seed, tostring(not want), json.encode(v))) end
    end
    -- nesting: 16 tables deep is plain, 17 is not; a cycle is not
    local deep = {}
    local t = deep
    for _ = 1, 16 do t.x = {}; t = t.x end
    assert.is_true(plain(deep))
    t.x = {}
    assert.is_false(plain(deep))
    local cycle = {}
    cycle.self = cycle
    assert.is_false(plain(cycle))
  end)
end)
