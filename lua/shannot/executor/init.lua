-- Executors (DESIGN §6): one interface, so session, execute, rollback and
-- MCP code is the same for this machine and for a remote host.
local M = {}

-- for_target(target, cfg) -> executor | nil, err.  The caller closes it.
function M.for_target(target, cfg)
  if target == nil or target == "local" then return require("shannot.executor.local").new() end
  local remote = require("shannot.remote")
  local t, terr = remote.resolve(target, cfg)
  if not t then return nil, terr end
  local s, cerr = remote.connect(t)
  if not s then return nil, cerr end
  local fs = require("shannot.fs")
  local paths = require("shannot.paths")
  assert(fs.mkdir_p(paths.data_dir() .. "/staging", 448))
  local scratch = assert(fs.mkdtemp(paths.data_dir() .. "/staging/ssh-"))
  local ex, msg = require("shannot.executor.ssh").new(s, target, scratch)
  if not ex then
    s:close()
    fs.rmtree(scratch)
    return nil, require("shannot.err").env("%s: sftp: %s", target, msg)
  end
  return ex
end

return M
