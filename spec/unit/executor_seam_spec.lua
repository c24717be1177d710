-- DESIGN §6, STYLE 38: an executor is a seam.  A third executor, made
-- here and nowhere in lua/shannot, runs a capture through the same code
-- as the local and SSH ones (dryrun.run, the walk, policy, the session)
-- and an execute and rollback through apply, none of them changed for it.
-- It stands for a host whose root is a directory of the spec's.
local fs = require("shannot.fs")
local h = require("support.h")

local FAKE = [==[
local walk = require("shannot.capture.walk")
local fs = require("shannot.fs")
local lex = require("shannot.executor.local").new()
local root, upper = arg[2], arg[3]

local function there(path) return root .. path end
local function moved(t, key)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  out[key] = there(t[key])
  return out
end

-- the host as the walk reads it: the same calls, below root
local host = {}
for name, fn in pairs(walk.local_tree) do
  host[name] = function(self, path, ...)
    if name == "store" then local blobs, p = path, ...; return fn(self, blobs, there(p), select(2, ...)) end
    return fn(self, there(path), ...)
  end
end

-- the upper tree as the walk reads it: a symlink to "(whiteout)" stands
-- for a whiteout, as the SSH executor's replica keeps them beside it
local up = setmetatable({}, { __index = walk.local_tree })
function up.lstat(self, path)
  local st, msg, code = walk.local_tree.lstat(self, path)
  if st and st.type == "link" and fs.readlink(path) == "(whiteout)" then return { type = "char", rdev = 0 } end
  return st, msg, code
end

local Fake = { target = "fake", default_profile = "system", ran = {} }
Fake.__index = Fake

function Fake:capture(plan)
  local blobs = assert(fs.mkdtemp(root .. "/../blobs-"))
  local trees = setmetatable({ overlays = { { target = "/etc", upper = upper } }, blobs = blobs,
    up = up, host = host, max_bytes = 1 << 30 }, { __close = function() fs.rmtree(blobs) end })
  local result = { exit_code = 0, stdout = "fake out\n", stderr = "", command = plan.job.argv,
    profile = plan.profile.name }
  return trees, { { argv = { "systemctl", "restart", "fake.service" }, cwd = "/" } }, result
end
function Fake:state(path, known) return lex:state(there(path), known) end
function Fake:originals(op, cpdir)
  local entries, msg = lex:originals(moved(op, "path"), cpdir)
  if not entries then return nil, msg end
  for _, e in ipairs(entries) do e.path = e.path:sub(#root + 1) end
  return entries
end
function Fake:sync(cpdir) return lex:sync(cpdir) end
function Fake:apply(op, ctx) return lex:apply(moved(op, "path"), ctx) end
function Fake:exec(op)
  self.ran[#self.ran + 1] = table.concat(op.argv, " ")
  return { id = op.id, ok = true, code = 0, stdout = "", stderr = "" }
end
function Fake:restore(e, cpdir, prefix) return lex:restore(moved(e, "path"), cpdir, prefix) end
function Fake:remove_temps(paths, prefix)
  local mapped = {}
  for i, p in ipairs(paths) do mapped[i] = there(p) end
  return lex:remove_temps(mapped, prefix)
end
function Fake:xattrs(path) return lex:xattrs(there(path)) end
function Fake:set_times(list)
  local mapped = {}
  for i, t in ipairs(list) do
    mapped[i] = { path = there(t.path), mtime_sec = t.mtime_sec, mtime_nsec = t.mtime_nsec }
  end
  return lex:set_times(mapped)
end
function Fake:below(path)
  local out, msg = lex:below(there(path))
  if not out then return nil, msg end
  for i, p in ipairs(out) do out[i] = p:sub(#root + 1) end
  return out
end
function Fake:close() end

local ex = setmetatable({}, Fake)
local step = arg[1]
if step == "capture" then
  local p = assert(require("shannot.sandbox.profile").load(ex.default_profile))
  local r, s = require("shannot.capture").run(ex, p, { argv = { "fake-script" }, name = "fake-job" },
    { json = true, warn = function(...) io.stderr:write(string.format(...), "\n") end })
  assert(r, s)
  print(s.id, s.target, require("shannot.session").count(s), r.exit_code)
elseif step == "execute" then
  assert(require("shannot.session.apply").execute(arg[4], { executor = ex, actor = "lua" }))
  print(table.concat(Fake.ran, ";"))
elseif step == "rollback" then
  assert(require("shannot.session.apply").rollback(arg[4], { executor = ex, actor = "lua" }))
  print("rolled back")
end
]==]

describe("a third executor", function()
  it("captures, executes and rolls back through the same code as the local and SSH ones", function()
    local dir = h.tmpdir()
    local root, upper = dir .. "/host", dir .. "/upper"
    assert(fs.mkdir_p(root .. "/etc/app", 493))
    h.write(root .. "/etc/app/old.conf", "old\n")
    h.write(root .. "/etc/app/gone.conf", "bye\n")
    -- what the "run" wrote: a changed file, a new one, a deleted one
    assert(fs.mkdir_p(upper .. "/app", 493))
    assert(fs.chmod(upper, 493))
    h.write(upper .. "/app/old.conf", "new\n")
    h.write(upper .. "/app/added.conf", "added\n")
    assert(fs.symlink("(whiteout)", upper .. "/app/gone.conf"))
    local script = dir .. "/fake.lua"
    h.write(script, FAKE)

    local r = h.shannot({ "lua", script, "capture", root, upper })
    assert.equal(0, r.code, r.stderr)
    local id, target, n = r.stdout:match("^(%S+)\t(%S+)\t(%d+)")
    assert.equal("fake", target)
    assert.equal(4, tonumber(n))  -- write, write, delete, exec

    local show = h.shannot({ "show", id, "--json" })
    assert.equal(0, show.code, show.stderr)
    local doc = require("shannot.json").decode(show.stdout)
    local kinds = {}
    for _, op in ipairs(doc.operations) do kinds[#kinds + 1] = op.kind .. " " .. (op.path or op.argv[1]) end
    table.sort(kinds)
    assert.same({ "delete /etc/app/gone.conf", "exec systemctl", "write /etc/app/added.conf",
      "write /etc/app/old.conf" }, kinds)

    assert.equal(0, h.shannot({ "approve", id, "--yes" }).code)
    r = h.shannot({ "lua", script, "execute", root, upper, id })
    assert.equal(0, r.code, r.stderr)
    assert.equal("systemctl restart fake.service\n", r.stdout)
    assert.equal("new\n", fs.read_file(root .. "/etc/app/old.conf"))
    assert.equal("added\n", fs.read_file(root .. "/etc/app/added.conf"))
    assert.is_nil(fs.lstat(root .. "/etc/app/gone.conf"))

    r = h.shannot({ "lua", script, "rollback", root, upper, id })
    assert.equal(0, r.code, r.stderr)
    assert.equal("old\n", fs.read_file(root .. "/etc/app/old.conf"))
    assert.equal("bye\n", fs.read_file(root .. "/etc/app/gone.conf"))
    assert.is_nil(fs.lstat(root .. "/etc/app/added.conf"))

    -- each step left its own audit event, the script's named "lua"
    local audit = h.shannot({ "audit", "--json", "--session", id })
    local events = {}
    for _, e in ipairs(require("shannot.json").decode(audit.stdout)) do
      events[#events + 1] = e.event_type .. ":" .. e.actor
    end
    assert.same({ "session_created:lua", "session_approved:cli", "session_executed:lua",
      "session_rolled_back:lua" }, events)
    assert.equal(0, h.shannot({ "audit", "--verify" }).code)
  end)
end)
