-- STYLE 31: layers point one way.  Every require in lua/shannot, read from
-- the source, goes to the same or a lower layer, and no module reaches
-- itself again.  A new module must be placed in a layer here first.
local h = require("support.h")

local LAYERS = {
  -- 0: thin wrappers of the C core, and formats
  { "fs", "proc", "store", "tar", "ssh", "term", "const", "err", "guard", "json", "toml", "text", "glob",
    "paths", "diff", "shellsplit", "boundedlib", "testhooks", "session.id", "sandbox.seccomp", "xattrs", "wcwidth",
    "progress", "durable" },
  -- 1: the domain: profiles and the bwrap line, sessions and their log,
  -- policy, config, remotes
  { "sandbox.profile", "sandbox.bwrap", "sandbox.limits", "sandbox.hide", "session", "session.lines", "session.audit",
    "session.audit_event",
    "session.approval", "session.view", "policy", "policy.file", "policy.cmdpattern", "config", "remote",
    "capture.remote_shell", "capture.queries", "capture.script", "fleet.targets", "fleet.inventory", "fleet.runs" },
  -- 2: orchestration: running sandboxes, capturing, applying, executors
  { "sandbox", "sandbox.probe", "capture", "capture.walk", "capture.renames", "capture.staging",
    "capture.local", "capture.ssh",
    "session.apply", "session.approve", "executor", "executor.local", "executor.ssh", "executor.common", "fleet",
    "fleet.pool", "fleet.variants" },
  -- 3: front ends
  { "init", "cli", "main", "ui.*", "mcp.*", "cmd.*", "fleet.capture", "fleet.review", "fleet.apply", "fleet.api" },
}

local function layer_of(name)
  for i, names in ipairs(LAYERS) do
    for _, n in ipairs(names) do
      if n == name or (n:sub(-2) == ".*" and name:sub(1, #n - 1) == n:sub(1, -2)) then return i - 1 end
    end
  end
end

-- module name (as LAYERS writes it) -> the shannot modules it requires
local function graph()
  local out = {}
  h.lua_sources(function(path, src)
    local deps = {}
    for dep in src:gmatch('require%("shannot%.([%w_.]+)"%)') do
      if not dep:match("^core%.") then deps[#deps + 1] = dep end
    end
    local name = path:gsub("^lua/shannot/", ""):gsub("%.lua$", ""):gsub("/", ".")
    out[(name:gsub("%.init$", ""))] = deps  -- executor/init.lua is shannot.executor
  end)
  return out
end

describe("the Lua modules' layers", function()
  it("place every module, and every require goes to the same layer or one below", function()
    local up = {}
    for name, deps in pairs(graph()) do
      local mine = layer_of(name)
      assert.is_not_nil(mine, "lua/shannot/" .. name .. ".lua is in no layer of spec/unit/layers_spec.lua")
      for _, dep in ipairs(deps) do
        local theirs = layer_of(dep)
        if theirs and theirs > mine then up[#up + 1] = name .. " -> " .. dep end
      end
    end
    table.sort(up)
    assert.same({}, up)
  end)

  it("have no require cycle", function()
    local g, state, cycle = graph(), {}, nil
    local function visit(name, path)
      if state[name] == "done" or cycle then return end
      if state[name] == "open" then
        cycle = table.concat(path, " -> ") .. " -> " .. name
        return
      end
      state[name] = "open"
      path[#path + 1] = name
      for _, dep in ipairs(g[name] or {}) do visit(dep, path) end
      path[#path] = nil
      state[name] = "done"
    end
    for name in pairs(g) do visit(name, {}) end
    assert.is_nil(cycle)
  end)
end)
