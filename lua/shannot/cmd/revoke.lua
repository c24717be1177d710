-- shannot revoke ID [--reason R] [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")

local M = {
  usage = "shannot revoke ID [--reason R] [--json]",
  help = [[
Takes an approval back: an approved session that no execute has started
is pending again, its operations decided by the policy as at capture
(what a person approved is for a person to approve again; what anyone
denied stays denied), and its seal
is dropped, so "shannot execute" refuses it until it is approved anew.
Kept in the session's history and the audit log.

options:
  --reason R   why (shown by "shannot show")
  --json       print the session as one JSON document]],
  options = { ["--reason"] = { arg = "R" }, ["--json"] = {} },
}

-- Back to what the policy decides; a person's approvals go first, so a
-- policy that cannot be evaluated now leaves them for review, not
-- approved.  A denial stays a denial, whoever made it.
local function undecide(s, cfg)
  local denied = {}
  for _, op in ipairs(s.operations) do
    if op.decision == "approve" then op.decision, op.reason = "review", "its approval was revoked" end
    if op.decision == "deny" then denied[op] = op.reason end
  end
  local ok, perr = require("shannot.policy").evaluate(s, cfg)
  for op, reason in pairs(denied) do op.decision, op.reason = "deny", reason end
  if not ok then
    for _, op in ipairs(s.operations) do
      if op.decision == "approve" then op.decision, op.reason = "review", "its approval was revoked" end
    end
    cli.warn("the policy cannot be evaluated (%s): every operation is left for review",
      err.is(perr) and perr.message or tostring(perr))
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("revoke: give one session id; usage: %s", M.usage) end
  local lock <close>, s = session.acquire(args[1], "revoked",
    { config = opts.config, actor = opts.actor, warn = opts.warn })
  if not lock then return nil, s end
  if s.status ~= "approved" then
    return nil, err.refused("session %s is %s; only an approved session can be revoked", s.id, s.status)
  end
  if s.execution then
    return nil, err.refused("an execution of session %s was started; roll it back instead (shannot rollback %s)",
      s.id, s.id)
  end
  undecide(s, opts.config)
  local ok, terr = session.transition(s, "pending", { config = opts.config, actor = opts.actor, warn = opts.warn,
    extra = { reason = opts.reason },
    note = "approval revoked" .. (opts.reason and (": " .. opts.reason) or "") })
  if not ok then return nil, terr end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    cli.out(string.format("revoked the approval of %s; it is pending again\n", s.id))
  end
  return const.EXIT.OK
end

return M
