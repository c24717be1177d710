-- shannot rollback ID [--force] [--dry-run] [--json]
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local text = require("shannot.text")

local M = {
  usage = "shannot rollback ID [--force] [--dry-run] [--json]",
  help = [[
Puts every path an execution touched back as its checkpoint recorded it:
content, mode, owner, symlink target, or absence.  A path changed since the
execution (by someone else) is a conflict: they are listed and nothing is
restored, unless --force.  Deferred commands that ran cannot be undone.

options:
  --force     restore even over paths changed since the execution
  --dry-run   only list what would be restored, and the conflicts
  --json      one JSON document: the session and what was restored]],
  options = { ["--force"] = {}, ["--dry-run"] = { key = "dry_run" }, ["--json"] = {} },
}

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("rollback: give one session id; usage: %s", M.usage) end
  local s, rep = apply.rollback(args[1], { force = opts.force, dry_run = opts.dry_run, config = opts.config,
    actor = opts.actor, warn = opts.warn })
  if not s then return nil, rep end
  if opts.json then
    cli.out(json.encode({ session = s, restored = json.array(rep.restored),
      conflicts = json.array(rep.conflicts) }, { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  for _, path in ipairs(rep.restored) do
    cli.out((opts.dry_run and "would restore " or "restored ") .. text.inert(path) .. "\n")
  end
  for _, c in ipairs(rep.conflicts) do
    cli.out("conflict " .. text.inert(c.path) .. (opts.force and " (restored anyway)" or "") .. "\n")
  end
  if not opts.dry_run then cli.out(string.format("session %s rolled back\n", s.id)) end
  return const.EXIT.OK
end

return M
