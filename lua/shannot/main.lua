-- Entry point called by the C host: runs the command line and maps every
-- outcome to an exit code.  The only module that prints errors.
local const = require("shannot.const")
local err = require("shannot.err")
local sys = require("shannot.core.sys")

local M = {}

-- Every message may carry outside data (a remote's error, a tar entry's
-- name, a policy file's error): nothing of it may drive the terminal.
local function report(message, lines)
  local text = require("shannot.text")
  io.stderr:write("shannot: ", lines and text.inert_lines(message) or text.inert(message), "\n")
end

-- run(argv) -> exit code
function M.run(argv)
  local cli = require("shannot.cli")
  local args = table.move(argv, 1, #argv, 1, {})
  -- an err object thrown where no err.try catches it (a damaged record
  -- met deep in a streamed list) is an expected failure, said in a line
  local ok, code, e = xpcall(cli.main, function(x) return err.is(x) and x or debug.traceback(x) end, args)
  io.stdout:flush()
  local sig = sys.interrupted()
  if sig then
    report("interrupted")
    return 128 + sig
  end
  if not ok and err.is(code) then
    report(code.message)
    return code.exit
  end
  if not ok then
    report("internal error (a bug in shannot; please report it):\n" .. tostring(code), true)
    return const.EXIT.INTERNAL
  end
  if code == nil then
    if not err.is(e) then
      report("internal error: a command failed without saying why: " .. tostring(e))
      return const.EXIT.INTERNAL
    end
    report(e.message)
    return e.exit
  end
  if math.type(code) ~= "integer" then
    report(string.format("internal error: the command ended with %q, not an exit code", tostring(code)))
    return const.EXIT.INTERNAL
  end
  return code
end

return M
