-- Session events for the audit log: session.transition calls it for every
-- status change, whoever made it (the CLI, the review UI, the MCP server);
-- the other events (created, execute or rollback refused) are sent by
-- their callers.  The change itself has already happened, so a log that
-- cannot be written is said, not fatal.
local err = require("shannot.err")

local M = {}

-- status (or "session_created") -> the audit event name
local EVENT = {
  session_created = "session_created", approved = "session_approved", rejected = "session_denied",
  executed = "session_executed", failed = "session_failed", rolled_back = "session_rolled_back",
  expired = "session_expired", execute_refused = "session_execute_refused",
  rollback_refused = "session_rollback_refused", revoked = "session_revoked",
}

-- session(e) -> true | nil, err: the audit event of a session change.
-- e: what ("session_created", "execute_refused", "rollback_refused" or
-- the status the session moved to), session, actor (default "lua": every
-- front end names itself), config, extra (more fields), and warn (the
-- front end's warn(fmt, ...), told when the log could not be written), batch
-- (durable.lua's: what the change wrote, synced with the line; the
-- caller commits it after, for when no line was written).
function M.session(ev)
  local cfg, s, what = ev.config, ev.session, ev.what
  -- A caller without a config (a Lua script, a listing) still leaves its
  -- line: the default config says where the log is.
  if not cfg then
    cfg = require("shannot.config").load()
    if not cfg then return true end  -- a broken config: the command itself reports it
  end
  local e = { event = assert(EVENT[what], what), session = s.id, status = s.status, actor = ev.actor or "lua",
    operations = type(s.operations) == "table" and #s.operations or s.operation_count or 0,
    command = s.command, target = s.target }
  -- what an approval bound, for whoever reads the log later
  if what == "approved" and type(s.approval) == "table" then e.digest = s.approval.digest end
  -- an MCP front end names its client (initialize's clientInfo); a
  -- session's creation carries the client the session recorded
  local client = ev.actor == "mcp" and (ev.client or (what == "session_created" and s.client))
  if client then e.client = client.name .. " " .. client.version end
  for k, v in pairs(ev.extra or {}) do e[k] = v end
  local ok, aerr = require("shannot.session.audit").record(cfg, e, nil, ev.batch)
  if not ok then
    if ev.warn then ev.warn("warning: the audit log was not written: %s", tostring(aerr)) end
    return nil, err.is(aerr) and aerr or err.env("the audit log was not written: %s", tostring(aerr))
  end
  return true
end

return M
