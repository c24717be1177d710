-- A capturing run, start to end, the same for every executor: the
-- executor runs the sandbox and hands back what it wrote (trees), the
-- deferred calls and the result; the walk (capture/walk.lua) turns the trees
-- into operations; policy judges them; the session keeps them.  Nothing on
-- the host changes, and the executor's staging goes on every way out.
-- It prints nothing: warnings go to opts.warn(fmt, ...), the front end's.
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local text = require("shannot.text")

local M = {}

-- Loaded when a run captured something: a run that captured nothing (or
-- a plain sandbox) pays for none of them.
local function walk() return require("shannot.capture.walk") end
local function policy() return require("shannot.policy") end
local function session() return require("shannot.session") end

-- The walk's entry points, where operator scripts written before the
-- regroup (require("shannot").capture.operations) find them.
function M.operations(...) return walk().operations(...) end
function M.add_deferred(...) return walk().add_deferred(...) end
setmetatable(M, { __index = function(_, key) if key == "local_tree" then return walk().local_tree end end })

-- The command's output, beside the blobs: like them not synced one by
-- one (a run can be made again; a blob lost in a crash fails its hash
-- check at execute), where an fsync of each file and of the directory
-- cost ~2 ms of every capture.  session.json, written last, is synced
-- with its directory.
local function keep_output(dir, r)
  for _, name in ipairs({ "stdout", "stderr" }) do
    local ok, msg = fs.write_new(dir .. "/" .. name, r[name] or "", 384)
    if not ok then return nil, msg end
  end
  return true
end

-- Moves what a session keeps out of the executor's trees: the blobs and
-- the deferred record, then the command's output.
local function keep_files(dir, c)
  local ok, msg = fs.rename(c.trees.blobs, dir .. "/blobs")
  if ok then
    c.script, msg = require("shannot.capture.script").save(c.job, dir .. "/blobs")
    if msg then ok, msg = nil, "the script: " .. msg end
  end
  if ok and c.trees.deferred_file then ok, msg = fs.rename(c.trees.deferred_file, dir .. "/deferred") end
  if ok and not c.trees.deferred_file then ok, msg = fs.write_new(dir .. "/deferred", "", 384) end
  if ok then ok, msg = keep_output(dir, c.result) end
  return ok, msg
end

-- judged(s, w, opts) -> each(fn): the walk's operations one at a time,
-- each with the policy's decision, danger and reason.  When the policy
-- files fail, the capture is kept whatever they do: every operation left
-- for a person, the reason saying why (the operations are read again).
local function judged(s, w, opts)
  return function(fn)
    local pol = policy()
    local ctx = pol.context(opts.config, s)
    local done, perr = err.try(walk().each_operation, w, function(op)
      local decision, danger, reason = pol.decide(op, opts.config, ctx)
      if not decision then err.throw(err.with_code(err.is(danger) and danger or err.usage("%s", tostring(danger)),
        "policy")) end
      op.decision, op.danger, op.reason = decision, danger, reason and text.inert(reason) or nil
      fn(op)
    end)
    if done then return end
    if perr.code ~= "policy" then err.throw(perr) end
    -- nothing was kept of the first pass (save starts again)
    err.throw(err.with_code(perr, "policy failed"))
  end
end

local function left_for_review(w, why)
  return function(fn)
    walk().each_operation(w, function(op)
      op.decision, op.reason = "review", "policy error: " .. why
      fn(op)
    end)
  end
end

-- save(c, opts) -> session | nil, err: the session of a capture c = {job,
-- profile, result, walk (walk.operations'), trees, target}, judged by
-- policy, its creation logged.  Either the whole session is on disk or
-- none of it is.  opts: ttl, config, actor, warn.
function M.save(c, opts)
  local id, dir = session().reserve(c.job.name)
  if not id then return nil, dir end
  -- the session's directory is synced with the audit line: one journal
  -- commit for both (durable.lua)
  local batch = require("shannot.durable").batch()
  local ok, msg = keep_files(dir, c)
  local s
  if ok then
    s = session().new({
      id = id, name = c.job.name, ttl = opts.ttl, profile = c.profile.name, command = c.job.command or c.job.argv,
      exit_code = c.result.exit_code, counts = c.walk.counts, target = c.target,
      signal = c.result.exit_code == nil and c.result.signal_name or nil, timed_out = c.result.timed_out,
    })
    if #c.walk.skipped > 0 then s.skipped = c.walk.skipped end
    if (c.walk.ignored or 0) > 0 then s.ignored = c.walk.ignored end  -- paths [capture] ignore left out
    -- what a reviewer reads beside the changes: the script as it ran, why
    -- it was run, and (MCP) which client asked
    s.script, s.rationale, s.client = c.script, c.job.why, c.job.client
    s.where = c.where
    -- one host of a fleet run (fleet/capture.lua): the run it belongs to
    s.fleet_run = opts.fleet_run
    if #c.walk.dir_times > 0 then
      s.dir_times = require("shannot.json").array(c.walk.dir_times)
    end
    -- Half of what a session may grow to: execute adds the checkpoint
    -- and a result per operation later.
    s.operations = nil  -- streamed to the session's file, not held
    local limit = session().MAX_JSON_BYTES // 2
    local saved, serr = session().save(s, limit, judged(s, c.walk, opts), batch)
    if not saved and serr.code == "policy failed" then
      opts.warn("%s; every operation is left for review", serr.message)
      saved, serr = session().save(s, limit, left_for_review(c.walk, serr.message), batch)
    end
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
  require("shannot.session.audit_event").session({ what = "session_created", session = s, config = opts.config,
    actor = opts.actor, warn = opts.warn, batch = batch })
  batch:commit()  -- no line written: the session's directory alone
  return s
end

-- The walk over the executor's trees, its failures as errors.
local function operations(trees, records, where, opts)
  -- spooled beside the blobs, in the staging area: the operations of a
  -- run that wrote 100 000 files are never all in memory
  local w, cerr = walk().operations(trees.overlays, trees.blobs, trees, { max_bytes = trees.max_bytes,
    ignore = opts.ignore, progress = opts.progress, spool = trees.blobs .. ".operations" })
  if not w then
    if cerr.code == "refused" then return nil, err.refused("%s%s", where, text.inert(cerr.message)) end
    return nil, err.env("%scapturing what the run changed: %s", where, text.inert(text.middle(cerr.message, 400)))
  end
  walk().add_questions(w, trees.questions or {})
  return walk().add_deferred(w, records)
end

-- run(executor, profile, job, opts) -> result, session | result | nil, err
-- job: {argv, name, command, script, script_inside}; opts: json (no
-- pass-through of the output), ttl, config, actor, timeout, max_output,
-- hide (absolute globs hidden inside the sandbox, sandbox/hide.lua),
-- progress (shannot.progress's reporter, for the stream and the walk
-- after the run) and the front end's warn(fmt, ...).
function M.run(ex, p, job, opts)
  local trees <close>, records, result = ex:capture({
    profile = p, job = job, config = opts.config, timeout = opts.timeout, max_output = opts.max_output,
    show_output = not opts.json, warn = opts.warn, hide = opts.hide, progress = opts.progress,
  })
  if trees == nil then return nil, records end
  if not trees then return result end
  local where = ex.target ~= "local" and (ex.target .. ": ") or ""
  -- [capture] ignore, the built-in list without a config (the Lua API)
  local set = opts.config and opts.config.values.capture
  local ignore = set and set.ignore or require("shannot.config").DEFAULT_CAPTURE_IGNORE
  if opts.progress then opts.progress:after_output({ result.stdout or "", result.stderr or "" }) end
  local w, werr = operations(trees, records, where, { ignore = ignore, progress = opts.progress })
  if opts.progress then opts.progress:finish() end
  if not w then
    trees.discard = true  -- what the run left is not kept for another
    return nil, werr
  end
  for _, skipped in ipairs(w.skipped) do
    opts.warn("%s%s: a %s is not captured", where, text.inert(skipped.path), skipped.type)
  end
  result.ignored = w.ignored
  -- the spool goes once read: a staging left as made is kept for the next run
  local _ <close> = require("shannot.guard")(function() if w.spooled then fs.remove(w.spooled) end end)
  if walk().count(w) == 0 then return result end
  local s, serr = M.save({ job = job, profile = p, result = result, walk = w, trees = trees,
    target = ex.target ~= "local" and ex.target or nil, where = ex.location and ex:location() or nil }, opts)
  if not s then return nil, serr end
  return result, s
end

return M
