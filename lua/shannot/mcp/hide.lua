-- What the MCP server's read-only runs hide (issue 17): secrets an agent
-- has no business reading even when shannot runs as root.  One list, made
-- here, for run_command (as `run --hide` globs) and for shannot://status
-- (the globs and what they match on this machine).
local paths = require("shannot.paths")

local M = {}

-- Hidden whatever the config says: password hashes and their backups,
-- SSH host private keys (not the .pub), root's home, users' SSH keys,
-- TLS private keys.  shannot's own data directory joins them (patterns).
M.DEFAULTS = {
  "/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-",
  "/var/backups/shadow.bak", "/var/backups/gshadow.bak", "/etc/security/opasswd",
  "/etc/ssh/ssh_host_*_key", "/root", "/home/*/.ssh", "/etc/ssl/private", "/etc/pki/tls/private",
  "/etc/letsencrypt/archive", "/etc/letsencrypt/live",
}

-- A path as a glob of itself: its wildcard characters as classes.
local function literal(path)
  return (path:gsub("[%*%?%[]", "[%0]"))
end

-- patterns(cfg) -> the globs, in order, each once: the defaults, the data
-- directory (sessions, audit log, staging), then [mcp] hide.
function M.patterns(cfg)
  local out, seen = {}, {}
  local function add(g)
    if not seen[g] then
      seen[g] = true
      out[#out + 1] = g
    end
  end
  for _, g in ipairs(M.DEFAULTS) do add(g) end
  local data = paths.data_dir()
  if require("shannot.sandbox.hide").check(literal(data)) then add(literal(data)) end
  for _, g in ipairs(cfg and cfg.values.mcp and cfg.values.mcp.hide or {}) do add(g) end
  return out
end

-- covers(patterns, path) -> the pattern hiding path (or a directory above
-- it) | nil: what a session's diff must not show an agent either
function M.covers(patterns, path)
  local glob = require("shannot.glob")
  for _, p in ipairs(patterns) do
    local at = path
    while at ~= "" do
      if glob.match(p, at) then return p end
      at = at:match("^(.*)/[^/]*$") or ""
    end
  end
  return nil
end

-- run_args(cfg) -> `--hide GLOB` for each pattern, for a `shannot run`
function M.run_args(cfg)
  local out = {}
  for _, g in ipairs(M.patterns(cfg)) do
    out[#out + 1] = "--hide"
    out[#out + 1] = g
  end
  return out
end

-- status(cfg) -> {patterns, matched = {{path, pattern, type, name}}, error}:
-- what a run_command on this machine hides now (a remote target expands
-- the same patterns there, when it runs).
function M.status(cfg)
  local json = require("shannot.json")
  local patterns = M.patterns(cfg)
  local found, why = require("shannot.sandbox.hide").expand(patterns)
  local matched = {}
  for i, h in ipairs(found or {}) do
    matched[i] = { path = h.path, pattern = h.pattern, type = h.dir and "directory" or "file", name = h.name }
  end
  return { patterns = json.array(patterns), matched = json.array(matched), error = why }
end

return M
