-- Sessions: ids, the status machine, TTL and expiry, listing and pruning,
-- through the real binary (`shannot lua` for the module, the CLI for the rest).
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

local session = require("shannot.session")

-- Runs Lua code inside `shannot lua` with the given home; returns result.
local function lua(home, code)
  local dir = h.tmpdir()
  local file = h.write(dir .. "/t.lua", code)
  return h.shannot({ "lua", file }, { home = home })
end

-- Makes a session on disk the way a run does; returns its id.
local function make(home, fields)
  local r = lua(home, [[
    local session = require("shannot.session")
    local id = assert(session.reserve("]] .. (fields.name or "test") .. [["))
    local s = session.new({ id = id, name = "test", ttl = ]] .. (fields.ttl or 3600) .. [[,
      now = ]] .. (fields.now or os.time()) .. [[, command = { "sh", "-c", "x" }, profile = "system",
      operations = { { id = 1, kind = "write", path = "/etc/x" } }, counts = { write = 1 } })
    assert(session.save(s))
    io.write(id)]])
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

describe("session", function()
  local home
  before_each(function() home = h.tmpdir() end)
  after_each(h.cleanup)

  it("never writes a session.json larger than it may be: the one on disk stays", function()
    local id = make(home, {})
    local r = lua(home, [[
      local session = require("shannot.session")
      local s = assert(session.load("]] .. id .. [["))
      for i = 2, 2000 do s.operations[i] = { id = i, kind = "write", path = "/etc/x" .. i } end
      local ok, e = session.save(s, 10000)
      io.write(tostring(ok), "|", e.message, "|", e.exit)]])
    assert.equal(0, r.code, r.stderr)
    assert.matches("^nil|session " .. id:gsub("%p", "%%%0") .. " would be 0%.%d MiB of JSON %(2000 operations%), " ..
      "more than the 0%.0 MiB", r.stdout)
    assert.matches("|3$", r.stdout)
    local shown = h.shannot({ "show", id, "--json" }, { home = home })
    assert.equal(1, #json.decode(shown.stdout).operations)
  end)

  it("accepts only ids of the documented form", function()
    assert.is_true(session.valid_id("20261122-101010-setup-web-ab12"))
    assert.is_true(session.valid_id("20261122-101010-" .. string.rep("a", 40) .. "-0000"))
    for _, bad in ipairs({ "", "../../etc", "20261122-101010-x-ABCD", "20261122-101010--ab12x",
      "20261122-101010-" .. string.rep("a", 41) .. "-0000", "20261122-101010-a/b-ab12",
      "2026112-101010-x-ab12", "20261122-101010-x-ab12\n", "20261122-101010-X-ab12" }) do
      assert.is_false(session.valid_id(bad), bad)
    end
  end)

  it("names sessions after the script, in id-safe letters", function()
    assert.equal("deploy-web", session.name_from("/srv/Deploy Web.sh"))
    assert.equal("run", session.name_from("///"))
    assert.equal(40, #session.name_from(string.rep("x", 100)))
    assert.equal("sh-c", session.name_from("sh-c"))
  end)

  it("only reads in load; current expires an overdue session, saved and audited once", function()
    local id = make(home, { ttl = 1, now = os.time() - 10 })
    local r = lua(home, [[
      local session = require("shannot.session")
      local id = "]] .. id .. [["
      local before = require("shannot.fs").read_file(session.dir(id) .. "/session.json")
      local s = assert(session.load(id))
      assert(s.status == "pending", s.status)
      assert(require("shannot.fs").read_file(session.dir(id) .. "/session.json") == before, "load wrote")
      io.write(assert(session.current(id)).status, " ", assert(session.load(id)).status, " ",
        assert(session.current(id)).status)]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("expired expired expired", r.stdout)
    local log = json.decode(h.shannot({ "audit", "--json", "--session", id }, { home = home }).stdout)
    assert.equal(1, #log)
    assert.equal("session_expired", log[1].event_type)
  end)

  it("moves only along the documented transitions, recording each", function()
    local id = make(home, {})
    local r = lua(home, [[
      local session = require("shannot.session")
      local s = assert(session.load("]] .. id .. [["))
      local ok, e = session.transition(s, "executed")
      assert(not ok and e.exit == 3, "pending -> executed must be refused")
      assert(session.transition(s, "approved", { note = "by test" }))
      assert(session.transition(s, "executed"))
      assert(not session.transition(s, "pending"))
      assert(session.transition(s, "rolled_back"))
      local again = assert(session.load("]] .. id .. [["))
      io.write(again.status, " ", #again.history)]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("rolled_back 4", r.stdout)
  end)

  it("reports a pending session past its TTL as expired, and keeps it so", function()
    local id = make(home, { now = os.time() - 7200, ttl = 3600 })
    local r = h.shannot({ "sessions", "--json" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local list = json.decode(r.stdout)
    assert.equal("expired", list[1].status)
    local show = h.shannot({ "show", id, "--json" }, { home = home })
    assert.equal("expired", json.decode(show.stdout).status)
    local pending = h.shannot({ "sessions", "--status", "pending" }, { home = home })
    assert.equal("no pending sessions\n", pending.stdout)
  end)

  it("lists sessions newest first, filtered by status, and refuses an unknown status", function()
    local a = make(home, { name = "first", now = os.time() - 5 })
    local b = make(home, { name = "second" })
    local r = h.shannot({ "sessions" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find(b, 1, true) < r.stdout:find(a, 1, true) or a < b)
    assert.matches("1 write", r.stdout)
    local bad = h.shannot({ "sessions", "--status", "pendng" }, { home = home })
    assert.equal(2, bad.code)
    assert.matches('did you mean "pending"', bad.stderr)
  end)

  it("prune removes expired and old finished sessions, never pending ones, and says so", function()
    local expired = make(home, { name = "old", now = os.time() - 7200, ttl = 60 })
    local pending = make(home, { name = "fresh" })
    local r = h.shannot({ "prune" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("removed " .. expired:gsub("%p", "%%%0") .. " %(expired%)", r.stdout)
    assert.is_nil(r.stdout:find(pending, 1, true))
    assert.equal("nothing to prune\n", h.shannot({ "prune" }, { home = home }).stdout)
  end)

  it("reports a malformed session.json as a one-line error naming the file", function()
    local id = make(home, {})
    local file = home .. "/data/shannot/sessions/" .. id .. "/session.json"
    for _, bad in ipairs({ "{ not json", '{"id": "x"}', "[]" }) do
      h.write(file, bad)
      local r = h.shannot({ "show", id }, { home = home })
      assert.equal(2, r.code, bad)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("session.json", r.stderr)
    end
    assert.is_true(fs.exists(file))
  end)

  it("refuses hand-made metadata in an operation: attributes, times, hard-link sources (issue 14)", function()
    local id = make(home, {})
    local file = home .. "/data/shannot/sessions/" .. id .. "/session.json"
    local doc = assert(json.decode(assert(fs.read_file(file))))
    local op = { id = 1, kind = "write", path = "/etc/x", new = { type = "file", mode = 420 } }
    for _, bad in ipairs({
      { xattrs = { ["user.k"] = {} } }, { xattrs = { ["security.selinux"] = "00" } },
      { xattrs = { ["user.k"] = "xyz" } }, { mtime_sec = "soon" }, { hardlink = 7 },
    }) do
      for k, v in pairs(bad) do op.new[k] = v end
      doc.operations = { op }
      h.write(file, json.encode(doc))
      local r = h.shannot({ "show", id }, { home = home })
      assert.equal(2, r.code, json.encode(bad))
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("operations%[1%]%.new%.", r.stderr)
      for k in pairs(bad) do op.new[k] = nil end
    end
  end)

  it("names a bad record by file and line, or by file alone when read by its offset", function()
    local e, why = session.decode_entry("garbage", "cp.jsonl", 7)
    assert.is_nil(e)
    assert.matches("^cp%.jsonl:7:1:1: ", why)  -- (the record, then json's line and column)
    e, why = session.decode_entry('{"path": 5, "exists": true}', "cp.jsonl")
    assert.is_nil(e)
    assert.matches("^cp%.jsonl: field record%.path must be a string", why)
    e, why = session.decode_entry("{", "cp.jsonl")
    assert.is_nil(e)
    assert.matches("^cp%.jsonl:1:2: ", why)
    local op, owhy = session.decode_operation('{"id": 1, "kind": "write", "path": "/a/../b"}', "ops.jsonl", 3)
    assert.is_nil(op)
    assert.matches('^ops%.jsonl:3: field operations%[3%]%.path must be a clean absolute path', owhy)
  end)
end)
