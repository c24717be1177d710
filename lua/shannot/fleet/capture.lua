-- A fleet capture (issue 16.2): the same script on every host of a target
-- list, each host in a child process of its own (fleet/pool.lua), each
-- host's failure its own.  First every host's key is checked (unknown
-- ones are listed all at once and nothing runs), then the captures run,
-- with a live status line on a terminal and one plain line per host.
-- The sessions are grouped under a run id (fleet/runs.lua).
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local runs = require("shannot.fleet.runs")
local text = require("shannot.text")

local M = {}

M.DEFAULT_FORKS = 8

---------------------------------------------------------------------------
-- The child: one host
---------------------------------------------------------------------------

-- What a failed connect or capture makes of the host's state.
local function state_of(e)
  if e.connect == "HOSTKEY_UNKNOWN" or e.connect == "HOSTKEY_CHANGED" or e.connect == "AUTH" then
    return "refused"
  end
  if e.connect then return "unreachable" end
  return "error"
end

local function write_result(file, r)
  local ok, msg = fs.write_atomic(file, json.encode(r) .. "\n", 384)
  if not ok then return nil, err.env("cannot write %s", msg) end
  return const.EXIT.OK
end

-- A host's result when its connection failed: hostkey says the key was
-- unknown (the run lists every such host at once).
local function not_connected(e)
  return { state = state_of(e), error = e.message, hostkey = e.connect == "HOSTKEY_UNKNOWN" or nil }
end

local function check_key(job)
  local s, e = require("shannot.remote").connect(job.target, { accept_new = job.accept_new, key_only = true })
  if not s then return not_connected(e) end
  s:close()
  return { state = "pending" }
end

-- The gate of a one-phase fleet run: every host connected (its key
-- checked) before any capture starts.  A child says it is ready
-- (JOB.ready), then waits for the parent's word: RUNDIR/go or RUNDIR/stop.
-- -> true to go on
function M.pass_gate(job)
  local sys = require("shannot.core.sys")
  assert(fs.write_atomic(job.gate.ready, "", 384))
  while true do
    if fs.lstat(job.gate.go) then return true end
    if fs.lstat(job.gate.stop) then return false end
    sys.sleep(0.005)
  end
end

local function capture_host(opts, job)
  local t = job.target
  local where = { target = t.name, profile = t.profile, remote = t }
  local p, perr = require("shannot.sandbox.profile").for_run({ profile = job.profile, network = job.network,
    config = opts.config }, where)
  if not p then return { state = "error", error = perr.message } end
  local ex <close>, xerr = require("shannot.executor").open(where, { profile = p, accept_new = job.accept_new })
  if not ex then return not_connected(xerr) end
  if job.gate and not M.pass_gate(job) then
    return { state = "pending", error = "not run: other hosts have unknown host keys" }
  end
  local r, captured = require("shannot.capture").run(ex, p, job.job, {
    json = true, ttl = opts.config.values.session.ttl, config = opts.config, actor = opts.actor,
    timeout = job.timeout, max_output = job.max_output, warn = cli.warn, fleet_run = job.run, hide = job.hide,
  })
  if not r then return { state = state_of(captured), error = captured.message } end
  local out = { session = captured and captured.id or nil, exit_code = r.exit_code, timed_out = r.timed_out,
    signal = r.signal_name, operations = captured and require("shannot.session").count(captured) or 0,
    stderr = text.middle(r.stderr or "", 4096) }
  if r.exit_code == nil and not r.timed_out then
    out.state, out.error = "error", "the sandbox could not be set up: " .. (out.stderr:match("[^\n]+") or "")
  elseif r.exit_code ~= 0 then
    out.state = "failed"
    out.error = r.timed_out and "timed out" or
      (r.exit_code and ("exited with code " .. r.exit_code) or ("killed by " .. tostring(r.signal_name)))
  else
    out.state = captured and "captured" or "unchanged"
  end
  return out
end

-- host(opts, jobfile) -> exit code: the child's work, its result written
-- beside the job file (JOB.result.json)
function M.host(opts, jobfile)
  local data, msg = fs.read_file(jobfile or "", 16 * 1024 * 1024)
  if not data then return nil, err.usage("__fleet-host: %s", msg) end
  local job = json.decode(data, jobfile)
  if type(job) ~= "table" or type(job.target) ~= "table" or type(job.result) ~= "string" then
    return nil, err.usage("__fleet-host: %s: not a fleet job", jobfile)
  end
  -- JSON numbers come back as floats: a port is an integer again
  job.target.port = job.target.port and math.tointeger(job.target.port)
  job.timeout = job.timeout and tonumber(job.timeout)
  job.max_output = job.max_output and math.tointeger(job.max_output)
  local r = job.mode == "keys" and check_key(job) or capture_host(opts, job)
  return write_result(job.result, r)
end

---------------------------------------------------------------------------
-- The parent: every host
---------------------------------------------------------------------------

local function host_line(h)
  local what = h.state
  if h.state == "captured" then
    what = string.format("captured, %d operation%s (session %s)", h.operations or 0,
      h.operations == 1 and "" or "s", h.session)
  elseif h.state == "unchanged" then
    what = "no changes"
  elseif h.error then
    what = h.state .. ": " .. h.error .. (h.session and (" (session " .. h.session .. ")") or "")
  end
  return string.format("%s: %s", text.inert(h.name), text.inert(what))
end

-- The one-phase run's gate (pass_gate), kept by the parent: once every
-- host is either ready or done, RUNDIR/go, or RUNDIR/stop when a key was
-- unknown.
local function gate_keeper(ctx, jobs, results)
  local open = false
  return function()
    if open then return end
    for i, job in ipairs(jobs) do
      if not results[i] and not fs.lstat(job.gate.ready) then return end
    end
    open = true
    local unknown = false
    for _, r in pairs(results) do unknown = unknown or r.hostkey == true end
    ctx.gate_closed = unknown
    assert(fs.write_atomic(ctx.dir .. (unknown and "/stop" or "/go"), "", 384))
  end
end

-- One phase over the hosts: a job file each, the children, their
-- results.  hosts: the targets (with .index into run.hosts); gated: the
-- captures wait at the gate.
local function phase(ctx, mode, hosts, gated)
  local jobs = {}
  for i, t in ipairs(hosts) do
    local base = string.format("%s/hosts/%d.%s", ctx.dir, t.index, mode)
    local job = { mode = mode, run = ctx.run.id, target = t, accept_new = ctx.opts.accept_new,
      profile = ctx.opts.profile, network = ctx.opts.network, timeout = ctx.opts.timeout,
      max_output = ctx.opts.max_output or require("shannot.proc").DEFAULT_MAX_OUTPUT, job = ctx.job,
      hide = ctx.opts.hide and json.array(ctx.opts.hide), result = base .. ".result.json",
      gate = gated and { ready = base .. ".ready", go = ctx.dir .. "/go", stop = ctx.dir .. "/stop" } or nil }
    assert(fs.write_atomic(base .. ".job.json", json.encode(job), 384))
    fs.remove(job.result)
    jobs[i] = { argv = { ctx.self, "__fleet-host", base .. ".job.json" }, stdout_file = base .. ".out",
      stderr_file = base .. ".err", result = job.result, gate = job.gate }
  end
  local d = mode == "capture" and not ctx.opts.quiet and require("shannot.fleet.pool").display(hosts, "capturing")
    or nil
  local results = {}
  local pool = require("shannot.fleet.pool")
  local _, interrupted = pool.run(jobs, {
    forks = ctx.opts.forks or M.DEFAULT_FORKS, display = d, tick = gated and gate_keeper(ctx, jobs, results),
    on_end = function(i, status)
      local data = fs.read_file(jobs[i].result, 1024 * 1024)
      local r = data and json.decode(data, jobs[i].result)
      if type(r) ~= "table" then
        local said = (fs.read_file(jobs[i].stderr_file, 64 * 1024) or ""):match("([^\n]+)\n?$")
        r = { state = "error", error = said or status.error or ("the child ended " ..
          (status.signal_name and ("by signal " .. status.signal_name) or ("with code " .. tostring(status.code)))) }
      end
      results[i] = r
      if d and not (gated and ctx.gate_closed) then
        r.name = hosts[i].name
        d.line(host_line(r))
      end
    end,
  })
  if d then d.clear() end
  return results, interrupted
end

-- The run record's entry of one host.
local function record(h, t, r)
  h.state, h.error, h.session, h.exit_code = r.state, r.error, r.session, r.exit_code
  h.operations = r.operations
  h.address = require("shannot.remote").display(t)
end

local function unknown_keys(ctx, hosts, keys)
  local lines = {}
  for i, r in ipairs(keys) do
    if r.hostkey then lines[#lines + 1] = "  " .. text.inert(r.error or hosts[i].name) end
  end
  if #lines == 0 then return nil end
  fs.rmtree(ctx.dir)
  return err.refused("%d host%s of %d %s an unknown host key; nothing ran (check them, then run again with " ..
    "--accept-new):\n%s", #lines, #lines == 1 and "" or "s", #hosts, #lines == 1 and "has" or "have",
    table.concat(lines, "\n"))
end

-- capture(opts, job) -> run | nil, err.  opts: the run command's (target,
-- limit, inventory, forks, profile, network, timeout, max_output,
-- accept_new, config, actor).
function M.capture(opts, job)
  local hosts, herr = require("shannot.fleet").hosts(opts.target, opts.config, opts)
  if not hosts then return nil, herr end
  -- the profile is checked here once, before any host is asked
  local p, perr = require("shannot.sandbox.profile").for_run({ profile = opts.profile, network = opts.network,
    config = opts.config, warn = cli.warn }, {})
  if not p then return nil, perr end
  local id, dir = runs.reserve(job.name)
  if not id then return nil, dir end
  assert(fs.mkdir(dir .. "/hosts", 448))
  local run = { id = id, name = job.name, created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), targets = opts.target or "@all",
    limit = opts.limit, command = json.array(job.command or job.argv), profile = opts.profile,
    hosts = json.array({}) }
  for i, t in ipairs(hosts) do
    t.index = i
    run.hosts[i] = { name = t.name, state = "pending", address = require("shannot.remote").display(t) }
  end
  local saved, serr = runs.save(run)
  if not saved then fs.rmtree(dir) return nil, serr end
  local ctx = { run = run, dir = dir, opts = opts, job = job, self = require("shannot.fleet.pool").self() }
  if #hosts <= (opts.forks or M.DEFAULT_FORKS) then return M.one_phase(ctx, hosts) end
  local keys, interrupted = phase(ctx, "keys", hosts)
  if interrupted then fs.rmtree(dir) return nil, err.failed("interrupted; nothing ran") end
  local kerr = unknown_keys(ctx, hosts, keys)
  if kerr then return nil, kerr end
  local reachable = {}
  for i, t in ipairs(hosts) do
    if keys[i].state == "pending" then
      reachable[#reachable + 1] = t
    else  -- unreachable or refused: recorded, and said now
      record(run.hosts[i], t, keys[i])
      keys[i].name = t.name
      if not opts.quiet then io.stderr:write(host_line(keys[i]), "\n") end
    end
  end
  return M.finish(ctx, reachable, phase(ctx, "capture", reachable))
end

-- one_phase(ctx, hosts) -> run | nil, err: every host at once, each
-- child's own connection checking its key, the captures held at the gate
-- until every key is known (one connection per host instead of two)
function M.one_phase(ctx, hosts)
  local results, interrupted = phase(ctx, "capture", hosts, true)
  if ctx.gate_closed then
    local kerr = unknown_keys(ctx, hosts, results)
    if kerr then return nil, kerr end
  end
  return M.finish(ctx, hosts, results, interrupted)
end

-- finish(ctx, hosts, results, interrupted) -> run | nil, err: what the
-- captures of hosts became, in the run record, saved
function M.finish(ctx, hosts, results, interrupted)
  for i, t in ipairs(hosts) do
    record(ctx.run.hosts[t.index], t, results[i] or { state = "error", error = "interrupted" })
  end
  local saved, serr = runs.save(ctx.run)
  if not saved then return nil, serr end
  if interrupted then return nil, err.failed("interrupted; run %s keeps what was captured so far", ctx.run.id) end
  return ctx.run
end

-- command(opts, job) -> exit code | nil, err: `shannot run` with a fleet
-- target: the run, then its variants
function M.command(opts, job)
  local run, e = M.capture(opts, job)
  if not run then return nil, e end
  local variants = require("shannot.fleet.variants")
  local groups = variants.of(run, { config = opts.config, actor = opts.actor, warn = opts.warn })
  if opts.json then
    cli.out(json.encode(variants.document(run, groups), { indent = "  " }), "\n")
  else
    cli.out(variants.render(run, groups))
    cli.out(string.format('review with "shannot show %s --diff", approve with "shannot approve %s --variant A"\n',
      run.id, run.id))
  end
  local changed = false
  for _, h in ipairs(run.hosts) do
    if h.state ~= "captured" and h.state ~= "unchanged" then return const.EXIT.FAILED end
    changed = changed or h.state == "captured"
  end
  -- run --exit-code: any host's changes captured (every host succeeded)
  return (opts.exit_code and changed) and const.EXIT.CHANGES or const.EXIT.OK
end

return M
