std = "lua54"
-- the C host adds where this Lua's installation keeps modules (src/loader.c)
read_globals = { package = { fields = { "system_path", "system_cpath" } } }
max_line_length = 120
files["spec"] = { std = "+busted" }
files["scripts/busted.lua"] = { globals = { "arg" } }
