-- Spec helpers: run the real shannot binary with a private HOME/XDG tree,
-- make and clean up temp dirs, and require an environment (pending
-- locally, a failure under CI, which installs everything).
local fs = require("shannot.fs")
local proc = require("shannot.proc")

local M = {}

M.BIN = assert(fs.realpath(os.getenv("SHANNOT_BIN") or "build/shannot"), "build/shannot is missing")
M.ROOT = assert(fs.realpath("."))
M.CI = os.getenv("CI") == "true"

local PASS_THROUGH = { "PATH", "TERM", "LANG", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "SHANNOT_LUA_DIR",
  "USER" }

local tmp_base = M.ROOT .. "/build/spec-tmp"
assert(fs.mkdir_p(tmp_base, 448))
local made = {}

-- tmpdir() -> a new directory, removed by cleanup()
function M.tmpdir()
  local d = assert(fs.mkdtemp(tmp_base .. "/t-"))
  made[#made + 1] = d
  return d
end

-- track(path) -> path, removed by cleanup() like a tmpdir (busted keeps
-- one finally() per test: a second replaces the first)
function M.track(path)
  made[#made + 1] = path
  return path
end

function M.cleanup()
  for i = #made, 1, -1 do
    fs.rmtree(made[i])
    made[i] = nil
  end
end

-- lua_sources(visit): visit(relative path, text) for every .lua file of
-- lua/shannot, for the specs that read the source (layers, style, errors)
function M.lua_sources(visit)
  local function walk(dir)
    for _, name in ipairs(fs.readdir(dir)) do
      local path = dir .. "/" .. name
      if fs.is_dir(path) then
        walk(path)
      elseif name:match("%.lua$") then
        visit(path:sub(#M.ROOT + 2), fs.read_file(path))
      end
    end
  end
  walk(M.ROOT .. "/lua/shannot")
end

-- Places every sandbox replaces with a fresh tmpfs of its own.
local FRESH = { "/tmp", "/run", "/dev", "/var/tmp", "/var/run" }

local function in_fresh(path)
  for _, d in ipairs(FRESH) do
    if path == d or path:sub(1, #d + 1) == d .. "/" then return true end
  end
  return false
end

-- visible_dir() -> a new directory a sandbox sees at the same path (a
-- checkout under /tmp is not seen inside: /tmp is fresh there), removed by
-- cleanup(); nil when there is none to be had (not root).
function M.visible_dir()
  if not in_fresh(tmp_base) then return M.tmpdir() end
  if require("shannot.core.sys").ids().euid ~= 0 then return nil end
  local d = assert(fs.mkdtemp("/var/lib/shannot-spec-"))
  assert(fs.chmod(d, 493))
  made[#made + 1] = d
  return d
end

-- A private home (config, data) for the binary under test.
function M.home()
  local home = M.tmpdir()
  assert(fs.mkdir_p(home .. "/config/shannot/profiles"))
  assert(fs.mkdir_p(home .. "/data"))
  return home
end

-- env(overrides) -> "K=V" list: a few variables passed through, then the
-- overrides (a value of false removes a variable).
function M.env(overrides)
  local vars = {}
  for _, k in ipairs(PASS_THROUGH) do vars[k] = os.getenv(k) end
  for k, v in pairs(overrides or {}) do vars[k] = v or nil end
  local out = {}
  for k, v in pairs(vars) do out[#out + 1] = k .. "=" .. v end
  table.sort(out)
  return out
end

-- The environment and argv the binary under test runs with.
local function invocation(args, opts)
  local home = opts.home or M.default_home()
  local env = {
    HOME = home, XDG_CONFIG_HOME = home .. "/config", XDG_DATA_HOME = home .. "/data",
    SHANNOT_CONFIG = false,
  }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local argv = {}
  table.move(opts.prefix or {}, 1, #(opts.prefix or {}), 1, argv)
  argv[#argv + 1] = opts.bin or M.BIN
  table.move(args, 1, #args, #argv + 1, argv)
  return argv, M.env(env)
end

-- shannot(args, opts) -> {code, stdout, stderr, ...}
-- opts: home (from M.home()), env (overrides), input, timeout, cwd,
-- prefix (argv run before the binary, e.g. setpriv ...).
-- Peak RSS of a child cannot come from our own wait4: a vfork child's
-- maximum includes the parent's (this test runner's) memory.  GNU time
-- forks from its own small process and reports the child alone.
M.TIME_PREFIX = { "/usr/bin/time", "-f", "shannot-peak-rss-kb=%M" }

-- peak_rss_kb(result of a shannot call with opts.peak_rss) -> KiB
function M.peak_rss_kb(r)
  local kb = tonumber((r.stderr or ""):match("shannot%-peak%-rss%-kb=(%d+)%s*$"))
  assert(kb, "no peak RSS in: " .. tostring(r.stderr))
  return kb
end

function M.shannot(args, opts)
  opts = opts or {}
  if opts.peak_rss then
    local prefix = {}
    table.move(M.TIME_PREFIX, 1, #M.TIME_PREFIX, 1, prefix)
    table.move(opts.prefix or {}, 1, #(opts.prefix or {}), #prefix + 1, prefix)
    local copy = { prefix = prefix }
    for k, v in pairs(opts) do
      if k ~= "prefix" then copy[k] = v end
    end
    opts = copy
  end
  local argv, env = invocation(args, opts)
  local r = assert(proc.run(argv, {
    env = env, input = opts.input, timeout = opts.timeout or 120,
    cwd = opts.cwd, max_capture = opts.max_capture,
  }))
  return r
end

-- spawn(args, opts) -> Process with stdout and stderr piped, stdin closed.
function M.spawn(args, opts)
  opts = opts or {}
  local argv, env = invocation(args, opts)
  return assert(proc.spawn(argv, { env = env, stdin = "null", stdout = "pipe", stderr = "pipe" }))
end

-- eventually(f, what): polls f for up to 10 s.
function M.eventually(f, what)
  for _ = 1, 400 do  -- 20 s and more: a loaded machine (make asan) is slow to start a sandbox
    if f() then return true end
    proc.run({ "sleep", "0.05" })
  end
  error("timed out waiting for " .. what, 2)
end

-- processes(needle) -> the command lines of running processes containing it
function M.processes(needle)
  local r = assert(proc.run({ "ps", "-eo", "args" }))
  local found = {}
  for line in r.stdout:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then found[#found + 1] = line end
  end
  return found
end

function M.default_home()
  if not M._home then M._home = M.home() end
  return M._home
end

-- need(ok, why): the spec needs something this machine lacks.
function M.need(ok, why)
  if ok then return true end
  if M.CI then error("CI must provide: " .. why, 2) end
  pending("needs " .. why)
  return false
end

-- seeded() -> rng, seed: math.random seeded from the clock (or from
-- SEED, to run a failure again), and the seed a differential spec's
-- failure names
function M.seeded()
  local seed = tonumber(os.getenv("SEED") or "") or os.time()
  math.randomseed(seed)
  return math.random, seed
end

function M.write(path, data)
  assert(fs.write_atomic(path, data))
  return path
end

-- The lists a session keeps beside session.json (session.FILES), one
-- JSON document per line, and where read_session() puts them.
local LISTS = {
  { "operations.jsonl", function(d) return d, "operations" end },
  { "results.jsonl", function(d) return d, "results" end },
  { "checkpoint.jsonl", function(d) return d.checkpoint, "entries" end },
  { "approval.jsonl", function(d) return d.approval, "operations" end },
}

-- read_session(dir) -> session.json decoded, with the lists beside it in
-- the fields an older session.json held them in (for specs that edit a
-- session as a hostile hand would)
function M.read_session(dir)
  local json = require("shannot.json")
  local d = json.decode(assert(fs.read_file(dir .. "/session.json", 1 << 30)))
  for _, l in ipairs(LISTS) do
    local data = fs.read_file(dir .. "/" .. l[1], 1 << 30)
    local t, key = l[2](d)
    if data and t then
      local list = {}
      for line in data:gmatch("[^\n]+") do list[#list + 1] = json.decode(line) end
      t[key] = list
    end
  end
  return d
end

-- write_session(dir, d): read_session's document back in its files
function M.write_session(dir, d)
  local json = require("shannot.json")
  for _, l in ipairs(LISTS) do
    local t, key = l[2](d)
    if type(t) == "table" and type(t[key]) == "table" then
      local out = {}
      for i, rec in ipairs(t[key]) do out[i] = json.encode(rec) .. "\n" end
      M.write(dir .. "/" .. l[1], table.concat(out))
      if key == "operations" and t == d then d.operation_count = #t[key] end
      t[key] = nil
    end
  end
  M.write(dir .. "/session.json", json.encode(d))
end

-- One line, no traceback: the shape of every expected error.
function M.one_line_error(r)
  local lines = 0
  for _ in r.stderr:gmatch("[^\n]+") do lines = lines + 1 end
  return lines == 1 and not r.stderr:find("traceback", 1, true) and r.stderr:match("^shannot: ") ~= nil
end

return M
