-- The audit log: what a line holds, the hash chain and head.json, finding
-- each kind of tampering (with its line and exit 3), rotation, max_files,
-- a disabled log, and 20 processes writing at once.  Through the real
-- binary: `shannot lua` for the module, `shannot audit` for the rest.
local fs = require("shannot.fs")
local json = require("shannot.json")
local store = require("shannot.store")
local h = require("support.h")

local ID_A = "20261122-101010-alpha-aa01"
local ID_B = "20261122-101011-beta-bb02"
local ID_C = "20261122-101012-gamma-cc03"
local DAY = 86400
local T0 = 1700000000  -- 2023-11-14T22:13:20Z

-- Records events with `shannot lua`: arg n, now ("" for the clock),
-- session ("" for none).  Prints "ERR <exit> <message>" on a failure.
local RECORDER = [[
local audit = require("shannot.session.audit")
local cfg = assert(require("shannot.config").load())
local n, now, session = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local events = { "session_created", "session_approved", "session_executed" }
for i = 1, n do
  local ok, e = audit.record(cfg, { event = events[(i - 1) % 3 + 1], actor = "cli",
    session = session ~= "" and session or nil, target = "local", i = i, reason = "step " .. i }, now)
  if not ok then
    io.write("ERR ", e.exit, " ", e.message, "\n")
    return
  end
end
]]

describe("audit", function()
  local home, recorder, dir

  local function config(toml)
    h.write(home .. "/config/shannot/config.toml", "[audit]\n" .. toml .. "\n")
  end

  local function record(n, now, session)
    local r = h.shannot({ "lua", recorder, tostring(n), now and tostring(now) or "", session or "" },
      { home = home })
    assert.equal(0, r.code, r.stderr)
    return r.stdout
  end

  local function audit(args)
    return h.shannot(args, { home = home })
  end

  local function lines_of(name)
    local out = {}
    for line in assert(fs.read_file(dir .. "/" .. name)):gmatch("([^\n]*)\n") do out[#out + 1] = line end
    return out
  end

  local function write_lines(name, lines)
    h.write(dir .. "/" .. name, table.concat(lines, "\n") .. (#lines > 0 and "\n" or ""))
  end

  local function files()
    local names = fs.readdir(dir) or {}
    local out = {}
    for _, n in ipairs(names) do
      if n:match("%.jsonl$") then out[#out + 1] = n end
    end
    table.sort(out)
    return out
  end

  -- The break --verify reports: {code, problem (from --json), stderr}
  local function broken()
    local r = audit({ "audit", "--verify" })
    local j = audit({ "audit", "--verify", "--json" })
    assert.equal(3, r.code, r.stdout .. r.stderr)
    assert.equal(3, j.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    local report = json.decode(j.stdout)
    assert.is_false(report.ok)
    return report.problem, r.stderr
  end

  before_each(function()
    home = h.home()
    dir = home .. "/data/shannot/audit"
    recorder = h.write(h.tmpdir() .. "/record.lua", RECORDER)
  end)
  after_each(h.cleanup)

  it("records who did what, when, to which session, and reads it back", function()
    config('rotation = "none"')
    record(3, nil, ID_A)
    local r = audit({ "audit", "--json" })
    assert.equal(0, r.code, r.stderr)
    local list = json.decode(r.stdout)
    assert.equal(3, #list)
    local e = list[1]
    assert.equal("session_created", e.event_type)
    assert.equal("session_approved", list[2].event_type)
    assert.equal("cli", e.actor)
    assert.equal(ID_A, e.session_id)
    assert.equal("local", e.target)
    assert.same({ i = 1, reason = "step 1" }, e.payload)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", e.timestamp)
    assert.is_string(e.user)
    assert.is_string(e.host)
    assert.is_number(e.pid)
    -- prev: "" on a file's first line, then the SHA-256 of the line before
    local lines = lines_of("audit.jsonl")
    assert.equal(3, #lines)
    assert.equal("", e.prev)
    assert.equal(store.hash_string(lines[1]), list[2].prev)
    assert.equal(store.hash_string(lines[2]), list[3].prev)
    assert.same({ 1, 2, 3 }, { list[1].seq, list[2].seq, list[3].seq })
    assert.equal(448, fs.stat(dir).mode)
    assert.equal(384, fs.stat(dir .. "/audit.jsonl").mode)
    -- the table, and one session's events only
    record(1, nil, ID_B)
    local t = audit({ "audit" })
    assert.equal(0, t.code, t.stderr)
    assert.matches("session_executed%s+cli%s+%S+%s+" .. ID_A:gsub("%-", "%%-") .. "%s+i=3 reason=step 3", t.stdout)
    local only = json.decode(audit({ "audit", "--session", ID_B, "--json" }).stdout)
    assert.equal(1, #only)
    assert.equal(ID_B, only[1].session_id)
    local bad = audit({ "audit", "--session", "../etc" })
    assert.equal(2, bad.code)
    assert.is_true(h.one_line_error(bad), bad.stderr)
  end)

  it("shows control characters inert and an empty log plainly", function()
    assert.equal("no audit events\n", audit({ "audit" }).stdout)
    assert.equal("audit chain intact: 0 events in 0 files\n", audit({ "audit", "--verify" }).stdout)
    local r = h.shannot({ "lua", h.write(h.tmpdir() .. "/esc.lua", [[
      local audit = require("shannot.session.audit")
      local cfg = assert(require("shannot.config").load())
      assert(audit.record(cfg, { event = "session_denied", actor = "ui", session = "]] .. ID_A .. [[",
        reason = "no\27[2J\nway \255" }))]]) }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local t = audit({ "audit" })
    assert.is_nil(t.stdout:find("\27", 1, true))
    assert.matches("reason=no\\x1b[2J\\nway \u{FFFD}", t.stdout, 1, true)
    assert.equal(0, audit({ "audit", "--verify" }).code)
  end)

  it("refuses events and actors it does not know (a bug in the caller)", function()
    local r = h.shannot({ "lua", h.write(h.tmpdir() .. "/bad.lua", [[
      local audit = require("shannot.session.audit")
      local cfg = assert(require("shannot.config").load())
      local ok1, e1 = pcall(audit.record, cfg, { event = "session_nuked", actor = "cli" })
      local ok2, e2 = pcall(audit.record, cfg, { event = "session_created", actor = "cron" })
      io.write(tostring(ok1), " ", tostring(ok2), "\n", e1, "\n", e2)]]) }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^false false\n", r.stdout)
    assert.matches("unknown event session_nuked", r.stdout, 1, true)
    assert.matches("actor must be cli, ui, mcp or lua, not cron", r.stdout, 1, true)
    assert.is_false(fs.exists(dir .. "/audit.jsonl"))
  end)

  it("verifies an intact chain across files", function()
    record(4, T0, ID_A)
    record(3, T0 + DAY, ID_A)
    local r = audit({ "audit", "--verify" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("audit chain intact: 7 events in 2 files\n", r.stdout)
    local report = json.decode(audit({ "audit", "--verify", "--json" }).stdout)
    assert.is_true(report.ok)
    assert.equal(7, report.events)
    assert.equal(2, report.files)
  end)

  describe("finds", function()
    before_each(function()
      config('rotation = "none"')
      record(5, nil, ID_A)
    end)

    it("a deleted line", function()
      local lines = lines_of("audit.jsonl")
      table.remove(lines, 3)
      write_lines("audit.jsonl", lines)
      local p, stderr = broken()
      assert.same({ "audit.jsonl", 3, "deleted" }, { p.file, p.line, p.kind })
      assert.matches("audit chain broken: " .. dir .. "/audit.jsonl:3: line 3 was deleted", stderr, 1, true)
    end)

    it("an edited line, in the middle or at the end", function()
      local lines = lines_of("audit.jsonl")
      lines[2] = lines[2]:gsub("step 2", "step X")
      write_lines("audit.jsonl", lines)
      local p, stderr = broken()
      assert.same({ 2, "edited" }, { p.line, p.kind })
      assert.matches("audit.jsonl:2: line 2 was edited", stderr, 1, true)
      lines = lines_of("audit.jsonl")
      lines[2] = lines[2]:gsub("step X", "step 2")
      lines[5] = lines[5]:gsub('"actor":"cli"', '"actor":"mcp"')
      write_lines("audit.jsonl", lines)
      p = broken()
      assert.same({ 5, "edited" }, { p.line, p.kind })
    end)

    it("a line that is no longer JSON", function()
      local lines = lines_of("audit.jsonl")
      lines[4] = lines[4]:sub(1, 20)
      write_lines("audit.jsonl", lines)
      local p = broken()
      assert.same({ 4, "edited" }, { p.line, p.kind })
    end)

    it("an inserted line, copied or forged to fit", function()
      local lines = lines_of("audit.jsonl")
      table.insert(lines, 3, lines[2])
      write_lines("audit.jsonl", lines)
      local p = broken()
      assert.same({ 3, "inserted" }, { p.line, p.kind })
      -- forged: numbered 3 and chained to line 2; the old line 3 then no longer fits
      lines = lines_of("audit.jsonl")
      table.remove(lines, 3)
      local forged = json.decode(lines[3])
      forged.payload = { reason = "forged" }
      forged.prev = store.hash_string(lines[2])
      table.insert(lines, 3, json.encode(forged))
      write_lines("audit.jsonl", lines)
      p = broken()
      assert.same({ 3, "inserted" }, { p.line, p.kind })
      -- appended after the last line head.json records
      lines = lines_of("audit.jsonl")
      table.remove(lines, 3)
      local extra = json.decode(lines[5])
      extra.seq, extra.prev = 6, store.hash_string(lines[5])
      lines[6] = json.encode(extra)
      write_lines("audit.jsonl", lines)
      p = broken()
      assert.same({ 6, "inserted" }, { p.line, p.kind })
    end)

    it("a truncated file, at a line end or inside a line", function()
      local lines = lines_of("audit.jsonl")
      write_lines("audit.jsonl", { lines[1], lines[2], lines[3] })
      local p, stderr = broken()
      assert.same({ 4, "truncated" }, { p.line, p.kind })
      assert.matches("audit.jsonl:4: the file is truncated: it ends after line 3, head.json records 5 lines",
        stderr, 1, true)
      local whole = table.concat(lines, "\n") .. "\n"
      h.write(dir .. "/audit.jsonl", whole:sub(1, #whole - 10))
      p = broken()
      assert.same({ 5, "truncated" }, { p.line, p.kind })
      h.write(dir .. "/audit.jsonl", "")
      p = broken()
      assert.same({ 1, "truncated" }, { p.line, p.kind })
    end)

    it("a missing file, a file head.json does not list, and a bad or missing head.json", function()
      local saved = assert(fs.read_file(dir .. "/audit.jsonl"))
      assert(fs.rename(dir .. "/audit.jsonl", dir .. "/audit-2020-01-01.jsonl"))
      local p = broken()
      assert.same({ "audit-2020-01-01.jsonl", "inserted" }, { p.file, p.kind })
      assert(fs.remove(dir .. "/audit-2020-01-01.jsonl"))
      p = broken()
      assert.same({ "audit.jsonl", "missing" }, { p.file, p.kind })
      h.write(dir .. "/audit.jsonl", saved)
      local head = assert(fs.read_file(dir .. "/head.json"))
      h.write(dir .. "/head.json", "{ not json")
      local _, stderr = broken()
      assert.matches("head.json:1:3: ", stderr, 1, true)
      assert(fs.remove(dir .. "/head.json"))
      p = broken()
      assert.equal("head", p.kind)
      h.write(dir .. "/head.json", head)
      assert.equal(0, audit({ "audit", "--verify" }).code)
    end)

    it("and record() refuses to write over the evidence", function()
      local lines = lines_of("audit.jsonl")
      write_lines("audit.jsonl", { lines[1], lines[2] })
      local out = record(1)
      assert.matches("^ERR 3 audit: .*audit.jsonl is shorter than head.json records", out)
      assert.equal(2, #lines_of("audit.jsonl"))
      assert.equal(3, broken().line)
    end)
  end)

  it("adopts lines a crashed writer appended before updating head.json", function()
    config('rotation = "none"')
    record(3)
    local lines = lines_of("audit.jsonl")
    local next_line = json.decode(lines[3])
    next_line.seq, next_line.prev = 4, store.hash_string(lines[3])
    lines[4] = json.encode(next_line)
    write_lines("audit.jsonl", lines)
    assert.equal(4, broken().line)  -- until the next write
    assert.equal("", record(1))
    assert.equal("audit chain intact: 5 events in 1 file\n", audit({ "audit", "--verify" }).stdout)
  end)

  describe("rotation", function()
    it("daily: one file per UTC date", function()
      config('rotation = "daily"')
      record(2, T0, ID_A)
      record(1, T0 + DAY, ID_A)
      assert.same({ "audit-2023-11-14.jsonl", "audit-2023-11-15.jsonl" }, files())
      assert.equal(2, #lines_of("audit-2023-11-14.jsonl"))
      local list = json.decode(audit({ "audit", "--json" }).stdout)
      assert.same({ "2023-11-14T22:13:20.000Z", "2023-11-14T22:13:20.000Z", "2023-11-15T22:13:20.000Z" },
        { list[1].timestamp, list[2].timestamp, list[3].timestamp })
      assert.equal("", json.decode(lines_of("audit-2023-11-15.jsonl")[1]).prev)
      assert.equal("audit chain intact: 3 events in 2 files\n", audit({ "audit", "--verify" }).stdout)
    end)

    it("none: one file", function()
      config('rotation = "none"')
      record(2, T0, ID_A)
      record(2, T0 + 3 * DAY, ID_B)
      assert.same({ "audit.jsonl" }, files())
      assert.equal(4, #lines_of("audit.jsonl"))
    end)

    it("session: one file per session, one for events without a session", function()
      config('rotation = "session"')
      record(2, nil, ID_A)
      record(1, nil, ID_B)
      record(1, nil, ID_A)
      record(1, nil, nil)
      assert.same({ "audit-" .. ID_A .. ".jsonl", "audit-" .. ID_B .. ".jsonl", "audit-nosession.jsonl" }, files())
      assert.equal(3, #lines_of("audit-" .. ID_A .. ".jsonl"))
      assert.equal("audit chain intact: 5 events in 3 files\n", audit({ "audit", "--verify" }).stdout)
    end)

    it("max_files: the least recently written files go", function()
      config('rotation = "daily"\nmax_files = 2')
      for d = 0, 3 do record(1, T0 + d * DAY, ID_A) end
      assert.same({ "audit-2023-11-16.jsonl", "audit-2023-11-17.jsonl" }, files())
      assert.equal("audit chain intact: 2 events in 2 files\n", audit({ "audit", "--verify" }).stdout)
      -- with sessions, "oldest" is the last write, not the name
      config('rotation = "session"\nmax_files = 2')
      for _, f in ipairs(files()) do assert(fs.remove(dir .. "/" .. f)) end
      assert(fs.remove(dir .. "/head.json"))
      record(1, nil, ID_A)
      record(1, nil, ID_B)
      record(1, nil, ID_A)
      record(1, nil, ID_C)
      assert.same({ "audit-" .. ID_A .. ".jsonl", "audit-" .. ID_C .. ".jsonl" }, files())
      assert.equal("audit chain intact: 3 events in 2 files\n", audit({ "audit", "--verify" }).stdout)
    end)
  end)

  it("writes nothing when disabled", function()
    config("enabled = false")
    assert.equal("", record(3))
    assert.is_false(fs.exists(dir))
    assert.equal("no audit events (auditing is off: [audit] enabled = false)\n", audit({ "audit" }).stdout)
  end)

  it("takes an audit path from the config", function()
    local elsewhere = h.tmpdir() .. "/log"
    config('path = "' .. elsewhere .. '"\nrotation = "none"')
    record(2)
    assert.is_false(fs.exists(dir))
    assert.equal(2, select(2, assert(fs.read_file(elsewhere .. "/audit.jsonl")):gsub("\n", "")))
    assert.equal("audit chain intact: 2 events in 1 file\n", audit({ "audit", "--verify" }).stdout)
  end)

  it("keeps one chain with 20 processes writing at once", function()
    config('rotation = "none"')
    local procs = {}
    for i = 1, 20 do
      procs[i] = h.spawn({ "lua", recorder, "50", "", i % 2 == 0 and ID_A or ID_B }, { home = home })
    end
    for _, p in ipairs(procs) do
      local r = assert(p:communicate({ timeout = 120 }))
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stdout)
    end
    local r = audit({ "audit", "--verify" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("audit chain intact: 1000 events in 1 file\n", r.stdout)
    local per_pid = {}
    for _, line in ipairs(lines_of("audit.jsonl")) do
      local e = json.decode(line)
      per_pid[e.pid] = (per_pid[e.pid] or 0) + 1
    end
    local n = 0
    for _, count in pairs(per_pid) do
      n = n + 1
      assert.equal(50, count)
    end
    assert.equal(20, n)
  end)
end)
