-- STYLE 32: one error shape above the C wrappers (an err object: message,
-- exit, code) and one throw/catch pair (err.throw, err.try).
local err = require("shannot.err")
local fs = require("shannot.fs")
local h = require("support.h")

describe("errors", function()
  it("are never thrown as ad-hoc tables or strings caught by field name", function()
    local found = {}
    h.lua_sources(function(path, src)
      if path ~= "lua/shannot/err.lua" then
        for _, pattern in ipairs({ "error%(%s*{", "apply_error", "capture_error" }) do
          if src:find(pattern) then found[#found + 1] = path .. ": " .. pattern end
        end
      end
    end)
    table.sort(found)
    assert.same({}, found)
  end)

  it("err.try returns what was thrown as a value, and lets a bug go on up", function()
    local v, e = err.try(function() err.throw(err.refused("no %s", "way")) end)
    assert.is_nil(v)
    assert.is_true(err.is(e))
    assert.equal("no way", e.message)
    assert.equal(3, e.exit)
    assert.same({ 1, 2 }, { err.try(function() return 1, 2 end) })
    assert.has_error(function() err.try(function() error("a bug") end) end, "a bug")
    assert.has_error(function() err.throw("a string") end)
  end)

  it("come back from the walk, the executors and the approval checks as err objects", function()
    local dir = h.tmpdir()
    -- the walk: an upper tree that is not there
    local w, werr = require("shannot.capture.walk").operations({ { target = dir, upper = dir .. "/nope" } }, dir)
    assert.is_nil(w)
    assert.is_true(err.is(werr), tostring(werr))
    -- an executor: a path below a symlink is refused
    assert(fs.symlink("/", dir .. "/link"))
    local ex = require("shannot.executor.local").new()
    local st, serr = ex:state(dir .. "/link/etc/passwd")
    assert.is_nil(st)
    assert.is_true(err.is(serr))
    assert.equal("ELOOP", serr.code)
    local ok, aerr = ex:apply({ id = 1, kind = "chmod", path = dir .. "/link/etc/x", new = { mode = 420 } },
      { temp_prefix = ".t-" })
    assert.is_nil(ok)
    assert.is_true(err.is(aerr))
    -- the approval seal: a session without one
    local sealed, why = require("shannot.session.approval").check({ operations = {} })
    assert.is_nil(sealed)
    assert.is_true(err.is(why))
    assert.equal(3, why.exit)
    -- the deferred-command channel: a malformed record
    local file = dir .. "/deferred"
    h.write(file, "garbage\0")
    local records, derr = require("shannot.capture.staging").read_deferred(file, { names = {}, dirs = {} })
    assert.is_nil(records)
    assert.is_true(err.is(derr))
  end)
end)
