-- Runs busted inside the shannot binary (`shannot lua scripts/busted.lua`),
-- so specs exercise the embedded Lua and the real C primitives.  The
-- Makefile passes the system Lua paths where busted is installed.
local lua_path = os.getenv("SHANNOT_TEST_LUA_PATH")
local lua_cpath = os.getenv("SHANNOT_TEST_LUA_CPATH")
if not lua_path or not lua_cpath then
  io.stderr:write("run the specs with 'make test'\n")
  os.exit(2)
end
package.path = "./spec/?.lua;" .. package.path .. ";" .. lua_path
package.cpath = lua_cpath
arg[0] = "busted"
require("busted.runner")({ standalone = false })
