-- shannot prune
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local session = require("shannot.session")
local staging = require("shannot.capture.staging")
local text = require("shannot.text")

local M = {
  usage = "shannot prune",
  help = [[
Removes expired sessions, finished ones (rejected, executed, failed,
rolled back) last changed more than 30 days ago, with their blobs and
checkpoints, session directories a killed run left without a session,
staging directories left by runs that were killed, and the empty cgroups
of sandboxes that ended.
Pending and approved sessions are never removed.  Says what it removed.]],
  options = {},
}

function M.run(opts, args)
  if #args > 0 then return nil, err.usage("prune: unexpected argument \"%s\"", text.inert(args[1])) end
  local removed, problems = session.prune({ config = opts.config, actor = opts.actor, warn = opts.warn })
  local stale = staging.prune_stale()
  local groups = require("shannot.sandbox.limits").prune()
  for _, r in ipairs(removed) do cli.out(string.format("removed %s (%s)\n", r.id, r.why)) end
  for _, dir in ipairs(stale) do cli.out(string.format("removed staging %s (its run is gone)\n", dir)) end
  for _, dir in ipairs(groups) do cli.out(string.format("removed cgroup %s (its sandbox ended)\n", dir)) end
  for _, p in ipairs(problems) do cli.warn("%s", p) end
  if #removed == 0 and #stale == 0 and #groups == 0 then cli.out("nothing to prune\n") end
  return #problems == 0 and const.EXIT.OK or const.EXIT.FAILED
end

return M
