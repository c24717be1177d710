-- Rolling apply of a fleet run (issue 16.4): `execute RUN` takes the
-- hosts whose sessions are approved, --serial N at a time, each an
-- ordinary `shannot execute ID` in a child process (drift check, then
-- checkpoint, then apply: per host exactly as for one session); after
-- more than --max-fail failures it stops and leaves the rest untouched.
-- `rollback RUN` rolls back every host that executed.
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local pool = require("shannot.fleet.pool")
local runs = require("shannot.fleet.runs")
local text = require("shannot.text")

local M = {}

-- max_failures(spec, total) -> how many failures are tolerated | nil, err.
-- spec: "N" or "P%" (of the hosts to execute, rounded down); default 0.
function M.max_failures(spec, total)
  if spec == nil then return 0 end
  local s = tostring(spec)
  local n = s:match("^(%d+)$")
  if n then return math.tointeger(tonumber(n)) end
  local p = s:match("^(%d+)%%$")
  if p and tonumber(p) <= 100 then return (tonumber(p) * total) // 100 end
  return nil, err.usage('--max-fail: "%s" is not a number of hosts or a percentage ("2", "25%%")', text.inert(s))
end

-- The outcome of one child: {state, session status, error, deferred_failed}.
local function outcome(job, status, action)
  local data = fs.read_file(job.stdout_file, 256 * 1024 * 1024)
  local doc = data and data ~= "" and json.decode(data, job.stdout_file)
  local s = type(doc) == "table" and (doc.session or doc) or nil
  local said = (fs.read_file(job.stderr_file, 64 * 1024) or ""):match("([^\n]+)\n?$")
  said = said and said:gsub("^shannot: ", "")
  if type(s) == "table" and type(s.status) == "string" then
    local failed = type(s.execution) == "table" and math.tointeger(s.execution.deferred_failed or 0) or 0
    local ok = (action == "execute" and s.status == "executed" and failed == 0)
      or (action == "rollback" and s.status == "rolled_back")
    local why = (s.status == "executed" and failed > 0)
      and string.format("%d deferred command%s failed", failed, failed == 1 and "" or "s")
      or said or ("session " .. s.status)
    return { state = ok and "ok" or "failed", status = s.status, deferred_failed = failed,
      error = not ok and why or nil,
      conflicts = type(doc.conflicts) == "table" and #doc.conflicts > 0 and #doc.conflicts or nil }
  end
  return { state = "failed", error = said or status.error or ("ended with code " .. tostring(status.code)) }
end

local function line(name, sid, r)
  local what = r.state == "ok" and (r.status or "ok") or ("FAILED: " .. (r.error or "?"))
  if r.state == "skipped" then what = "not run: " .. r.error end
  if r.conflicts then what = what .. string.format(" (%d conflicting paths restored: --force)", r.conflicts) end
  return string.format("%-16s %-40s %s", text.inert(name), sid or "-", text.inert(what))
end

-- Runs `shannot ACTION ID --json` for each host, in batches of `batch`;
-- stop(results) after each batch says whether to go on.
local function roll(ctx, hosts, action)
  local results, self = {}, pool.self()
  local d = pool.display(hosts, action == "execute" and "executing" or "rolling back", ctx.quiet)
  local i = 1
  while i <= #hosts do
    local batch = {}
    for k = i, math.min(#hosts, i + ctx.batch - 1) do batch[#batch + 1] = hosts[k] end
    local jobs = {}
    for k, h in ipairs(batch) do
      local base = string.format("%s/hosts/%d.%s", ctx.dir, h.index, action)
      local argv = { self, action, h.session, "--json" }
      for _, extra in ipairs(ctx.extra or {}) do argv[#argv + 1] = extra end
      jobs[k] = { argv = argv, stdout_file = base .. ".out", stderr_file = base .. ".err" }
    end
    local offset = i - 1
    local _, interrupted = pool.run(jobs, {
      forks = #jobs, display = d, offset = offset,
      on_end = function(k, status)
        local r = outcome(jobs[k], status, action)
        results[offset + k] = r
        if not ctx.json and not ctx.quiet then d.line(line(batch[k].name, batch[k].session, r)) end
      end,
    })
    d.clear()
    i = i + #batch
    if interrupted then return results, "interrupted" end
    if ctx.stop and ctx.stop(results) then return results, "stopped" end
  end
  return results
end

-- open_run(id) -> run, its directory (hosts/ made) | nil, err
local function open_run(id)
  local run, e = runs.load(id)
  if not run then return nil, e end
  local dir = runs.dir(id)
  fs.mkdir_p(dir .. "/hosts", 448)
  return run, dir
end

-- The hosts of a run whose sessions are in one of `statuses`, each with
-- its index and session; the others, with why they are left.
local function hosts_in(run, opts, statuses)
  local sessions, problems = runs.sessions(run, opts)
  for _, p in ipairs(problems) do cli.warn("%s", p) end
  local chosen, left = {}, {}
  for i, h in ipairs(run.hosts) do
    local s = sessions[h.name]
    if s and statuses[s.status] then
      chosen[#chosen + 1] = { name = h.name, session = s.id, index = i }
    else
      left[#left + 1] = { name = h.name, session = h.session,
        why = s and ("session " .. s.status) or (h.session and "session unreadable") or h.state }
    end
  end
  return chosen, left
end

local function report(ctx, rows, left)
  if ctx.json then
    local hosts = {}
    for _, r in ipairs(rows) do
      hosts[#hosts + 1] = { name = r.name, session = r.session or json.null, result = r.state,
        status = r.status or json.null, error = r.error or json.null, deferred_failed = r.deferred_failed,
        conflicts = r.conflicts }
    end
    for _, l in ipairs(left) do
      hosts[#hosts + 1] = { name = l.name, session = l.session or json.null, result = "left", error = l.why }
    end
    cli.out(json.encode({ run = ctx.id, action = ctx.action, stopped = ctx.stopped or json.null,
      hosts = json.array(hosts) }, { indent = "  " }), "\n")
    return
  end
  cli.out(string.format("\n%-16s %-40s %s\n", "HOST", "SESSION", "RESULT"))
  for _, r in ipairs(rows) do cli.out(line(r.name, r.session, r), "\n") end
  for _, l in ipairs(left) do
    cli.out(string.format("%-16s %-40s %s\n", text.inert(l.name), l.session or "-", "left: " .. text.inert(l.why)))
  end
end

-- execute_run(opts, id) -> {rows = {{name, session, state ("ok",
-- "failed", "skipped"), status, error}}, left = {{name, session, why}},
-- stopped ("stopped", "interrupted" or nil), failures} | nil, err.
-- opts: serial, max_fail, stop_on_deferred_failure, quiet (no display),
-- config, actor, warn.
function M.execute_run(opts, id)
  local run, dir = open_run(id)
  if not run then return nil, dir end
  local hosts, left = hosts_in(run, opts, { approved = true })
  if #hosts == 0 then
    return nil, err.refused('run %s has no approved session; approve a variant first ("shannot approve %s ' ..
      '--variant A")', id, id)
  end
  local serial = math.tointeger(opts.serial or 1)
  if not serial or serial < 1 then return nil, err.usage("--serial: a number of hosts, 1 or more") end
  local allowed, merr = M.max_failures(opts.max_fail, #hosts)
  if not allowed then return nil, merr end
  local ctx = { id = id, dir = dir, batch = serial, json = opts.json, quiet = opts.quiet, action = "execute",
    extra = opts.stop_on_deferred_failure and { "--stop-on-deferred-failure" } or nil }
  local failures = 0
  ctx.stop = function(results)
    failures = 0
    for _, r in pairs(results) do if r.state ~= "ok" then failures = failures + 1 end end
    return failures > allowed
  end
  local results, why = roll(ctx, hosts, "execute")
  local rows = {}
  for k, h in ipairs(hosts) do
    local r = results[k] or { state = "skipped", error = why == "interrupted" and "interrupted" or
      string.format("stopped after %d failure%s (--max-fail %s)", failures, failures == 1 and "" or "s",
        tostring(opts.max_fail or 0)) }
    r.name, r.session = h.name, h.session
    rows[#rows + 1] = r
  end
  return { rows = rows, left = left, stopped = why, failures = failures }
end

local function exit_of(rows)
  for _, r in ipairs(rows) do if r.state ~= "ok" then return const.EXIT.FAILED end end
  return const.EXIT.OK
end

-- execute(opts, id) -> exit code | nil, err: `execute RUN`, its table
function M.execute(opts, id)
  local res, e = M.execute_run(opts, id)
  if not res then return nil, e end
  report({ id = id, json = opts.json, action = "execute", stopped = res.stopped }, res.rows, res.left)
  if res.stopped == "stopped" and not opts.json then
    cli.warn("run %s stopped after %d failed host%s; the hosts not run are untouched", id, res.failures,
      res.failures == 1 and "" or "s")
  end
  return exit_of(res.rows)
end

-- rollback_run(opts, id) -> {rows, left} (as execute_run's) | nil, err:
-- every host that executed (or failed midway), opts.forks at a time; a
-- host's conflicts are its own and nothing is forced without opts.force.
function M.rollback_run(opts, id)
  local run, dir = open_run(id)
  if not run then return nil, dir end
  local hosts, left = hosts_in(run, opts, { executed = true, failed = true })
  if #hosts == 0 then return nil, err.refused("run %s has no executed session to roll back", id) end
  local ctx = { id = id, dir = dir, batch = math.tointeger(opts.forks or 8) or 8, json = opts.json,
    quiet = opts.quiet, action = "rollback", extra = opts.force and { "--force" } or nil }
  local results = roll(ctx, hosts, "rollback")
  local rows = {}
  for k, h in ipairs(hosts) do
    local r = results[k] or { state = "skipped", error = "interrupted" }
    r.name, r.session = h.name, h.session
    rows[#rows + 1] = r
  end
  return { rows = rows, left = left }
end

-- rollback(opts, id) -> exit code | nil, err: `rollback RUN`, its table
function M.rollback(opts, id)
  local res, e = M.rollback_run(opts, id)
  if not res then return nil, e end
  report({ id = id, json = opts.json, action = "rollback" }, res.rows, res.left)
  return exit_of(res.rows)
end

return M
