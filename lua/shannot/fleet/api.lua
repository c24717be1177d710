-- Fleets from Lua (issue 16.5): shannot.fleet in `shannot lua` and the
-- REPL, the same engine as the command line.
--
--   local f = assert(shannot.fleet.open("@web", {limit = "web*"}))
--   f.hosts                 -> {{name, host, port, user, ...}}
--   local run = assert(f:run("deploy.sh"))   -- or f:run({code = "..."})
--   f:results()             -> {{name, state, session, error, operations}}
--   f:variants()            -> {{label, hosts, sessions, operations,
--                               differs_in, deferred_differ}}, others
--   f:approve("A")          -> {{host, session}} approved
--   f:execute({serial = 2, max_fail = "10%"}) -> {rows, left, stopped}
--   f:rollback()            -> {rows, left}
--   shannot.fleet.load(RUN) -> the same object for a run made before
--
-- Expected failures return nil, err (err.message says what); nothing here
-- prints but the live status line on a terminal (opts.quiet: none).
local err = require("shannot.err")

local M = {}

local Fleet = {}
Fleet.__index = Fleet

local function config_of(opts)
  if opts.config then return opts.config end
  local cfg, e = require("shannot.config").load()
  if not cfg then return nil, e end
  return cfg
end

-- open(target [, opts]) -> fleet | nil, err.  target: "@group", "a,b",
-- ...; opts: inventory, limit, forks, profile, timeout, accept_new,
-- network, quiet, config (default: the config files').
function M.open(target, opts)
  opts = opts or {}
  local cfg, cerr = config_of(opts)
  if not cfg then return nil, cerr end
  local hosts, herr = require("shannot.fleet").hosts(target, cfg, opts)
  if not hosts then return nil, herr end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.config, o.target = cfg, target
  return setmetatable({ target = target, hosts = hosts, opts = o }, Fleet)
end

-- load(run_id [, opts]) -> fleet | nil, err: a run made before
function M.load(id, opts)
  opts = opts or {}
  local cfg, cerr = config_of(opts)
  if not cfg then return nil, cerr end
  local run, e = require("shannot.fleet.runs").load(id)
  if not run then return nil, e end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.config = cfg
  return setmetatable({ target = run.targets, hosts = run.hosts, run = run, opts = o }, Fleet)
end

-- f:run(script [, args]) -> run | nil, err.  script: a file, or {code =
-- "shell code"} or {argv = {...}} (a command).
function Fleet:run(script, args)
  local what = require("shannot.cmd.run").what_to_run
  local job, jerr
  if type(script) == "table" and script.code then
    job, jerr = what({ code = script.code }, {})
  elseif type(script) == "table" and script.argv then
    job, jerr = what({ ["--"] = script.argv }, {})
  elseif type(script) == "string" then
    local list = { script }
    table.move(args or {}, 1, #(args or {}), 2, list)
    job, jerr = what({}, list)
  else
    error("fleet:run: give a script file, {code = ...} or {argv = {...}}", 2)
  end
  if not job then return nil, jerr end
  local kept <close>, kerr = require("shannot.capture.script").keep(job)
  if not kept then return nil, kerr end
  local o = {}
  for k, v in pairs(self.opts) do o[k] = v end
  o.quiet = self.opts.quiet ~= false
  local run, e = require("shannot.fleet.capture").capture(o, job)
  if not run then return nil, e end
  self.run = run
  return run
end

local function need_run(self)
  if not self.run then error("this fleet has no run yet: f:run(script) first", 3) end
  return self.run
end

-- f:results() -> what became of each host's capture
function Fleet:results()
  local out = {}
  for i, h in ipairs(need_run(self).hosts) do
    out[i] = { name = h.name, state = h.state, session = h.session, error = h.error, operations = h.operations,
      exit_code = h.exit_code }
  end
  return out
end

local function groups_of(self)
  return require("shannot.fleet.variants").of(need_run(self), { config = self.opts.config, actor = "cli" })
end

-- f:variants() -> the variants (A first), and the hosts without a change
-- set grouped by what happened
function Fleet:variants()
  local doc = require("shannot.fleet.variants").document(need_run(self), groups_of(self))
  return doc.variants, doc.others
end

-- f:approve(label | "all") -> {{host, session, variant}} | nil, err (the
-- first host that could not be approved; the others of its variant are)
function Fleet:approve(label)
  local variants = require("shannot.fleet.variants")
  local groups = groups_of(self)
  local list = label == "all" and groups.variants or { variants.find(groups, tostring(label)) }
  if #list == 0 then return nil, err.usage('no variant "%s" in run %s', tostring(label), self.run.id) end
  local done = {}
  for _, v in ipairs(list) do
    local approved, refused = variants.approve(v, { config = self.opts.config, actor = "cli", warn = function() end })
    table.move(approved, 1, #approved, #done + 1, done)
    if #refused > 0 then return nil, err.refused("%s: %s", refused[1].host, refused[1].message) end
  end
  return done
end

-- f:execute([opts]) -> {rows, left, stopped, failures} | nil, err.
-- opts: serial, max_fail, stop_on_deferred_failure.
function Fleet:execute(opts)
  local o = { config = self.opts.config, quiet = self.opts.quiet ~= false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("shannot.fleet.apply").execute_run(o, need_run(self).id)
end

-- f:rollback([opts]) -> {rows, left} | nil, err.  opts: force, forks.
function Fleet:rollback(opts)
  local o = { config = self.opts.config, quiet = self.opts.quiet ~= false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("shannot.fleet.apply").rollback_run(o, need_run(self).id)
end

return M
