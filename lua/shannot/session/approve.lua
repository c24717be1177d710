-- Approving a whole session: every operation not denied (by the policy
-- of now, evaluated again: a deny rule added since the capture denies),
-- under the session's lock, as it is now.  What `approve ID`, `approve RUN
-- --variant`, the review's variant list and shannot.fleet share.
local err = require("shannot.err")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {}

local function approve_op(op, who)
  if op.decision == "deny" then return false end
  if op.decision ~= "approve" then op.reason = "approved by " .. who end
  op.decision = "approve"
  return true
end

-- approve_all(s, who) -> number approved: every operation not denied
function M.approve_all(s, who)
  local n = 0
  assert(session.update(s, function(op)
    if approve_op(op, who) then n = n + 1 end
  end))
  return n
end

local function say_denied(op, warn)
  local what = op.argv and text.command_line(op.argv) or op.path
  if warn then warn("%s %s is denied now: %s", op.kind, text.inert(what or "?"), op.reason) end
end

local function policy_error(s, perr)
  return err.usage("session %s was not approved: the policy cannot be evaluated: %s", s.id,
    err.is(perr) and perr.message or tostring(perr))
end

-- recheck(s, cfg [, warn]) -> the operations denied now | nil, err; each
-- said through warn(fmt, ...) when given
function M.recheck(s, cfg, warn)
  local denied, perr = require("shannot.policy").recheck(s, cfg)
  if not denied then return nil, policy_error(s, perr) end
  for _, op in ipairs(denied) do say_denied(op, warn) end
  return denied
end

-- recheck_and_approve(s, cfg, how) -> number approved | nil, err: the
-- policy of now and the approval of every operation not denied, in one
-- pass over the operations (one rewrite of a session that does not hold
-- them).  how: who, warn.
local function recheck_and_approve(s, cfg, how)
  local policy = require("shannot.policy")
  local ctx, n = policy.context(cfg, s), 0
  local ok, e = session.update(s, function(op)
    local now, perr = policy.recheck_op(op, cfg, ctx)
    if now == nil then err.throw(policy_error(s, perr)) end
    if now then say_denied(op, how.warn) end
    if approve_op(op, how.who) then n = n + 1 end
  end, how.batch)
  if not ok then return nil, e end
  return n
end

-- session(id, opts) -> session, number approved | nil, err.  opts: config,
-- actor, warn (the audit log's troubles and the operations denied now),
-- who (default: this user).
function M.session(id, opts)
  local lock <close>, s = session.acquire(id, "approved", { config = opts.config, actor = opts.actor,
    warn = opts.warn, header = opts.header })
  if not lock then return nil, s end
  if s.status ~= "pending" then
    return nil, err.refused("session %s is %s; only a pending session can be approved", s.id, s.status)
  end
  local who = opts.who
  if not who then
    local ids = require("shannot.core.sys").ids()
    who = ids.user or ("uid " .. ids.uid)
  end
  -- the operations, the approval and the audit line: synced together
  -- (durable.lua), the directory at the end whatever happens
  local batch = require("shannot.durable").batch()
  local _ <close> = require("shannot.guard")(function() batch:commit() end)
  local n, aerr = recheck_and_approve(s, opts.config, { who = who, warn = opts.warn, batch = batch })
  if not n then return nil, aerr end
  local ok, terr = session.transition(s, "approved", { note = string.format("%d operations approved", n),
    config = opts.config, actor = opts.actor, warn = opts.warn, batch = batch })
  if not ok then return nil, terr end
  return s, n
end

return M
