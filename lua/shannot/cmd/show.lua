-- shannot show ID [--diff] [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local view = require("shannot.session.view")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot show ID|RUN [--diff] [--json] | ID --script",
  help = [[
Shows a session: its status, the command that made it, and every
operation it holds (write, mkdir, replace_dir, symlink, mkfifo, link,
rename, delete, chmod, chown, touch, xattr, query, exec) with the path
and what changes; a query is a question the script asked the running
system, with the host's answer, asked again before execute.

Given a fleet run's id (shannot run --target @GROUP), it groups the hosts
by identical change sets: "6 hosts: variant A", "1 host: variant B
(differs in /etc/hosts)", "1 host: unreachable".  With --diff each
variant is shown once: A whole, the others only where they differ from A.

The header says why the change was wanted (run --why, an MCP client's
rationale), the script that ran (its name, size and SHA-256: a session
keeps the exact bytes that ran, whatever became of the file since) and,
for a session an MCP client asked for, which client.

options:
  --diff     the content changes of each write as a unified diff (binary
             and very large files are summarised)
  --json     the whole session as one JSON document (DESIGN §3 fields)
  --script   only the script the session ran, byte for byte (on a
             terminal, control characters are shown escaped)]],
  options = { ["--diff"] = {}, ["--json"] = {}, ["--script"] = {} },
}

local function verdict(op)
  return string.format("%-7s %-7s", op.decision or "review", op.danger or "?")
end

local function op_line(op)
  local line
  if op.kind == "exec" then
    line = string.format("%4d  %s %-11s %s  (in %s)", op.id, verdict(op), "exec",
      text.inert(text.command_line(op.argv or {})), text.inert(op.cwd or "?"))
  elseif op.kind == "query" then
    line = string.format("%4d  %s %-11s %s  %s", op.id, verdict(op), "query",
      text.inert(text.command_line(op.argv or {})), text.inert(view.describe(op)))
  else
    line = string.format("%4d  %s %-11s %s  %s", op.id, verdict(op), op.kind, text.inert(op.path or "?"),
      text.inert(view.describe(op)))
  end
  if op.reason then line = line .. "\n      " .. text.inert(op.reason) end
  return line
end

-- The diff of one write, or a line saying why there is none and what can
-- be shown instead.
local function op_diff(s, op)
  local body, why = view.diff(s, op)
  local out = why and ("  (" .. text.inert(why) .. ")\n") or ""
  if body then out = out .. text.inert_lines(body) end
  return out
end

-- render(s, with_diff [, only]): the session, each operation (only those
-- `only(op)` keeps, when given) with its diff when asked
local function render(s, with_diff, only)
  local lines = {
    string.format("session %s  %s (expires %s)", s.id, s.status, s.expires_at),
    string.format("command  %s", text.inert(text.command_line(s.command or {}))),
    string.format("target   %s", text.inert(view.where(s))),
    string.format("profile  %s   exit code %s   created %s", tostring(s.profile),
      s.exit_code == json.null and "none" or tostring(s.exit_code), s.created_at),
    string.format("operations (%d):  id  decision danger  kind  path", session.count(s)),
  }
  if s.script then
    table.insert(lines, 3, string.format("script   %s  (%s, sha256 %s; shannot show %s --script)",
      text.inert(s.script.name), view.size(s.script.size), s.script.sha256:sub(1, 16), s.id))
  end
  if s.client then
    table.insert(lines, 3, string.format("asked by MCP client %s %s", text.inert(s.client.name),
      text.inert(s.client.version)))
  end
  if s.rationale then
    table.insert(lines, 2, "why      " .. text.inert_lines(s.rationale):gsub("\n$", ""):gsub("\n", "\n         "))
  end
  for _, line in ipairs(view.not_captured(s)) do
    table.insert(lines, #lines, text.inert(line))  -- before the operations' header
  end
  local failure = session.run_failure(s)
  if failure then
    table.insert(lines, 2, string.format("FAILED RUN: the command %s; what it captured may be only part of what " ..
      "it meant to do (approve needs --allow-failed)", failure))
  end
  cli.out(table.concat(lines, "\n"), "\n")
  -- one at a time, as they are read: a session of 100 000 operations is
  -- shown in the memory of one
  for _, op in session.operations(s) do
    if not only or only(op) then
      cli.out(op_line(op), "\n")
      if with_diff and op.kind == "write" then cli.out(op_diff(s, op)) end
    end
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("show: give one session id; usage: %s", M.usage) end
  if require("shannot.fleet.runs").is_run(args[1]) then
    return require("shannot.fleet.review").show(opts, args[1], render)
  end
  local s, e = session.current(args[1], { config = opts.config, actor = opts.actor, warn = opts.warn,
    header = not opts.json })
  if not s then return nil, e end
  if opts.script then
    if opts.json or opts.diff then return nil, err.usage("show: --script shows the script alone") end
    local data, serr = require("shannot.capture.script").read(session.dir(s.id), s)
    if not data then return nil, serr end
    cli.out(require("shannot.term").isatty(1) and text.inert_lines(data) or data)
    return const.EXIT.OK
  end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    local ok, cerr = session.check_operations(s)
    if not ok then return nil, cerr end
    render(s, opts.diff)
  end
  return const.EXIT.OK
end

return M
