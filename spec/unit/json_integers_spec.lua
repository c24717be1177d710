-- json.integers (shannot.core.sys.integral): lua-cjson decodes every JSON
-- number as a float; what comes back integral is an integer again, at any
-- depth, and nothing else changes.
local json = require("shannot.json")

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
