-- shannot deny ID [--reason R]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")

local M = {
  usage = "shannot deny ID [--reason R] [--json]",
  help = [[
Rejects a pending session: nothing of it will ever be applied.  The reason
is kept in the session's history and the audit log.

options:
  --reason R   why (shown by "shannot show")
  --json       print the session as one JSON document]],
  options = { ["--reason"] = { arg = "R" }, ["--json"] = {} },
}

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("deny: give one session id; usage: %s", M.usage) end
  local lock <close>, s = session.acquire(args[1], "denied",
    { config = opts.config, actor = opts.actor, warn = opts.warn })
  if not lock then return nil, s end
  if s.status ~= "pending" then
    return nil, err.refused("session %s is %s; only a pending session can be denied", s.id, s.status)
  end
  local ok, terr = session.transition(s, "rejected", { note = opts.reason or "denied", config = opts.config,
    actor = opts.actor, warn = opts.warn, extra = { reason = opts.reason } })
  if not ok then return nil, terr end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    cli.out(string.format("rejected %s\n", s.id))
  end
  return const.EXIT.OK
end

return M
