-- The local executor's file primitives as execute drives them (ex:apply):
-- a temp file a killed execute left is made anew, not refused, and the
-- directory kept open from one file written to the next is never written
-- into once another operation may have moved or removed it.
local fs = require("shannot.fs")
local store = require("shannot.store")
local h = require("support.h")

local function write_op(id, path, info)
  return { id = id, kind = "write", path = path, new = { type = "file", hash = info.hash, size = info.size,
    mode = 420 } }
end

describe("the local executor's apply", function()
  local dir, blobs, ex, ctx
  before_each(function()
    dir = h.tmpdir()
    blobs = dir .. "/blobs"
    assert(fs.mkdir(blobs))
    assert(fs.mkdir(dir .. "/host"))
    ex = require("shannot.executor.local").new()
    ctx = { blobs = blobs, temp_prefix = ".t-" }
  end)
  after_each(function() ex:close() end)

  local function apply(op)
    local ok, e = ex:apply(op, ctx)
    assert(ok, e and e.message)
  end

  it("makes a file anew over a temp a killed run left, and leaves no temp", function()
    local info = assert(store.put_string(blobs, "hello\n"))
    h.write(dir .. "/host/.t-1", "stale")
    apply(write_op(1, dir .. "/host/f", info))
    assert.equal("hello\n", fs.read_file(dir .. "/host/f"))
    assert.same({ "f" }, fs.readdir(dir .. "/host"))
  end)

  it("writes into the directory the path names now, after a rename or a removal of the one before", function()
    local one, two, three = assert(store.put_string(blobs, "1")), assert(store.put_string(blobs, "2")),
      assert(store.put_string(blobs, "3"))
    local a, b = dir .. "/host/a", dir .. "/host/b"
    apply({ id = 1, kind = "mkdir", path = a, new = { type = "dir", mode = 493 } })
    apply(write_op(2, a .. "/x", one))
    apply({ id = 3, kind = "rename", path = b, from = a })
    apply({ id = 4, kind = "mkdir", path = a, new = { type = "dir", mode = 493 } })
    apply(write_op(5, a .. "/y", two))
    assert.equal("1", fs.read_file(b .. "/x"))
    assert.same({ "x" }, fs.readdir(b))
    assert.equal("2", fs.read_file(a .. "/y"))
    apply({ id = 6, kind = "delete", path = a })
    apply({ id = 7, kind = "mkdir", path = a, new = { type = "dir", mode = 493 } })
    apply(write_op(8, a .. "/z", three))
    assert.same({ "z" }, fs.readdir(a))
    assert.equal("3", fs.read_file(a .. "/z"))
    -- and one written after another in the same directory lands there
    apply(write_op(9, a .. "/w", one))
    local names = fs.readdir(a)
    table.sort(names)
    assert.same({ "w", "z" }, names)
  end)
end)
