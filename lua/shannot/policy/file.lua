-- Lua policy files (~/.config/shannot/policy.lua, .shannot/policy.lua):
-- each returns a rule `function(op, ctx) -> decision, reason` or a list of
-- them.  They run in an environment of their own: pure functions of the
-- standard library (no io, no os but the clock, no load, no debug) and a
-- read-only view of the matching helpers, so a policy can only judge.
-- The engine that calls the rules, in DESIGN §4's order, is policy.lua.
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local glob = require("shannot.glob")
local sys = require("shannot.core.sys")
local text = require("shannot.text")

local M = {}

local MAX_POLICY_BYTES = 1024 * 1024
-- A policy file that runs this many VM instructions while loading, or a
-- rule this many for one operation, is stuck, not thinking.
local LOAD_BUDGET = 50 * 1000 * 1000
local CALL_BUDGET = 10 * 1000 * 1000
-- What loading or one rule call may allocate on top of what the process
-- holds: far more than judging paths needs, far less than the machine has.
local MEMORY_BUDGET = 64 * 1024 * 1024

-- The string library policy code sees, also through methods ("x"):find():
-- run_limited swaps it into the string metatable while policy code runs.
-- Made with the first policy file (most runs have none, and load neither
-- boundedlib nor cmdpattern).
local STRING
local function bounded_string()
  STRING = STRING or require("shannot.boundedlib").library(string)
  return STRING
end
local STRING_MT = getmetatable("")

-- What the budget's hook throws.  The pcall and xpcall a policy file gets
-- throw it on, so no rule can catch it and go on looping.
local OVER_BUDGET = setmetatable({}, { __tostring = function() return "over budget" end })

-- Memory refused under the cap surfaces as this error; a policy's pcall
-- may not catch it and go on allocating either.
local MEMORY_ERROR = "not enough memory"

local function rethrow_budget(ok, ...)
  if not ok and ((...) == OVER_BUDGET or (...) == MEMORY_ERROR) then error((...), 0) end
  return ok, ...
end

local function guarded_pcall(f, ...)
  return rethrow_budget(pcall(f, ...))
end

local function guarded_xpcall(f, handler, ...)
  return rethrow_budget(xpcall(f, function(e)
    if e == OVER_BUDGET or e == MEMORY_ERROR then return e end
    return handler(e)
  end, ...))
end

M.DECISIONS = { approve = true, deny = true, review = true }

-- with_host_strings(fn) -> fn running with the real string methods: the
-- host's helpers are bounded by what they are, not by the policy's limits
local function with_host_strings(fn)
  return function(...)
    local policy_strings = STRING_MT.__index
    STRING_MT.__index = string
    local r = table.pack(pcall(fn, ...))
    STRING_MT.__index = policy_strings
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
end

-- read_only(t, name) -> a proxy that refuses writes, recursively
local function read_only(t, name)
  return setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if type(v) == "table" then return read_only(v, name .. "." .. tostring(k)) end
      if type(v) == "function" then return with_host_strings(v) end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("%s is read-only (assigning %s)", name, tostring(k)), 2)
    end,
    __pairs = function() return next, t, nil end,
    __len = function() return #t end,
    __metatable = false,
  })
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- The environment a policy file runs in.
function M.environment()
  local boundedlib = require("shannot.boundedlib")
  local cmdpattern = require("shannot.policy.cmdpattern")
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = guarded_pcall, select = select, tonumber = tonumber, tostring = tostring,
    type = type, rawequal = rawequal, rawlen = rawlen, xpcall = guarded_xpcall,
    string = copy(bounded_string()), table = boundedlib.table_library(table), math = copy(math), utf8 = copy(utf8),
    os = { time = os.time, date = os.date, clock = os.clock },
  }
  env.shannot = read_only({
    version = const.VERSION,
    glob = { match = glob.match },
    command = {
      normalise = cmdpattern.normalise,
      normalise_all = cmdpattern.normalise_all,
      matches = function(pattern, argv)
        local p = assert(cmdpattern.compile(pattern))
        local n = cmdpattern.normalise(argv)
        return n ~= nil and cmdpattern.match_exact(p, n)
      end,
    },
  }, "shannot")
  env._G = env
  return env
end

-- run_limited(budget, fn, ...) -> pcall's results, fn stopped (ok false,
-- OVER_BUDGET) after budget VM instructions, (ok false, MEMORY_ERROR) when
-- it allocated more than MEMORY_BUDGET, even if it caught that itself
local function run_limited(budget, fn, ...)
  local host_strings = STRING_MT.__index
  STRING_MT.__index = bounded_string()
  sys.heap_cap(sys.heap_used() + MEMORY_BUDGET)
  debug.sethook(function() error(OVER_BUDGET, 0) end, "", budget)
  local r = table.pack(pcall(fn, ...))
  debug.sethook()
  local refused = sys.heap_cap(nil)
  STRING_MT.__index = host_strings
  -- Clearing the hook also cleared the host's interrupt hook, if a signal
  -- set it meanwhile: honour the signal here instead of losing it.
  if sys.interrupted() then error("interrupted", 0) end
  if refused then return false, MEMORY_ERROR end
  return table.unpack(r, 1, r.n)
end

-- The message for a run stopped by a limit, or nil: what happened, and
-- what it suggests.
local function over_limit(res)
  if res == OVER_BUDGET then return "took too long", " (an endless loop?)" end
  if res == MEMORY_ERROR then
    return string.format("used more than %d MiB of memory", MEMORY_BUDGET // (1024 * 1024)), ""
  end
end

-- Lua cuts a chunk name to 60 bytes in messages ("...tail of the path"),
-- so chunks get this short name and messages get the full path back.
local CHUNK_TAG = "<policy>"

local function with_path(msg, path)
  msg = tostring(msg)
  local out = msg:gsub(CHUNK_TAG:gsub("%p", "%%%0") .. ":", (path:gsub("%%", "%%%%")) .. ":")
  return out
end

-- Where a rule function was defined, for messages: FILE:LINE.
local function defined_at(fn, path)
  local info = debug.getinfo(fn, "S")
  return with_path(string.format("%s:%d", info.short_src, info.linedefined), path)
end

-- load(path) -> {path, rules = {fn...}} | nil (absent) | nil, err
function M.load(path)
  local source, msg = fs.read_user_file(path, MAX_POLICY_BYTES, "policy file")
  if not source then return nil, msg and err.usage("%s", msg) end
  local chunk, lerr = load(source, "=" .. CHUNK_TAG, "t", M.environment())
  if not chunk then return nil, err.usage("%s", with_path(lerr, path)) end
  local ok, res = run_limited(LOAD_BUDGET, chunk)
  if not ok and over_limit(res) then
    local what, hint = over_limit(res)
    return nil, err.usage("%s: %s%s (while loading the policy file)", path, what, hint)
  end
  if not ok then
    return nil, err.usage("%s (while loading the policy file)", with_path(res, path))
  end
  local rules = {}
  if type(res) == "function" then
    rules[1] = res
  elseif type(res) == "table" then
    for i, rule in ipairs(res) do
      if type(rule) ~= "function" then
        return nil, err.usage("%s: rule %d of the returned list is a %s, not a function", path, i, type(rule))
      end
      rules[i] = rule
    end
    if #rules == 0 then
      return nil, err.usage("%s: returns an empty list; return a function (op, ctx) -> decision, reason", path)
    end
  else
    return nil, err.usage("%s: must return a function (op, ctx) -> decision, reason, or a list of them; got %s",
      path, res == nil and "nothing" or ("a " .. type(res)))
  end
  local where = {}
  for i, rule in ipairs(rules) do where[i] = defined_at(rule, path) end
  return { path = path, rules = rules, where = where }
end

-- load_all(files) -> {loaded files...} | nil, err.  files: config.files()'s
-- result; the project's policy file is marked `project` (its rules may
-- deny or ask for review, never approve: see policy.lua).
function M.load_all(files)
  local out = {}
  for _, path in ipairs(files.policies) do
    local f, e = M.load(path)
    if e then return nil, e end
    if f then
      f.project = path == files.project_policy
      out[#out + 1] = f
    end
  end
  return out
end

-- call(file, i, op, ctx) -> decision, reason | false (no opinion) | nil, err:
-- one rule, a bad result reported as the policy's error (file and line).
function M.call(file, i, op, ctx)
  local ok, decision, reason = run_limited(CALL_BUDGET, file.rules[i], op, ctx)
  if not ok and over_limit(decision) then
    local what, hint = over_limit(decision)
    return nil, err.usage("%s: the rule %s on %s%s", file.where[i], what,
      text.inert(tostring(op.path or op.kind)), hint)
  end
  if not ok then return nil, err.usage("%s", with_path(decision, file.path)) end
  if decision == nil then return false end
  if not M.DECISIONS[decision] then
    return nil, err.usage('%s: the rule returned %s; a decision is "approve", "deny", "review" or nil',
      file.where[i], type(decision) == "string" and ('"' .. decision .. '"') or ("a " .. type(decision)))
  end
  if reason ~= nil and type(reason) ~= "string" then
    return nil, err.usage("%s: the reason must be a string, not a %s", file.where[i], type(reason))
  end
  return decision, reason
end

return M
