-- STYLE 36: one meaning per word and no long positional parameter lists:
-- a function takes at most four (a method's self not counted); more
-- become one table.  The one exception mirrors a standard function's
-- signature (boundedlib's table.move).
local h = require("support.h")

local EXEMPT = { ["lua/shannot/boundedlib.lua lib.move"] = true }

describe("the Lua modules' style", function()
  it("have no function of more than four positional parameters", function()
    local long = {}
    h.lua_sources(function(path, src)
      for name, params in src:gmatch("function%s+([%w_.:]+)%s*(%b())") do
        local list = {}
        for p in params:sub(2, -2):gmatch("[^,%s]+") do list[#list + 1] = p end
        if name:find(":", 1, true) == nil and (list[1] == "self" or list[1] == "_") then table.remove(list, 1) end
        if #list > 4 and list[#list] ~= "..." and not EXEMPT[path .. " " .. name] then
          long[#long + 1] = path .. ": " .. name .. params
        end
      end
    end)
    table.sort(long)
    assert.same({}, long)
  end)

  it("name modules for what they do (the names issue 13 retired are gone)", function()
    local old = {}
    h.lua_sources(function(path, src)
      for _, name in ipairs({ "dryrun", "remote_dryrun", "events", "opview", "remote_script", "stage", "status" }) do
        if src:find('require("shannot.' .. name .. '")', 1, true) then old[#old + 1] = path .. ": " .. name end
      end
      local base = path:match("^lua/shannot/([%w_]+)%.lua$")
      if base and ({ dryrun = 1, events = 1, opview = 1, remote_script = 1 })[base] then old[#old + 1] = path end
    end)
    assert.same({}, old)
  end)
end)
