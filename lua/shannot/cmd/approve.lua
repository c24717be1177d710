-- shannot approve [ID] [--yes] [--execute] [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local term = require("shannot.term")
local text = require("shannot.text")

local M = {
  usage = "shannot approve [ID] [--yes] [--execute] [--allow-failed] [--json]\n" ..
    "shannot approve RUN --variant V|--all [--yes] [--allow-failed] [--json]",
  help = [[
Approves a pending session: every operation that is not denied (by the
built-in rules, the config or your policy files) becomes approved, and the
session moves to approved.  Denied operations stay denied and are never
applied.  The policy is evaluated again first: a deny rule added since
the capture denies its operations now (each is named on stderr).  The
approval lapses when the session's TTL passes before an execute;
"shannot revoke ID" takes it back.

On a terminal, without --yes or --json, it opens the review: without an
ID, the list of pending sessions; with one, that session's operations
(danger in colour: red danger, yellow caution, green safe) and the diff of
each write.  Keys (? shows them):
  j k, arrows   move           Enter   open (session, operation, diff)
  Space         approve/deny the operation under the cursor
  a / n         approve every operation not denied by policy / deny all
  x             execute (asks y/N), then the results
  r             reject the session (asks y/N)
  q, Escape     back, quit
Without a terminal for the review (stdout is not one) it lists the
operations and asks y/N on stderr; without any terminal, add --yes.
"shannot show ID --diff" shows what each write changes.

A session whose run failed (exited non-zero, was killed or timed out) is
marked FAILED RUN everywhere: what it captured may be only part of what it
meant to do.  approve refuses it (exit 3) unless --allow-failed; in the
review, execute's y/N question says so first.

A fleet run's id (shannot run --target @GROUP) approves per variant (see
"shannot show RUN"): --variant A approves the sessions of every host of
variant A, --all those of every variant; each host's policy is applied as
for one session.  Hosts of other variants stay pending.

options:
  --variant V     with a RUN: the variant to approve (A, B, ...)
  --all           with a RUN: every variant
  --yes           approve without asking
  --execute       execute right after approving (see "shannot help execute")
  --allow-failed  approve even though the run failed
  --json          print the session as one JSON document]],
  options = { ["--yes"] = {}, ["--execute"] = {}, ["--json"] = {}, ["--allow-failed"] = { key = "allow_failed" },
    ["--variant"] = { arg = "V" }, ["--all"] = {} },
}

local function counts(s)
  local c = { approve = 0, review = 0, deny = 0 }
  for _, op in session.operations(s) do
    local d = op.decision or "review"
    c[d] = (c[d] or 0) + 1
  end
  return c
end

local function confirm(s)
  local c = counts(s)
  io.stderr:write(string.format("session %s: %d operations (%d to review, %d approved by policy, %d denied)\n",
    s.id, session.count(s), c.review, c.approve, c.deny))
  for _, op in session.operations(s) do
    local what = op.argv and text.command_line(op.argv) or op.path
    io.stderr:write(string.format("  %-7s %-8s %-11s %s\n", op.decision or "review", op.danger or "?",
      op.kind, text.inert(what or "?")))
  end
  io.stderr:write("approve every operation that is not denied? [y/N] ")
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

-- The review UI needs the keyboard and the screen: stdin and stdout.
local function can_review(opts)
  return not opts.yes and not opts.json and term.isatty(0) and term.isatty(1)
end

function M.run(opts, args)
  if #args == 1 and require("shannot.fleet.runs").is_run(args[1]) then
    return require("shannot.fleet.review").approve(opts, args[1])
  end
  if opts.variant or opts.all then
    return nil, err.usage("approve: --variant and --all are for a fleet run's id (shannot sessions lists runs)")
  end
  if #args == 0 and can_review(opts) then
    return require("shannot.ui.review").run({ config = opts.config, actor = opts.actor, warn = opts.warn })
  end
  if #args ~= 1 then
    return nil, err.usage("approve: give one session id (shannot sessions --status pending lists them), " ..
      "or run it on a terminal for the review; usage: %s", M.usage)
  end
  local s, e = session.current(args[1], { config = opts.config, actor = opts.actor, warn = opts.warn,
    header = true })
  if not s then return nil, e end
  if s.status ~= "pending" then
    return nil, err.refused("session %s is %s; only a pending session can be approved", s.id, s.status)
  end
  local failure = session.run_failure(s)
  if failure and not opts.allow_failed and not can_review(opts) then
    return nil, err.refused("session %s was not approved: its run %s, so what it captured may be only part of " ..
      "what it meant to do; review it (shannot show %s --diff) and approve with --allow-failed if it is what you " ..
      "want", s.id, failure, s.id)
  end
  if can_review(opts) then
    return require("shannot.ui.review").run({ config = opts.config, id = s.id })
  end
  if not opts.yes then
    if not (term.isatty(0) and term.isatty(2)) then
      return nil, err.usage("approve %s: not a terminal to ask on; add --yes to approve every operation not denied",
        s.id)
    end
    if not confirm(s) then
      cli.warn("nothing approved; the session stays pending")
      return const.EXIT.OK
    end
  end
  local n
  s, n = require("shannot.session.approve").session(s.id, { config = opts.config, actor = opts.actor,
    warn = opts.warn, header = not opts.json })
  if not s then return nil, n end
  if opts.execute then
    return require("shannot.cmd.execute").run({ json = opts.json, config = opts.config, actor = opts.actor,
      warn = opts.warn }, { s.id })
  end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    cli.out(string.format("approved %d of %d operations of %s; apply them with: shannot execute %s\n",
      n, session.count(s), s.id, s.id))
  end
  return const.EXIT.OK
end

return M
