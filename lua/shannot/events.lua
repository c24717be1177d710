-- Session events for the audit log: one call per status change, whoever
-- made it (the CLI, the review UI, the MCP server).  The change itself has
-- already happened, so a log that cannot be written is said, not fatal.
local M = {}

-- session(cfg, event, s, extra, actor): event is "session_created",
-- "approved", "rejected", "executed", "failed", "rolled_back" or "expired".
function M.session(cfg, event, s, extra, actor)
  if not cfg then return true end
  local e = { event = event, session = s.id, status = s.status, actor = actor or "cli",
    operations = #s.operations, command = s.command }
  for k, v in pairs(extra or {}) do e[k] = v end
  -- TEMPORARY until audit.lua lands (issue 5, in progress): no log yet.
  local have, audit = pcall(require, "shannot.audit")
  if not have then return true end
  local ok, aerr = audit.record(cfg, e)
  if not ok then
    io.stderr:write("shannot: warning: the audit log was not written: ", tostring(aerr), "\n")
  end
  return ok
end

return M
