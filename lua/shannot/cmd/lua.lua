-- shannot lua FILE [ARGS...]: a Lua 5.4 interpreter with the shannot API.
local const = require("shannot.const")
local err = require("shannot.err")

local function load_script(file)
  if file == "-" then
    return load(io.stdin:read("a") or "", "=stdin", "t")
  end
  return loadfile(file, "t")
end

return {
  usage = "shannot lua FILE [ARGS...]",
  help = [[
Runs the Lua 5.4 file FILE ("-" reads standard input) with the shannot API
available as require("shannot").  As with the lua interpreter, the global
`arg` holds FILE at index 0 and ARGS from index 1, and the chunk receives
ARGS as `...`.  An error in the script is printed with its traceback and
the exit code is 1.]],
  stop_at_positional = true,
  run = function(opts, args)
    local script_args = opts["--"] or {}
    local file = args[1] or script_args[1]
    if file == nil then return nil, err.usage("lua: no FILE given; usage: shannot lua FILE [ARGS...]") end
    local rest = args[1] and table.move(args, 2, #args, 1, {}) or table.move(script_args, 2, #script_args, 1, {})
    local chunk, msg = load_script(file)
    if not chunk then return nil, err.usage("lua: %s", msg) end
    local script_arg = { [0] = file }
    table.move(rest, 1, #rest, 1, script_arg)
    _G.arg = script_arg
    local ok, e = xpcall(chunk, debug.traceback, table.unpack(rest))
    if not ok then
      io.stderr:write("shannot: ", require("shannot.text").inert_lines(tostring(e)), "\n")
      return const.EXIT.FAILED
    end
    return const.EXIT.OK
  end,
}
