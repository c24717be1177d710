-- shannot rollback ID [--force] [--dry-run] [--json]
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local text = require("shannot.text")

local M = {
  usage = "shannot rollback ID [--force] [--dry-run] [--quiet] [--json]\n" ..
    "shannot rollback RUN [--force] [--forks N] [--json]",
  help = [[
Puts every path an execution touched back as its checkpoint recorded it:
content, mode, owner, symlink target, or absence.  A path changed since the
execution (by someone else) is a conflict: they are listed and nothing is
restored, unless --force.  Deferred commands that ran cannot be undone:
each is listed ("not undone ...").

A fleet run's id rolls back every host whose session executed (or failed
midway), --forks N at a time (default 8); each host's conflicts are its
own and reported, and nothing is forced without --force.

options:
  --force     restore even over paths changed since the execution
  --dry-run   only list what would be restored, and the conflicts
  --quiet     no progress line (on a terminal, a rollback lasting more
              than a second shows one on stderr)
  --json      one JSON document: the session, what was restored, the
              conflicts and the deferred commands not undone]],
  options = { ["--force"] = {}, ["--dry-run"] = { key = "dry_run" }, ["--json"] = {}, ["--quiet"] = {},
    ["--forks"] = { arg = "N", type = "number" } },
}

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("rollback: give one session id; usage: %s", M.usage) end
  if require("shannot.fleet.runs").is_run(args[1]) then
    if opts.dry_run then return nil, err.usage("rollback: --dry-run is for one session") end
    return require("shannot.fleet.apply").rollback(opts, args[1])
  end
  local progress <close> = cli.progress(opts)
  local s, rep = apply.rollback(args[1], { force = opts.force, dry_run = opts.dry_run, config = opts.config,
    actor = opts.actor, warn = opts.warn, progress = progress })
  progress:finish()
  if not s then return nil, rep end
  if opts.json then
    local not_undone = {}
    for i, op in ipairs(rep.not_undone) do not_undone[i] = { id = op.id, argv = json.array(op.argv) } end
    cli.out(json.encode({ session = s, restored = json.array(rep.restored),
      unchanged = json.array(rep.unchanged or {}), conflicts = json.array(rep.conflicts),
      not_undone = json.array(not_undone) }, { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  for _, path in ipairs(rep.restored) do
    cli.out((opts.dry_run and "would restore " or "restored ") .. text.inert(path) .. "\n")
  end
  for _, path in ipairs(rep.unchanged or {}) do
    cli.out("unchanged " .. text.inert(path) .. " (already as checkpointed: left alone)\n")
  end
  for _, c in ipairs(rep.conflicts) do
    cli.out("conflict " .. text.inert(c.path) .. (c.why and (": " .. text.inert(c.why)) or "") ..
      (opts.force and " (restored anyway)" or "") .. "\n")
  end
  for _, op in ipairs(rep.not_undone) do
    cli.out((opts.dry_run and "would not undo " or "not undone ") .. text.inert(text.command_line(op.argv)) ..
      " (a deferred command that ran: what it did outside the files stays)\n")
  end
  if not opts.dry_run then cli.out(string.format("session %s rolled back\n", s.id)) end
  return const.EXIT.OK
end

return M
