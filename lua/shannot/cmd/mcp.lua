-- shannot mcp [--target T] [--profile P] | mcp install [...]
local err = require("shannot.err")
local text = require("shannot.text")

local M = {
  usage = "shannot mcp [--target T] [--profile P]\n" ..
    "shannot mcp install [--client claude-desktop|claude-code|all] [--target T] [--dry-run]",
  help = [[
Serves the Model Context Protocol on stdin/stdout (one JSON-RPC message
per line), for LLM agents.  Tools: run_command (a read-only sandboxed
command), run_script (captures what a script would change into a pending
session and returns its id and summary: nothing is ever applied from
MCP; a person approves it), list_sessions, get_session, list_profiles,
list_remotes.  Resources: shannot://profiles, shannot://remotes,
shannot://status.  An agent may name only remotes configured here.

options:
  --target T    run tools on this configured remote unless a call names one
  --profile P   the profile run_script uses (default: system)

install adds shannot to an MCP client's configuration (Claude Desktop,
Claude Code), keeping everything else in the file:
  --client C    claude-desktop, claude-code or all (default)
  --dry-run     show the change, make none]],
  options = {
    ["--target"] = { arg = "T" }, ["--profile"] = { arg = "P" }, ["--client"] = { arg = "C" },
    ["--dry-run"] = { key = "dry_run" }, ["--json"] = {},
  },
}

function M.run(opts, args)
  if args[1] == "install" then
    local rest = table.move(args, 2, #args, 1, {})
    return require("shannot.mcp_install").run(opts, rest)
  end
  if #args > 0 then return nil, err.usage('mcp: unexpected "%s"; usage: %s', text.inert(args[1]), M.usage) end
  local mcp = require("shannot.mcp")
  if opts.target then
    local server = mcp.new({ config = opts.config })
    local ok, why = server:check_target(opts.target)
    if not ok then return nil, err.usage("mcp: %s", why) end
  end
  if opts.profile then
    local p, perr = require("shannot.profile").load(opts.profile)
    if not p then return nil, perr end
  end
  local bin = require("shannot.fs").realpath("/proc/self/exe")
  local server = mcp.new({ config = opts.config, target = opts.target, profile = opts.profile, bin = bin })
  return server:serve(0)
end

return M
