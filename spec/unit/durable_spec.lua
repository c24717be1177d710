-- shannot.durable: files synced together, then renamed; the order of the
-- syncs and renames is the crash-safety promise (a file's content is
-- durable before its rename, an earlier rename's directory before the
-- next file is renamed), and a failure leaves no temp file behind.
local durable = require("shannot.durable")
local fs = require("shannot.fs")
local h = require("support.h")

-- A real file opened at tmp, wrapped so that every call the batch makes
-- is logged with what was in place then.
local function watched(log, tmp, watch, fail_sync)
  local f = assert(fs.open(tmp, "a", 384))
  assert(f:write("content of " .. tmp))
  local name = tmp:match("[^/]+$")
  return setmetatable({}, { __index = {
    start_sync = function() log[#log + 1] = "start " .. name; return f:start_sync() end,
    sync = function()
      local present = {}
      for _, p in ipairs(watch) do present[#present + 1] = fs.exists(p) and "+" or "-" end
      log[#log + 1] = "sync " .. name .. " " .. table.concat(present)
      if fail_sync then return nil, "EIO (made up)" end
      return f:sync()
    end,
    close = function() return f:close() end,
  } })
end

describe("durable batches", function()
  after_each(h.cleanup)

  it("start every file's writeback, sync them all, then rename each in the order added", function()
    local dir = h.tmpdir()
    local a, b = dir .. "/a.json", dir .. "/b.json"
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, a .. ".tmp", { a, b }), a .. ".tmp", a)
    batch:file(watched(log, b .. ".tmp", { a, b }), b .. ".tmp", b)
    assert.is_true(batch:commit())
    assert.same({ "start a.json.tmp", "start b.json.tmp", "sync a.json.tmp --", "sync b.json.tmp --" }, log)
    assert.equal("content of " .. a .. ".tmp", fs.read_file(a))
    assert.equal("content of " .. b .. ".tmp", fs.read_file(b))
    assert.is_false(fs.exists(a .. ".tmp"))
    assert.is_false(fs.exists(b .. ".tmp"))
  end)

  it("syncs a file added after a place() before renaming anything more (a log's line before its head)", function()
    local dir = h.tmpdir()
    local session, line, head = dir .. "/session.json", dir .. "/log.jsonl", dir .. "/head.json"
    h.write(head, "old head")
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, session .. ".tmp", { session, head }), session .. ".tmp", session)
    assert.is_true(batch:place())
    -- the line: no rename of its own; head.json's new text: renamed
    batch:file(watched(log, line, { session, head }), line)
    batch:file(watched(log, head .. ".tmp", { session, head }), head .. ".tmp", head)
    local before = fs.read_file(head)
    assert.is_true(batch:commit())
    assert.equal("old head", before)
    -- session.json was in place when the line was synced; head.json was
    -- the old one until both the line and its new text were synced
    assert.same({ "sync session.json.tmp -+", "sync log.jsonl ++", "sync head.json.tmp ++" },
      { log[2], log[5], log[6] })
    assert.equal("content of " .. head .. ".tmp", fs.read_file(head))
  end)

  it("renames nothing and leaves no temp file when a sync fails", function()
    local dir = h.tmpdir()
    local a, b = dir .. "/a", dir .. "/b"
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, a .. ".tmp", {}), a .. ".tmp", a)
    batch:file(watched(log, b .. ".tmp", {}, true), b .. ".tmp", b)
    local ok, msg = batch:commit()
    assert.is_nil(ok)
    assert.matches("b%.tmp: EIO %(made up%)", msg)
    assert.same({}, fs.readdir(dir))
  end)

  it("names a file written in place whose sync fails, and leaves it (only temps are removed)", function()
    local dir = h.tmpdir()
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, dir .. "/audit.jsonl", {}, true), dir .. "/audit.jsonl")
    batch:file(watched(log, dir .. "/head.tmp", {}), dir .. "/head.tmp", dir .. "/head.json")
    local ok, msg = batch:commit()
    assert.is_nil(ok)
    assert.equal(dir .. "/audit.jsonl: EIO (made up)", msg)
    assert.same({ "audit.jsonl" }, fs.readdir(dir))
  end)

  it("keeps what was renamed and removes the temps after a rename that fails", function()
    local dir = h.tmpdir()
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, dir .. "/a.tmp", {}), dir .. "/a.tmp", dir .. "/a")
    batch:file(watched(log, dir .. "/b.tmp", {}), dir .. "/b.tmp", dir .. "/missing/b")
    batch:file(watched(log, dir .. "/c.tmp", {}), dir .. "/c.tmp", dir .. "/c")
    local ok, msg = batch:commit()
    assert.is_nil(ok)
    assert.matches("missing/b", msg)
    local names = fs.readdir(dir)
    table.sort(names)
    assert.same({ "a" }, names)
  end)

  it("abandon() closes the files and removes their temps; the batch can be used again", function()
    local dir = h.tmpdir()
    local log = {}
    local batch = durable.batch()
    batch:file(watched(log, dir .. "/a.tmp", {}), dir .. "/a.tmp", dir .. "/a")
    batch:abandon()
    assert.same({}, fs.readdir(dir))
    batch:file(watched(log, dir .. "/b.tmp", {}), dir .. "/b.tmp", dir .. "/b")
    assert.is_true(batch:commit())
    assert.same({ "b" }, fs.readdir(dir))
  end)
end)

describe("a session's save", function()
  after_each(h.cleanup)

  -- (in the binary: the session store is the one of a private home)
  it("refused for its size leaves nothing on disk: operations.jsonl stays as it was, no temp file", function()
    local home = h.home()
    local file = h.write(h.tmpdir() .. "/t.lua", [[
      local fs = require("shannot.fs")
      local session = require("shannot.session")
      local id = assert(session.reserve("t"))
      local s = session.new({ id = id, name = "t", command = { "true" }, profile = "system" })
      s.operations = { { kind = "mkdir", path = "/etc/a", mode = 493, uid = 0, gid = 0 } }
      assert(session.save(s))
      local dir = assert(session.dir(id))
      local before = assert(fs.read_file(dir .. "/operations.jsonl"))
      -- the operations still fit; the header with them does not
      s.operations[1].mode = 448
      s.rationale = ("r"):rep(4000)
      local ok, e = session.save(s, #before + 1000)
      assert(ok == nil and e.exit == 3, tostring(e and e.message))
      assert(fs.read_file(dir .. "/operations.jsonl") == before, "operations.jsonl changed")
      for _, n in ipairs(fs.readdir(dir)) do assert(not n:match("%.tmp%-"), n) end
      io.write("ok")
    ]])
    local r = h.shannot({ "lua", file }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("ok", r.stdout)
  end)
end)
