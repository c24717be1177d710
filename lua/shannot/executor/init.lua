-- Executors (DESIGN §6): one interface, so session, execute, rollback and
-- MCP code is the same for this machine and for a remote host.
local err = require("shannot.err")
local text = require("shannot.text")

local M = {}

-- for_target(target, cfg) -> executor | nil, err
function M.for_target(target, _cfg)
  if target == nil or target == "local" then return require("shannot.executor.local").new() end
  return nil, err.usage('target "%s": remote hosts are not supported yet', text.inert(target))
end

return M
