-- The public Lua API: require("shannot").  Submodules load on first use,
-- so a script pays only for what it touches.
local const = require("shannot.const")

local PUBLIC = {
  profile = "shannot.sandbox.profile", sandbox = "shannot.sandbox", status = "shannot.sandbox.probe",
  fs = "shannot.fs", proc = "shannot.proc", json = "shannot.json", paths = "shannot.paths",
  text = "shannot.text", toml = "shannot.toml", session = "shannot.session",
  capture = "shannot.capture", walk = "shannot.capture.walk", stage = "shannot.capture.staging",
  store = "shannot.store",
  config = "shannot.config", policy = "shannot.policy", remote = "shannot.remote",
  apply = "shannot.session.apply", executor = "shannot.executor", events = "shannot.session.audit_event",
  audit = "shannot.session.audit", seccomp = "shannot.sandbox.seccomp",
  bwrap = "shannot.sandbox.bwrap", limits = "shannot.sandbox.limits", approval = "shannot.session.approval",
  view = "shannot.session.view", err = "shannot.err", guard = "shannot.guard", fleet = "shannot.fleet.api",
}

-- The submodule names, sorted (for listings and completion: the members
-- themselves appear only once loaded).
local modules = {}
for name in pairs(PUBLIC) do modules[#modules + 1] = name end
table.sort(modules)

return setmetatable({ version = const.VERSION, modules = modules }, {
  __index = function(t, key)
    local name = PUBLIC[key]
    if not name then error("shannot has no member '" .. tostring(key) .. "'", 2) end
    local m = require(name)
    rawset(t, key, m)
    return m
  end,
})
