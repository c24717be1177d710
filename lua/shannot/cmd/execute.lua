-- shannot execute ID [--json]
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot execute ID [--stop-on-deferred-failure] [--quiet] [--json]\n" ..
    "shannot execute RUN [--serial N] [--max-fail N|P%] [--stop-on-deferred-failure] [--json]",
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

A fleet run's id (shannot run --target @GROUP) executes its approved
sessions host by host: --serial N hosts at a time (default 1), each
exactly as above (drift check, checkpoint, apply); once more hosts failed
than --max-fail allows (default 0: the first failure stops it), no
further host is started and those are left untouched.  A results table
(or --json) says what happened on every host; "shannot rollback RUN"
undoes every host that executed.

options:
  --stop-on-deferred-failure   run no deferred command after one that failed
  --quiet           no progress line (on a terminal, work lasting more
                    than a second shows one on stderr: operations,
                    bytes, rate, time left)
  --serial N        with a RUN: hosts executed at a time (default 1)
  --max-fail N|P%   with a RUN: failed hosts tolerated before it stops
                    (a number, or a share of the hosts; default 0)
  --json   print the session (with results) as one JSON document; with a
           RUN: {run, stopped, hosts: [{name, session, result, status,
           error}]}]],
  options = { ["--json"] = {}, ["--quiet"] = {}, ["--stop-on-deferred-failure"] = { key = "stop_on_deferred_failure" },
    ["--serial"] = { arg = "N", type = "number" }, ["--max-fail"] = { arg = "N|P%", key = "max_fail" } },
}

-- One line per result, the operations read alongside (the results come
-- in their order): nothing of a session of 100 000 operations is held.
-- copy: the private copy execute applied (checked whole already: read
-- again, its records are only decoded).
local function report(s, copy)
  local op_of = session.finder(s, copy, copy ~= nil)
  for _, r in session.each(s, "results") do
    local op = op_of(r.id) or { kind = "?" }
    local what = op.argv and text.command_line(op.argv) or op.path
    local status = r.ok and "ok" or ("FAILED: " .. tostring(r.error or ("exit " .. tostring(r.code))))
    cli.out(string.format("%4d  %-11s %s  %s\n", r.id, op.kind, text.inert(what or "?"), text.inert(status)))
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("execute: give one session id; usage: %s", M.usage) end
  if require("shannot.fleet.runs").is_run(args[1]) then return require("shannot.fleet.apply").execute(opts, args[1]) end
  if opts.serial or opts.max_fail then
    return nil, err.usage("execute: --serial and --max-fail are for a fleet run's id")
  end
  local shown = {}
  local progress <close> = cli.progress(opts)
  local s, e = apply.execute(args[1], { config = opts.config, actor = opts.actor, warn = opts.warn,
    stop_on_deferred_failure = opts.stop_on_deferred_failure, progress = progress, keep_copy = not opts.json,
    -- in text, each deferred command's output as it comes, under its name
    show_output = not opts.json and function(op)
      shown[#shown + 1] = op
      cli.warn("running deferred command %d: %s", op.id, text.inert(text.command_line(op.argv)))
    end or nil })
  progress:finish()
  if #shown > 0 then
    -- whatever state their output left the terminal in must not disguise the report
    local tails = {}
    for _, r in (s and session.each(s, "results") or function() end) do
      tails[#tails + 1], tails[#tails + 2] = r.stdout or "", r.stderr or ""
    end
    require("shannot.term").reset_after_output(tails)
  end
  if not s then return nil, e end
  local copy <close> = e  -- the operations execute applied (keep_copy)
  local deferred_failed = s.execution.deferred_failed or 0
  if opts.json then
    local ok, merr = session.materialize(s)
    if not ok then return nil, merr end
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    report(s, copy)
    local failures = deferred_failed > 0 and string.format(" (%d deferred command%s failed)", deferred_failed,
      deferred_failed == 1 and "" or "s") or ""
    cli.out(string.format("session %s %s%s; undo with: shannot rollback %s\n", s.id, s.status, failures, s.id))
  end
  return (s.status == "executed" and deferred_failed == 0) and const.EXIT.OK or const.EXIT.FAILED
end

return M
