-- The local executor's capture: the staging, the sandbox over overlays,
-- and what it leaves for the walk (capture/walk.lua) to read.  A profile
-- without capture paths runs plainly: there is nothing to capture.
local err = require("shannot.err")
local fs = require("shannot.fs")
local guard = require("shannot.guard")
local limits = require("shannot.sandbox.limits")
local profile = require("shannot.sandbox.profile")
local sandbox = require("shannot.sandbox")

-- What only a capture needs (a plain sandbox loads none of it: start-up
-- is most of what a plain run costs beyond bwrap's own, bench/startup)
local queries, staging, walk
local function load_capture_part()
  queries = require("shannot.capture.queries")
  staging = require("shannot.capture.staging")
  walk = require("shannot.capture.walk")
end

local M = {}

-- bounds: {limits = limits.of's, group = limits.group's | nil}
local function plain_run(p, plan, settings, bounds)
  return sandbox.run(p, plan.job.argv, {
    timeout = plan.timeout, bwrap = settings.bwrap_path, max_output = plan.max_output,
    limits = bounds.limits, group = bounds.group, script = plan.job.script and
      { source = plan.job.script, target = plan.job.script_inside },
    -- Through a pipe even to a terminal: a clipboard or title string the
    -- command prints must not reach the user's terminal (as in a capture).
    keep_output = true, tee = plan.show_output, hide = plan.hide,
  })
end

-- capture(plan, settings) -> trees, deferred, result | false, nil, result
-- (the run ended with nothing to capture) | nil, err.  See executor/init.lua.
function M.capture(plan, settings)
  local p = plan.profile
  local here, herr = sandbox.check_platform()
  if not here then return nil, herr end
  -- the sandbox's cgroup first: its first move may be paid meanwhile
  -- (limits.group's early); none here: the sandbox uses rlimits
  local lim = limits.of(plan.config)
  local group = limits.group(lim, limits.name(), { early = true }) or nil
  local _ <close> = guard(function() if group then limits.remove(group) end end)
  if #p.capture == 0 then
    local r, rerr = plain_run(p, plan, settings, { limits = lim, group = group })
    if not r then return nil, rerr end
    return false, nil, r
  end
  load_capture_part()
  local st, serr = staging.create(p, { search_path = profile.search_path(p) })
  if not st then return nil, serr end
  -- the overlays' upper trees, a blob store, the deferred record: all in
  -- the staging, which closing the trees removes
  -- (a capture the walk refused keeps nothing of it: trees.discard)
  local trees
  trees = walk.trees({}, function()
    if trees.discard then st.reusable = false end
    staging.remove(st)
  end)
  -- until it is handed back: an interrupt may unwind through the run
  local owned <close> = guard(function() trees:close() end)
  if not st.full_map then
    -- Said up front: a dry-run as another user than root cannot show
    -- what root would be allowed to do.
    local ids = require("shannot.core.sys").ids()
    plan.warn("running as %s, not root: only files that user may change are captured (%s)",
      ids.user or ("uid " .. ids.euid), #st.tops > 0 and table.concat(st.tops, ", ") or "none here")
  end
  local server, qerr = queries.serve(p, st.dir)
  if qerr then return nil, qerr end
  local stop_server <close> = guard(function() if server then queries.stop(server) end end)
  local r, rerr = sandbox.run(p, plan.job.argv, {
    timeout = plan.timeout, bwrap = settings.bwrap_path, max_output = plan.max_output, limits = lim, group = group,
    namespace = staging.namespace(st), capture = staging.sandbox_part(st),
    script = plan.job.script and { source = plan.job.script, target = plan.job.script_inside },
    keep_output = true, tee = plan.show_output, watch = limits.watch(lim, st.dir), hide = plan.hide,
    wake = server and server.wake, meanwhile = function() staging.sweep(st) end,
  })
  if group then limits.remove(group) end  -- (at once: the walk may take a while)
  if not r then
    rerr.message = staging.describe_failure(st, rerr)
    return nil, rerr
  end
  if r.limit == "staging" then
    return nil, err.refused("the run wrote more than %s into staging ([limits] staging), or left less than %s " ..
      "free there: it was stopped and nothing was kept", require("shannot.session.view").size(lim.staging),
      require("shannot.session.view").size(limits.MIN_FREE))
  end
  -- No exit code and no timeout: the sandbox never started, or the user
  -- interrupted it; neither is a run worth a session.
  if r.interrupted or (r.exit_code == nil and not r.timed_out) then
    return false, nil, r
  end
  local records, derr = staging.deferred(st, staging.allowed_deferred(p.defer, profile.search_path(p)))
  -- (a run that forged its deferred channel: nothing of its staging kept)
  if not records then return nil, derr end
  -- the run ended by itself: its staging may be kept for the next one if
  -- it is still as made (staging.remove looks)
  st.reusable = r.exit_code ~= nil
  local ok, msg = fs.mkdir(st.dir .. "/blobs", 448)
  if not ok then return nil, err.env("staging: %s", msg) end
  trees.overlays, trees.blobs, trees.max_bytes = st.overlays, st.dir .. "/blobs", lim.staging
  trees.deferred_file = st.dir .. "/defer/deferred"
  if server then
    stop_server:close()  -- every answer is in the record once it is gone
    trees.questions, rerr = queries.read(st.dir .. "/queries")
    if not trees.questions then return nil, err.env("staging: %s", rerr) end
  end
  owned:cancel()
  return trees, records, r
end

return M
