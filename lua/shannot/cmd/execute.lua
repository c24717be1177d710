-- shannot execute ID [--json]
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local text = require("shannot.text")

local M = {
  usage = "shannot execute ID [--json]",
  help = [[
Applies an approved session to this machine, exactly the approved
operations and nothing else.  First it checks that every path is still as
the dry-run saw it (otherwise it refuses, listing what changed, exit 3);
then it saves the original of every path it will touch (content, mode,
owner, symlink, absence) into the session's checkpoint and makes that
durable; then it applies each operation without following symlinks
(new contents are written beside the path and renamed over it, mode and
owner set first); then it runs the approved deferred commands in the
order the script called them.  "shannot rollback ID" undoes it.

Exit codes: 0 all applied; 1 something failed (see the results; roll back
with "shannot rollback ID"); 3 refused (not approved, expired, drift).

options:
  --json   print the session (with results) as one JSON document]],
  options = { ["--json"] = {} },
}

local function report(s)
  local ops = {}
  for _, op in ipairs(s.operations) do ops[op.id] = op end
  for _, r in ipairs(s.results) do
    local op = ops[r.id]
    local what = op.kind == "exec" and text.command_line(op.argv or {}) or op.path
    local status = r.ok and "ok" or ("FAILED: " .. tostring(r.error or ("exit " .. tostring(r.code))))
    cli.out(string.format("%4d  %-11s %s  %s\n", r.id, op.kind, text.inert(what or "?"), text.inert(status)))
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("execute: give one session id; usage: %s", M.usage) end
  local s, e = apply.execute(args[1], { config = opts.config, actor = opts.actor, warn = opts.warn })
  if not s then return nil, e end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    report(s)
    cli.out(string.format("session %s %s; undo with: shannot rollback %s\n", s.id, s.status, s.id))
  end
  return s.status == "executed" and const.EXIT.OK or const.EXIT.FAILED
end

return M
