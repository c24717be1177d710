-- shannot mcp [--target T] [--profile P] | mcp install [...]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local text = require("shannot.text")

local M = {
  usage = "shannot mcp [--target T] [--profile P]\n" ..
    "shannot mcp install [--client claude-desktop|claude-code|codex|lmstudio|all] [--target T] [--dry-run]",
  help = [[
Serves the Model Context Protocol (2025-11-25, and earlier versions a
client asks for) on stdin/stdout, one JSON-RPC message per line, for LLM
agents.  Tools: run_command (a read-only sandboxed command, with secrets
hidden: see [mcp] hide in "shannot config help"), run_script (captures
what a script would change into a pending session and returns its id
and summary: nothing is ever applied from MCP; a person approves it; an
optional rationale is kept with the session and the script),
list_sessions, get_session, list_profiles, list_remotes.  Resources:
shannot://profiles, shannot://remotes, shannot://status, and the
templates shannot://sessions/{id} and shannot://profiles/{name}.  An
agent may name only remotes configured here.  The audit log names the
client (its name and version from initialize).

options:
  --target T    run tools on this configured remote unless a call names one
  --profile P   the profile run_script uses (default: system)

install adds shannot to an MCP client's configuration, keeping everything
else in the file: Claude Desktop (claude_desktop_config.json), Claude
Code (~/.claude.json), Codex (config.toml in $CODEX_HOME or ~/.codex),
LM Studio (~/.lmstudio/mcp.json):
  --client C    claude-desktop, claude-code, codex, lmstudio or all
                (default: each whose configuration directory exists)
  --dry-run     show the change, make none]],
  options = {
    ["--target"] = { arg = "T" }, ["--profile"] = { arg = "P" }, ["--client"] = { arg = "C" },
    ["--dry-run"] = { key = "dry_run" }, ["--json"] = {},
  },
}

local SAID = {
  added = { "added shannot to %s (%s)", "would add shannot to %s (%s)" },
  updated = { "updated shannot in %s (%s)", "would update shannot in %s (%s)" },
  ["up-to-date"] = { "shannot in %s is already up to date (%s)", "shannot in %s is already up to date (%s)" },
}

local function said(doc)
  local line = string.format(SAID[doc.status][doc.dry_run and 2 or 1], text.inert(doc.path), doc.name)
  if doc.created then line = line .. (doc.dry_run and "; would create it" or "; created it") end
  return line
end

local function install(opts, args)
  local done, ierr, warnings = require("shannot.mcp.install").run(opts, args)
  for _, w in ipairs(warnings or {}) do cli.warn("%s", w) end
  if not done then return nil, ierr end
  if opts.json then
    cli.out(json.encode({ clients = json.array(done.clients), skipped = json.array(done.skipped),
      entry = { command = done.entry.command, args = json.array(done.entry.args) } }, { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  for _, doc in ipairs(done.clients) do
    cli.out(said(doc), "\n")
    if doc.diff then cli.out(text.inert_lines(doc.diff), doc.diff:sub(-1) == "\n" and "" or "\n") end
  end
  for _, s in ipairs(done.skipped) do
    cli.out(string.format("skipped %s: %s\n", s.name, text.inert(s.why)))
  end
  return const.EXIT.OK
end

function M.run(opts, args)
  if args[1] == "install" then return install(opts, table.move(args, 2, #args, 1, {})) end
  if #args > 0 then return nil, err.usage('mcp: unexpected "%s"; usage: %s', text.inert(args[1]), M.usage) end
  local mcp = require("shannot.mcp.server")
  if opts.target then
    local server = mcp.new({ config = opts.config, actor = opts.actor, warn = opts.warn })
    local ok, why = server:check_target(opts.target)
    if not ok then return nil, err.usage("mcp: %s", why) end
  end
  if opts.profile then
    local p, perr = require("shannot.sandbox.profile").load(opts.profile)
    if not p then return nil, perr end
  end
  local bin = require("shannot.fs").realpath("/proc/self/exe")
  local server = mcp.new({ config = opts.config, target = opts.target, profile = opts.profile, bin = bin })
  return server:serve(0)
end

return M
