-- A capturing run, start to end: staging, the sandbox over overlays, the
-- upper trees turned into operations, and the session that keeps them.
-- Nothing on the host changes; the staging area goes on every way out.
-- It prints nothing: warnings go to opts.warn(fmt, ...), the front end's.
local capture = require("shannot.capture")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local limits = require("shannot.limits")
local opview = require("shannot.opview")
local policy = require("shannot.policy")
local profile = require("shannot.profile")
local sandbox = require("shannot.sandbox")
local session = require("shannot.session")
local stage = require("shannot.stage")
local text = require("shannot.text")

local M = {}

-- Operation kinds in the order summaries list them.
M.KINDS = { "write", "mkdir", "replace_dir", "symlink", "delete", "chmod", "chown", "exec" }

local function merged_ctx(base, extra)
  local ctx = {}
  for k, v in pairs(base or {}) do ctx[k] = v end
  for k, v in pairs(extra) do ctx[k] = v end
  local binds = {}
  for _, b in ipairs(extra.late_binds or {}) do binds[#binds + 1] = b end
  for _, b in ipairs((base or {}).late_binds or {}) do binds[#binds + 1] = b end
  ctx.late_binds = binds
  return ctx
end

local function keep_output(dir, r)
  for _, name in ipairs({ "stdout", "stderr" }) do
    local ok, msg = fs.write_atomic(dir .. "/" .. name, r[name] or "", 384)
    if not ok then return nil, msg end
  end
  return true
end

-- save(job, p, r, w, st, opts) -> session | nil, err: the session of a
-- capture (st.dir holds blobs/ and defer/deferred), judged by policy, the
-- event logged.  Either the whole session is on disk or none of it is.
-- opts: ttl, config, target.
function M.save(job, p, r, w, st, opts)
  local id, dir = session.reserve(job.name)
  if not id then return nil, dir end
  local ok, msg = fs.rename(st.dir .. "/blobs", dir .. "/blobs")
  if ok then ok, msg = fs.rename(st.dir .. "/defer/deferred", dir .. "/deferred") end
  if ok then ok, msg = keep_output(dir, r) end
  local s
  if ok then
    s = session.new({
      id = id, name = job.name, ttl = opts.ttl, profile = p.name, command = job.command or job.argv,
      exit_code = r.exit_code, operations = w.ops, counts = w.counts, target = opts.target,
    })
    if #w.skipped > 0 then s.skipped = w.skipped end
    local judged, perr = policy.evaluate(s, opts.config)
    if not judged then
      -- The capture is kept whatever the policy files do: everything is
      -- left for a person to review, and the reason says why.
      opts.warn("%s; every operation is left for review", err.is(perr) and perr.message or tostring(perr))
      for _, op in ipairs(s.operations) do
        op.decision, op.reason = "review", "policy error: " .. (err.is(perr) and perr.message or tostring(perr))
      end
    end
    -- Half of what a session may grow to: execute adds the checkpoint
    -- and a result per operation later.
    local saved, serr = session.save(s, session.MAX_JSON_BYTES // 2)
    if not saved then
      fs.rmtree(dir)
      if serr.exit == const.EXIT.REFUSED then
        return nil, err.refused("the capture is too large to keep: %s", serr.message)
      end
      ok, msg = nil, serr.message
    end
  end
  if not ok then
    fs.rmtree(dir)
    return nil, err.env("cannot keep the session: %s", msg)
  end
  require("shannot.events").session(opts.config, "session_created", s, nil, opts.actor)
  return s
end

-- run(profile, job, run_opts, opts) -> result, session | result | nil, err
-- job: {argv, name, binds}; opts: json (no pass-through), ttl.
function M.run(p, job, run_opts, opts)
  local st, serr = stage.create(p, { search_path = profile.search_path(p) })
  if not st then return nil, serr end
  local _ <close> = setmetatable({}, { __close = function() stage.remove(st) end })
  if not st.full_map then
    -- Said up front: a dry-run as another user than root cannot show
    -- what root would be allowed to do.
    local ids = require("shannot.core.sys").ids()
    opts.warn("running as %s, not root: only files that user may change are captured (%s)",
      ids.user or ("uid " .. ids.euid), #st.tops > 0 and table.concat(st.tops, ", ") or "none here")
  end
  run_opts.namespace = stage.namespace(st)
  run_opts.ctx = merged_ctx(run_opts.ctx, stage.bwrap_ctx(st))
  run_opts.capture, run_opts.tee = true, not opts.json
  if run_opts.limits then run_opts.watch = limits.watch(run_opts.limits, st.dir) end
  local r, rerr = sandbox.run(p, job.argv, run_opts)
  if not r then
    if err.is(rerr) then rerr.message = stage.describe_failure(st, rerr.message) or rerr.message end
    return nil, rerr
  end
  if r.limit == "staging" then
    return nil, err.refused("the run wrote more than %s into staging ([limits] staging), or left less than %s " ..
      "free there: it was stopped and nothing was kept", opview.size(run_opts.limits.staging),
      opview.size(limits.MIN_FREE))
  end
  -- No exit code and no timeout: the sandbox never started, or the user
  -- interrupted it; neither is a run worth a session.
  if r.interrupted or (r.exit_code == nil and not r.timed_out) then return r end
  local ok, msg = fs.mkdir(st.dir .. "/blobs", 448)
  if not ok then return nil, err.env("staging: %s", msg) end
  local w, cerr, why = capture.operations(st.overlays, st.dir .. "/blobs", nil,
    { max_bytes = run_opts.limits and run_opts.limits.staging })
  if not w then
    if why == "refused" then return nil, err.refused("%s", text.inert(cerr)) end
    return nil, err.env("capturing what the run changed: %s", text.inert(text.middle(cerr, 400)))
  end
  local records, derr = stage.deferred(st, stage.allowed_deferred(p.defer, profile.search_path(p)))
  if not records then return nil, err.refused("%s", derr) end
  capture.add_deferred(w, records)
  for _, skipped in ipairs(w.skipped) do
    opts.warn("%s: a %s is not captured", text.inert(skipped.path), skipped.type)
  end
  if #w.ops == 0 then return r end
  local s, e = M.save(job, p, r, w, st, opts)
  if not s then return nil, e end
  return r, s
end

-- "2 write, 1 delete, 1 exec"
function M.count_line(counts)
  local parts = {}
  for _, kind in ipairs(M.KINDS) do
    if (counts[kind] or 0) > 0 then parts[#parts + 1] = counts[kind] .. " " .. kind end
  end
  return table.concat(parts, ", ")
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

-- summary(s) -> what a front end says after a capture: the session made
-- and the commands to review and apply it.
function M.summary(s)
  return string.format("shannot: captured %s (%s) as session %s, pending review\n" ..
    "  review: shannot show %s --diff\n  apply:  shannot approve %s\n",
    plural(#s.operations, "operation"), M.count_line(s.counts), s.id, s.id, s.id)
end

return M
