-- shannot __fleet-host JOBFILE: one host of a fleet run, started by
-- fleet/capture.lua in a process of its own (never typed by a person).
local M = {
  usage = "shannot __fleet-host JOBFILE",
  help = "One host of a fleet run (internal: started by shannot run --target @GROUP).",
  options = {},
}

function M.run(opts, args)
  return require("shannot.fleet.capture").host(opts, args[1])
end

return M
