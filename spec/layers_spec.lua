-- STYLE 31: layers point one way.  Every require in lua/shannot, read from
-- the source, goes to the same or a lower layer, and no module reaches
-- itself again.  A new module must be placed in a layer here first.
local fs = require("shannot.fs")
local h = require("support.h")

local LAYERS = {
  -- 0: thin wrappers of the C core, and formats
  { "fs", "proc", "store", "tar", "ssh", "term", "seccomp", "const", "err", "json", "toml", "text", "glob",
    "paths", "diff", "sessionid", "shellsplit", "boundedlib", "testhooks", "guard" },
  -- 1: the domain
  { "profile", "session", "policy", "policyfile", "cmdpattern", "config", "audit", "events", "approval",
    "opview", "limits", "remote", "remote_script", "sandbox.bwrap" },
  -- 2: orchestration
  { "capture", "capture.local", "capture.ssh", "stage", "sandbox", "dryrun", "apply", "executor", "executor.local",
    "executor.ssh", "executor.common", "status" },
  -- 3: front ends
  { "init", "cli", "main", "tui", "repl", "mcp", "mcp_install", "cmd.*" },
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
  local root = h.ROOT .. "/lua/shannot"
  local out = {}
  local function walk(dir, prefix)
    for _, entry in ipairs(fs.readdir(dir)) do
      local path = dir .. "/" .. entry
      if fs.is_dir(path) then
        walk(path, prefix .. entry .. ".")
      elseif entry:match("%.lua$") then
        local deps = {}
        for dep in fs.read_file(path):gmatch('require%("shannot%.([%w_.]+)"%)') do
          if not dep:match("^core%.") then deps[#deps + 1] = dep end
        end
        local name = prefix .. entry:gsub("%.lua$", "")
        out[(name:gsub("%.init$", ""))] = deps  -- executor/init.lua is shannot.executor
      end
    end
  end
  walk(root, "")
  return out
end

describe("the Lua modules' layers", function()
  it("place every module, and every require goes to the same layer or one below", function()
    local up = {}
    for name, deps in pairs(graph()) do
      local mine = layer_of(name)
      assert.is_not_nil(mine, "lua/shannot/" .. name .. ".lua is in no layer of spec/layers_spec.lua")
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
