-- Session events for the audit log: session.transition calls it for every
-- status change, whoever made it (the CLI, the review UI, the MCP server);
-- the other events (created, execute or rollback refused) are sent by
-- their callers.  The change itself has already happened, so a log that
-- cannot be written is said, not fatal.
local M = {}

-- status (or "session_created") -> the audit event name
local EVENT = {
  session_created = "session_created", approved = "session_approved", rejected = "session_denied",
  executed = "session_executed", failed = "session_failed", rolled_back = "session_rolled_back",
  expired = "session_expired", execute_refused = "session_execute_refused",
  rollback_refused = "session_rollback_refused", revoked = "session_revoked",
}

-- session(cfg, what, s, extra, actor): what is "session_created",
-- "execute_refused", "rollback_refused" or the status the session moved to.
function M.session(cfg, what, s, extra, actor)
  -- A caller without a config (a Lua script, a listing) still leaves its
  -- line: the default config says where the log is.
  if not cfg then
    cfg = require("shannot.config").load()
    if not cfg then return true end  -- a broken config: the command itself reports it
  end
  local e = { event = assert(EVENT[what], what), session = s.id, status = s.status, actor = actor or "cli",
    operations = #s.operations, command = s.command, target = s.target }
  -- what an approval bound, for whoever reads the log later
  if what == "approved" and type(s.approval) == "table" then e.digest = s.approval.digest end
  for k, v in pairs(extra or {}) do e[k] = v end
  local ok, aerr = require("shannot.audit").record(cfg, e)
  if not ok then
    io.stderr:write("shannot: warning: the audit log was not written: ",
      require("shannot.text").inert(tostring(aerr)), "\n")
  end
  return ok
end

return M
