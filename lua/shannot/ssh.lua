-- SSH sessions (DESIGN §6): shannot.core.ssh re-exported.  connect(opts)
-- -> Session | nil, msg, code [, info]; Session:exec, Session:sftp and the
-- Sftp methods are documented in src/ssh.c.  Policy (which host, key and
-- known_hosts file, accepting new host keys, wording) lives in callers.
local core = require("shannot.core.ssh")

local M = {}
for name, f in pairs(core) do M[name] = f end

return M
