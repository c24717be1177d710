-- The public Lua API: require("shannot").  Submodules load on first use,
-- so a script pays only for what it touches.
local const = require("shannot.const")

local PUBLIC = {
  profile = "shannot.profile", sandbox = "shannot.sandbox", status = "shannot.status",
  fs = "shannot.fs", proc = "shannot.proc", json = "shannot.json", paths = "shannot.paths",
  text = "shannot.text", toml = "shannot.toml", session = "shannot.session",
  capture = "shannot.capture", stage = "shannot.stage", store = "shannot.store",
  config = "shannot.config", policy = "shannot.policy", remote = "shannot.remote",
  apply = "shannot.apply", executor = "shannot.executor", events = "shannot.events",
  audit = "shannot.audit", seccomp = "shannot.seccomp",
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
