-- The exact script a capture runs, kept with its session (issue 17.4): a
-- reviewer reads what ran, not a path that may since have changed or gone
-- (an MCP client's script lives in a directory removed after the call).
-- A script file is copied once into a private directory before the run;
-- the sandbox runs that copy and the session stores the same bytes, so an
-- edit of the file during the run changes neither.  Shell code (-c) is
-- its own script.
local err = require("shannot.err")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local store = require("shannot.store")
local text = require("shannot.text")

local M = {}

local Kept = {}
Kept.__index = Kept

local function release(k)
  if k.dir then
    fs.rmtree(k.dir)
    k.dir = nil
  end
end
Kept.__close = release
Kept.__gc = release

-- keep(job) -> handle (closing it removes the private copy) | nil, err.
-- For a script file, job.script becomes the private copy and job.kept
-- says what it holds: {sha256, size, name = the file the user named}.
function M.keep(job)
  local k = setmetatable({}, Kept)
  if not job.script then return k end
  -- in the staging area, with our pid: `shannot prune` removes what a
  -- killed run left there
  local base = paths.data_dir() .. "/staging"
  local ok, merr = fs.mkdir_p(base, 448)
  if not ok then return nil, err.env("cannot make %s: %s", base, merr) end
  local dir, derr = fs.mkdtemp(base .. "/script-")
  if not dir then return nil, err.env("cannot keep a copy of the script: %s", derr) end
  k.dir = dir
  assert(fs.write_new(dir .. "/pid", require("shannot.core.sys").ids().pid .. "\n", 384))
  assert(fs.mkdir_p(dir .. "/blob", 448))
  local info, perr = store.put_file(dir .. "/blob", job.script, { compress_max = 0 })
  if not info then
    release(k)
    return nil, err.usage('run: cannot read the script "%s": %s', text.inert(job.script), perr)
  end
  local copy = dir .. "/" .. (job.script:match("([^/]+)$") or "script")
  local copied, cerr = store.copy_out(dir .. "/blob", info.hash, copy, 384)
  if not copied then
    release(k)
    return nil, err.env("cannot keep a copy of the script: %s", cerr)
  end
  job.kept = { sha256 = info.hash, size = info.size, name = job.script }
  job.script = copy
  return k
end

-- save(job, blobs) -> {sha256, size, name} | nil (no script: a command) |
-- nil, msg: the script the job ran, stored as a blob of the session's
-- blob directory
function M.save(job, blobs)
  local info, msg
  if job.kept then
    info, msg = store.put_file(blobs, job.script)
    if info and info.hash ~= job.kept.sha256 then
      return nil, "the private copy of the script changed during the run"
    end
    if not info then return nil, msg end
    return { sha256 = info.hash, size = info.size, name = job.kept.name }
  elseif job.code then
    info, msg = store.put_string(blobs, job.code)
    if not info then return nil, msg end
    return { sha256 = info.hash, size = info.size, name = "-c" }
  end
  return nil
end

-- read(dir, s [, max]) -> bytes | nil, err: the script session s ran
-- (dir: its directory), checked against the hash the session recorded
function M.read(dir, s, max)
  if type(s.script) ~= "table" then
    return nil, err.usage("session %s ran a command, not a script: its command line is all there is", s.id)
  end
  local data, msg = store.read(dir .. "/blobs", s.script.sha256, max)
  if not data then
    return nil, err.refused("session %s: its script cannot be read: %s", s.id, text.inert(msg))
  end
  return data
end

return M
