-- shannot repl [--target T] [--accept-new]: an interactive Lua 5.4 prompt
-- with the shannot API (lua/shannot/ui/repl.lua).
local err = require("shannot.err")
local text = require("shannot.text")

local M = {
  usage = "shannot repl [--target T] [--accept-new]",
  help = [[
An interactive Lua 5.4 prompt with the shannot API, the same one
"shannot lua FILE" gives a script.  Its globals: the standard ones, and
  shannot   require("shannot"): session, apply, policy, fs, proc, ...
  config    the loaded configuration
  target    with --target, the SSH session to T (target:exec("cmd"), ...),
            connected once and kept for the whole prompt
  p(v)      pretty-prints values
An expression prints its value (tables indented, keys sorted); a statement
left open ("function f()") continues on a "..>" line; an error prints one
line and the prompt goes on.

Keys: Left/Right, Home/End (Ctrl-A/Ctrl-E), Backspace/Delete, Ctrl-U
(delete to the start), Ctrl-K (to the end), Ctrl-W (the word before),
Up/Down (history, kept in $XDG_DATA_HOME/shannot/repl_history), Tab
(complete names: globals, shannot.ses -> shannot.session, table fields),
Ctrl-L (clear), Ctrl-C (cancel the line, or stop what runs), Ctrl-D on
an empty line (leave).

Without a terminal it reads plain lines (no prompt) and exits 1 if any
input failed: printf '1+1\n' | shannot repl prints 2.

options:
  --target T      connect to T (a [remotes.T], an ssh executor, or
                  [USER@]HOST[:PORT]) and expose it as `target`
  --accept-new    with --target: accept and remember an unknown host key]],
  options = { ["--target"] = { arg = "T" }, ["--accept-new"] = { key = "accept_new" } },
}

function M.run(opts, args)
  if #args > 0 then return nil, err.usage('repl: unexpected "%s"; usage: %s', text.inert(args[1]), M.usage) end
  return require("shannot.ui.repl").run({ config = opts.config, target = opts.target, accept_new = opts.accept_new })
end

return M
