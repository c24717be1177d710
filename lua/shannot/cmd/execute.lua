-- shannot execute ID [--json]
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local text = require("shannot.text")

local M = {
  usage = "shannot execute ID [--stop-on-deferred-failure] [--json]",
  help = [[
Applies an approved session to this machine, exactly the approved
operations and nothing else.  First it checks that every path is still as
the dry-run saw it (otherwise it refuses, listing what changed, exit 3);
then it saves the original of every path it will touch (content, mode,
owner, symlink, absence) into the session's checkpoint and makes that
durable; then it applies each operation without following symlinks
(new contents are written beside the path and renamed over it, mode and
owner set first); then it runs the approved deferred commands in the
order the script called them, each one whatever the others did (a
script's "cmd || true" stays so), each reported with its exit status and
output.  "shannot rollback ID" undoes the file changes.

The session ends "executed" when every file operation went through, even
if deferred commands failed (they are listed), and "failed" when a file
operation failed (then no deferred command runs).

Exit codes: 0 all applied and every deferred command succeeded; 1
something failed (see the results; roll back with "shannot rollback ID");
3 refused (not approved, expired, drift).

options:
  --stop-on-deferred-failure   run no deferred command after one that failed
  --json   print the session (with results) as one JSON document]],
  options = { ["--json"] = {}, ["--stop-on-deferred-failure"] = { key = "stop_on_deferred_failure" } },
}

local function report(s)
  local ops = {}
  for _, op in ipairs(s.operations) do ops[op.id] = op end
  for _, r in ipairs(s.results) do
    local op = ops[r.id]
    local what = op.argv and text.command_line(op.argv) or op.path
    local status = r.ok and "ok" or ("FAILED: " .. tostring(r.error or ("exit " .. tostring(r.code))))
    cli.out(string.format("%4d  %-11s %s  %s\n", r.id, op.kind, text.inert(what or "?"), text.inert(status)))
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("execute: give one session id; usage: %s", M.usage) end
  local shown = {}
  local s, e = apply.execute(args[1], { config = opts.config, actor = opts.actor, warn = opts.warn,
    stop_on_deferred_failure = opts.stop_on_deferred_failure,
    -- in text, each deferred command's output as it comes, under its name
    show_output = not opts.json and function(op)
      shown[#shown + 1] = op
      cli.warn("running deferred command %d: %s", op.id, text.inert(text.command_line(op.argv)))
    end or nil })
  if #shown > 0 then
    -- whatever state their output left the terminal in must not disguise the report
    local tails = {}
    for _, r in ipairs(s and s.results or {}) do
      tails[#tails + 1], tails[#tails + 2] = r.stdout or "", r.stderr or ""
    end
    require("shannot.term").reset_after_output(tails)
  end
  if not s then return nil, e end
  local deferred_failed = s.execution.deferred_failed or 0
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    report(s)
    local failures = deferred_failed > 0 and string.format(" (%d deferred command%s failed)", deferred_failed,
      deferred_failed == 1 and "" or "s") or ""
    cli.out(string.format("session %s %s%s; undo with: shannot rollback %s\n", s.id, s.status, failures, s.id))
  end
  return (s.status == "executed" and deferred_failed == 0) and const.EXIT.OK or const.EXIT.FAILED
end

return M
