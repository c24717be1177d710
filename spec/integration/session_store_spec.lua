-- The session store of issue 19: a small session.json beside JSON-lines
-- lists, read one record at a time; sessions written before (their lists
-- inside session.json) still go through every command; damaged lists are
-- one line naming the file; the listing's cache is a cache, never a
-- source of truth.  Real binary, real bwrap (support.cap).
local cap = require("support.cap")
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

local function store(e) return e.home .. "/data/shannot/sessions" end

-- a pending session of three writes, two of them over host files
local function captured(e)
  e:sh('echo old > "$1/a"; echo old > "$1/b"')
  local _, _, s = e:run("echo new > a; echo new > b; echo made > c")
  return s.id, store(e) .. "/" .. s.id
end

local function listed_status(e, id)
  local r = h.shannot({ "sessions", "--json" }, { home = e.home })
  assert.equal(0, r.code, r.stderr)
  for _, s in ipairs(json.decode(r.stdout)) do
    if s.id == id then return s.status, s end
  end
end

describe("session store", function()
  after_each(function() cap.cleanup(); h.cleanup() end)

  it("keeps the operations beside a small session.json, one JSON document per line", function()
    local e = cap.env()
    local id, dir = captured(e)
    local header = json.decode(assert(fs.read_file(dir .. "/session.json")))
    assert.is_nil(header.operations)
    assert.equal(3, header.operation_count)
    local lines = {}
    for line in assert(fs.read_file(dir .. "/operations.jsonl")):gmatch("[^\n]+") do
      lines[#lines + 1] = json.decode(line)
    end
    assert.equal(3, #lines)
    for i, op in ipairs(lines) do assert.equal(i, op.id) end
    -- execute and rollback leave their lists there too, and nothing of them in the header
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = e.home }).code)
    local r = h.shannot({ "execute", id }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("ok", r.stdout)
    header = json.decode(assert(fs.read_file(dir .. "/session.json")))
    assert.is_nil(header.results)
    assert.is_nil(header.checkpoint.entries)
    assert.is_nil(header.approval.operations)
    assert.equal(3, header.approval.count)
    assert.is_true(header.checkpoint.count >= 3)
    for _, name in ipairs({ "results.jsonl", "checkpoint.jsonl", "approval.jsonl" }) do
      assert.truthy(fs.read_file(dir .. "/" .. name), name)
    end
    assert.equal("new\n", fs.read_file(e.host .. "/a"))
    r = h.shannot({ "rollback", id }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("old\n", fs.read_file(e.host .. "/a"))
    assert.is_nil(fs.lstat(e.host .. "/c"))
  end)

  it("still shows, approves, executes and rolls back a session.json holding its lists", function()
    local e = cap.env()
    local id, dir = captured(e)
    -- the format before issue 19: every list inside session.json
    local d = h.read_session(dir)
    d.operation_count = nil
    h.write(dir .. "/session.json", json.encode(d))
    assert(fs.remove(dir .. "/operations.jsonl"))
    local r = h.shannot({ "show", id }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("operations %(3%)", r.stdout)
    assert.equal("pending", listed_status(e, id))
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = e.home }).code)
    r = h.shannot({ "execute", id }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("made\n", fs.read_file(e.host .. "/c"))
    r = h.shannot({ "rollback", id }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(fs.lstat(e.host .. "/c"))
    assert.equal("old\n", fs.read_file(e.host .. "/b"))
  end)

  it("refuses damaged lists in one line naming the file, and changes nothing", function()
    local cases = {
      { function(dir) -- cut short: the last line without its newline
          local data = assert(fs.read_file(dir .. "/operations.jsonl"))
          h.write(dir .. "/operations.jsonl", data:sub(1, -10))
        end, "operations%.jsonl: its last line is cut short" },
      { function(dir) assert(fs.remove(dir .. "/operations.jsonl")) end, "cannot read .*operations%.jsonl" },
      { function(dir)
          local data = assert(fs.read_file(dir .. "/operations.jsonl"))
          h.write(dir .. "/operations.jsonl", data:gsub("^[^\n]*", "{not json", 1))
        end, "operations%.jsonl:1" },
      { function(dir) -- a symlink where the list should be
          assert(fs.rename(dir .. "/operations.jsonl", dir .. "/elsewhere"))
          assert(fs.symlink(dir .. "/elsewhere", dir .. "/operations.jsonl"))
        end, "operations%.jsonl: a link, not a file" },
    }
    for _, c in ipairs(cases) do
      local e = cap.env()
      local id, dir = captured(e)
      assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = e.home }).code)
      local before = cap.tree_state(e.host)
      c[1](dir)
      for _, cmd in ipairs({ { "show", id }, { "execute", id } }) do
        local r = h.shannot(cmd, { home = e.home })
        assert.is_true(r.code == 2 or r.code == 3, r.stderr)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches(c[2], r.stderr)
        assert.equal("", r.stdout)
      end
      assert.equal(before, cap.tree_state(e.host))
    end
  end)

  it("lists from its cache only what session.json still says, and ignores a forged cache", function()
    local e = cap.env()
    local id, dir = captured(e)
    assert.equal("pending", listed_status(e, id))
    local index = store(e) .. "/.index"
    assert.truthy(fs.lstat(index), "the listing keeps its cache")
    -- what the cache lists is what the headers list, to the byte ("3 write",
    -- not the "3.0 write" its JSON numbers would print as)
    local cached = h.shannot({ "sessions" }, { home = e.home })
    assert(fs.remove(index))
    local fresh = h.shannot({ "sessions" }, { home = e.home })
    assert.equal(0, cached.code, cached.stderr)
    assert.equal(fresh.stdout, cached.stdout)
    assert.matches("\n%s+%d+ write\n", cached.stdout)
    -- a change the cache did not see: read from session.json again
    assert.equal(0, h.shannot({ "deny", id }, { home = e.home }).code)
    assert.equal("rejected", listed_status(e, id))
    -- a forged cache (no seal of this user's key) is not believed
    local data = assert(fs.read_file(index))
    local body = data:match("^%x+\n(.*)$")
    h.write(index, string.rep("0", 64) .. "\n" .. body:gsub('"rejected"', '"approved"'))
    assert.equal("rejected", listed_status(e, id))
    -- nor a cache entry for a session.json replaced since, even sealed
    local header = json.decode(assert(fs.read_file(dir .. "/session.json")))
    header.status = "executed"
    h.write(dir .. "/session.json", json.encode(header))
    assert.equal("executed", listed_status(e, id))
    -- a session removed from the store leaves the listing
    assert(fs.rmtree(dir))
    assert.is_nil(listed_status(e, id))
    -- a damaged session.json is a warning, not a traceback, cache or not
    local other = captured(e)
    h.write(store(e) .. "/" .. other .. "/session.json", "{")
    local r = h.shannot({ "sessions" }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("session%.json", r.stderr)
    assert.falsy(r.stderr:find("traceback", 1, true))
  end)
end)
