-- capture/walk.lua's [capture] ignore: what it leaves out, and counts.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local walk = require("shannot.capture.walk")
local h = require("support.h")

-- A host tree and an upper tree as a run would leave them.
local function trees()
  local root = h.tmpdir()
  local host, upper, blobs = root .. "/host", root .. "/upper", root .. "/blobs"
  for _, d in ipairs({ host, upper, blobs, host .. "/log", host .. "/etc", upper .. "/log", upper .. "/etc" }) do
    assert(fs.mkdir_p(d, 493))
  end
  h.write(host .. "/log/old.log", "old\n")
  h.write(host .. "/etc/gone.conf", "gone\n")
  h.write(host .. "/log/keep.log", "keep\n")
  return host, upper, blobs
end

local function whiteout(path)
  local r = assert(proc.run({ "mknod", path, "c", "0", "0" }))
  return r.code == 0
end

local function kinds(w)
  local out = {}
  for _, op in ipairs(w.ops) do out[#out + 1] = op.kind .. " " .. op.path end
  table.sort(out)
  return out
end

describe("the walk's ignore list", function()
  it("leaves out ignored writes, deletions and trees, and counts them", function()
    local host, upper, blobs = trees()
    h.write(upper .. "/log/old.log", "old\nmore\n")        -- ignored write
    h.write(upper .. "/etc/app.conf", "port = 1\n")        -- kept
    assert(fs.mkdir_p(upper .. "/log/pkg/sub", 493))       -- ignored tree (3 entries + 1 file)
    h.write(upper .. "/log/pkg/sub/a.log", "a\n")
    assert(fs.mkdir(upper .. "/log/empty", 493))           -- a new empty directory: structure, kept
    assert(fs.mkdir_p(upper .. "/etc/py/__pycache__", 493))  -- only ignored inside: left out with py/
    h.write(upper .. "/etc/py/__pycache__/m.pyc", "x")
    local deleted = whiteout(upper .. "/log/keep.log") and whiteout(upper .. "/etc/gone.conf")
    local w = assert(walk.operations({ { target = host, upper = upper } }, blobs, nil,
      { ignore = { host .. "/log/**", "**/__pycache__/**" } }))
    local want = { "mkdir " .. host .. "/log/empty", "write " .. host .. "/etc/app.conf" }
    if deleted then want[#want + 1] = "delete " .. host .. "/etc/gone.conf" end
    table.sort(want)
    assert.same(want, kinds(w))
    -- old.log 1, pkg/ pkg/sub/ a.log 3, m.pyc 1, __pycache__/ 1, py/ 1, keep.log's whiteout 1
    assert.equal(deleted and 8 or 7, w.ignored)
    assert.equal("old\n", fs.read_file(host .. "/log/old.log"))
  end)

  it("leaves the time of a directory where only ignored paths changed", function()
    local host, upper, blobs = trees()
    h.write(upper .. "/log/new.log", "new\n")
    h.write(upper .. "/etc/app.conf", "port = 1\n")
    local w = assert(walk.operations({ { target = host, upper = upper } }, blobs, nil,
      { ignore = { host .. "/log/**" } }))
    assert.same({ "write " .. host .. "/etc/app.conf" }, kinds(w))
    local times = {}
    for _, t in ipairs(w.dir_times) do times[t.path] = true end
    assert.is_true(times[host .. "/etc"])
    assert.is_nil(times[host .. "/log"])
  end)

  it("keeps everything with an empty list", function()
    local host, upper, blobs = trees()
    h.write(upper .. "/log/old.log", "old\nmore\n")
    local w = assert(walk.operations({ { target = host, upper = upper } }, blobs, nil, { ignore = {} }))
    assert.same({ "write " .. host .. "/log/old.log" }, kinds(w))
    assert.equal(0, w.ignored)
  end)
end)
