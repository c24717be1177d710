-- What one sandbox may use ([limits] in config.toml): processes and
-- memory, enforced by a cgroup of its own where this machine lets shannot
-- make one (as root: cgroup v2, or the v1 pids and memory hierarchies),
-- otherwise processes only, by RLIMIT_NPROC; and how much a capture may
-- write into staging (proc's communicate watches the file system).
local err = require("shannot.err")
local fs = require("shannot.fs")
local sys = require("shannot.core.sys")

local M = {}

-- The cgroup directory shannot makes its sandboxes' groups in.
M.PARENT = "shannot"
-- What staging always keeps free, whatever [limits] staging says.
M.MIN_FREE = 256 * 1024 * 1024

-- memory_bytes(value [, memtotal_kb]) -> bytes: a size, or "N%" of this
-- machine's memory (or of memtotal_kb, a remote's)
function M.memory_bytes(v, memtotal_kb)
  if math.type(v) == "integer" then return v end
  local pct = tonumber(tostring(v):match("^(%d+)%%$") or "100")
  local kb = memtotal_kb
  if not kb then
    local info = fs.read_file("/proc/meminfo", 65536) or ""
    kb = tonumber(info:match("MemTotal:%s*(%d+) kB") or "0")
  end
  return math.floor(kb * 1024 * pct / 100)
end

-- of(cfg [, memtotal_kb]) -> {processes, memory (bytes), staging (bytes),
-- mcp_sandboxes}; memtotal_kb: the memory of the host the sandbox runs on
function M.of(cfg, memtotal_kb)
  local l = cfg and cfg.values.limits or {}
  return {
    processes = l.processes or 4096, memory = M.memory_bytes(l.memory or "50%", memtotal_kb),
    staging = l.staging or 8 * 1024 * 1024 * 1024, mcp_sandboxes = l.mcp_sandboxes or 4,
  }
end

-- Mount points of the cgroup hierarchies: {v2 = path, pids = path,
-- memory = path} (v1 ones by the controller they carry).
local function mounts()
  local out = {}
  for line in (fs.read_file("/proc/self/mountinfo", 1024 * 1024) or ""):gmatch("[^\n]+") do
    local point, fstype, opts = line:match("^%S+ %S+ %S+ %S+ (%S+) .- %- (%S+) %S+ (%S+)$")
    if fstype == "cgroup2" and not out.v2 then
      out.v2 = point
    elseif fstype == "cgroup" then
      for opt in opts:gmatch("[^,]+") do
        if (opt == "pids" or opt == "memory") and not out[opt] then out[opt] = point end
      end
    end
  end
  return out
end

local function write(path, value)
  local f, msg = fs.open(path, "w")
  if not f then return nil, msg end
  local ok, werr = f:write(tostring(value))
  f:close()
  return ok, werr
end

local function has_words(path, words)
  local have = " " .. (fs.read_file(path, 4096) or ""):gsub("%s+", " ") .. " "
  for _, w in ipairs(words) do
    if not have:find(" " .. w .. " ", 1, true) then return false end
  end
  return true
end

-- Where this machine's groups go and how each limit is written there:
-- {{dir =, files = {name = value}}...} | nil (no cgroup for us here).
local function plan(lim, name)
  if sys.ids(false).euid ~= 0 then return nil end
  local m = mounts()
  if m.v2 and has_words(m.v2 .. "/cgroup.controllers", { "pids", "memory" }) then
    local parent = m.v2 .. "/" .. M.PARENT
    return {
      { dir = m.v2, files = {}, enable = "+pids +memory" },  -- the root may always enable them
      { dir = parent, files = {}, enable = "+pids +memory" },
      { dir = parent .. "/" .. name, files = { ["pids.max"] = lim.processes, ["memory.max"] = lim.memory },
        join = "cgroup.procs" },
    }
  end
  if m.pids and m.memory then
    -- v1 joins by `tasks`: the child moves its one thread, which the
    -- kernel does without the global lock a cgroup.procs move takes
    -- (and its RCU grace period: 5 to 15 ms here, after a quiet while)
    return {
      { dir = m.pids .. "/" .. M.PARENT, files = {} },
      { dir = m.pids .. "/" .. M.PARENT .. "/" .. name, files = { ["pids.max"] = lim.processes }, join = "tasks" },
      { dir = m.memory .. "/" .. M.PARENT, files = {} },
      { dir = m.memory .. "/" .. M.PARENT .. "/" .. name, files = { ["memory.limit_in_bytes"] = lim.memory },
        join = "tasks" },
    }
  end
end

-- kind() -> how this machine bounds a sandbox's processes and memory:
-- "cgroup v2", "cgroup v1" or "rlimits"
function M.kind()
  local steps = plan({ processes = 1, memory = 1 }, "x")
  if not steps then return "rlimits" end
  return #steps == 3 and "cgroup v2" or "cgroup v1"
end

-- A sandbox exec'd in place of shannot leaves its group behind (nothing
-- of shannot's is left to remove it): once more than PRUNE_AT groups are
-- there, those of runs that are gone (the pid in the name: "run-PID-...")
-- are removed, which the kernel refuses for one that still holds a process.
M.PRUNE_AT = 32

local function prune_gone(steps)
  for _, step in ipairs(steps) do
    local parent = next(step.files) and step.dir:match("^(.*)/[^/]+$")
    local names = parent and fs.readdir(parent) or {}
    local runs = {}
    for _, n in ipairs(names) do
      local pid = n:match("^run%-(%d+)%-")
      if pid then runs[#runs + 1] = { name = n, pid = pid } end
    end
    if #runs > M.PRUNE_AT then
      for _, r in ipairs(runs) do
        if not fs.exists("/proc/" .. r.pid) then fs.remove(parent .. "/" .. r.name) end
      end
    end
  end
end

-- The cgroup.procs file of this process's own v2 cgroup
local function own_procs(v2_mount)
  for line in (fs.read_file("/proc/self/cgroup", 65536) or ""):gmatch("[^\n]+") do
    local path = line:match("^0::(/.*)$")
    if path then return v2_mount .. (path:gsub("/$", "")) .. "/cgroup.procs" end
  end
end

-- A cgroup.procs move (v2's) after a quiet while waits in the kernel for
-- an RCU grace period (5 to 15 ms: every run started by hand would pay
-- it).  A throw-away child that moves itself where it already is, started
-- while the run is still being prepared, pays it instead: the sandbox's
-- own move, soon after, finds the way clear.  No group of ours holds it.
local function start_warmer(steps)
  if steps[#steps].join ~= "cgroup.procs" then return nil end
  local path = own_procs(steps[1].dir)
  local f = path and fs.open(path, "w")
  if not f then return nil end
  local child = require("shannot.core.proc").join_cgroups({ f:fd() })
  f:close()
  return child
end

-- name() -> a new group's name: the run's pid (prune_gone reads it) and time
function M.name()
  return string.format("run-%d-%d", sys.ids(false).pid, math.floor(sys.monotonic() * 1000))
end

-- group(lim, name [, opts]) -> {dirs = {...}, join = {File...}} | nil,
-- err.  The cgroups of one sandbox, made and set; spawn's join_fds are
-- the files in join (the sandbox writes itself into them: cgroup.procs,
-- v1's tasks); remove() takes them away.  opts.prune:
-- first remove those left behind (prune_gone), once many pile up;
-- opts.early: made well before the sandbox starts (start_warmer).
function M.group(lim, name, opts)
  local steps = plan(lim, name)
  if not steps then return nil, err.env("no cgroup for shannot here (not root, or no pids and memory controllers)") end
  if opts and opts.prune then prune_gone(steps) end
  local g = { dirs = {}, join = {}, warmer = opts and opts.early and start_warmer(steps) or nil }
  for _, step in ipairs(steps) do
    local ok, msg, code = fs.mkdir(step.dir, 493)
    if not ok and code ~= "EEXIST" then M.remove(g); return nil, err.env("%s", msg) end
    if step.enable then write(step.dir .. "/cgroup.subtree_control", step.enable) end
    if next(step.files) then
      g.dirs[#g.dirs + 1] = step.dir
      for file, value in pairs(step.files) do
        ok, msg = write(step.dir .. "/" .. file, value)
        if not ok then M.remove(g); return nil, err.env("%s", msg) end
      end
      local procs, perr = fs.open(step.dir .. "/" .. step.join, "w")
      if not procs then M.remove(g); return nil, err.env("%s", perr) end
      g.join[#g.join + 1] = procs
    end
  end
  return g
end

-- join_fds(group) -> the descriptors spawn's join_fds takes
function M.join_fds(g)
  local fds = {}
  for i, f in ipairs(g.join) do fds[i] = f:fd() end
  return fds
end

local function counter(file, key)
  local data = fs.read_file(file, 65536) or ""
  return tonumber(data:match("%f[%w]" .. key .. " (%d+)") or "0")
end

-- hit(group) -> {"memory" | "processes"...}: the limits the sandbox ran
-- into (its kernel counters: OOM kills, refused forks)
function M.hit(g)
  local out = {}
  for _, dir in ipairs(g.dirs) do
    if counter(dir .. "/memory.events", "oom_kill") + counter(dir .. "/memory.oom_control", "oom_kill") > 0 then
      out[#out + 1] = "memory"
    end
    if counter(dir .. "/pids.events", "max") > 0 then out[#out + 1] = "processes" end
  end
  return out
end

-- remove(group): the sandbox's groups, once every process in them is
-- gone (they may take a moment to leave after the last one was killed).
function M.remove(g)
  if g.warmer then g.warmer:close(); g.warmer = nil end
  for _, f in ipairs(g.join) do f:close() end
  g.join = {}
  for i = #g.dirs, 1, -1 do
    -- up to a second, in steps from 1 ms: most are gone at once
    local waited, step = 0, 0.001
    while true do
      local ok, _, code = fs.remove(g.dirs[i])
      if ok or code ~= "EBUSY" or waited >= 1 then break end
      sys.sleep(step)
      waited, step = waited + step, math.min(step * 2, 0.05)
    end
  end
  g.dirs = {}
end

-- prune() -> the groups of runs that are gone (empty ones), removed
function M.prune()
  local removed = {}
  local m = mounts()
  for _, key in ipairs({ "v2", "pids", "memory" }) do
    local parent = (m[key] or "/nonexistent") .. "/" .. M.PARENT
    for _, name in ipairs(fs.readdir(parent) or {}) do
      local dir = parent .. "/" .. name
      if fs.is_dir(dir) and fs.remove(dir) then removed[#removed + 1] = dir end
    end
  end
  return removed
end

-- rlimits(lim) -> spawn's rlimits where no cgroup holds the sandbox:
-- processes for the user (root is exempt from it).  Not memory: a limit
-- per process on its mappings (RLIMIT_DATA, RLIMIT_AS) breaks programs
-- that reserve large sparse areas (sanitizers, some runtimes), and bounds
-- nothing across processes anyway.
function M.rlimits(lim)
  return { nproc = lim.processes }
end

-- watch(lim, dir) -> communicate's watch for a capture staged in dir
function M.watch(lim, dir)
  return { path = dir, max_growth = lim.staging, min_free = M.MIN_FREE }
end

return M
