-- A fleet of real hosts for specs (issue 16.6): N sshd on 127.0.0.1 on
-- free ports, one client key for all, each sshd in a mount namespace of
-- its own with its own /srv and its own /etc/opt bound in, so what a
-- session of one host sees and changes there is that host's alone.
local fs = require("shannot.fs")
local h = require("support.h")
local sshd = require("support.sshd")

local M = {}

-- The directories each host has of its own, and where they come from
-- in its root (ROOT/srv, ROOT/etc).
M.BINDS = { { "srv", "/srv" }, { "etc", "/etc/opt" } }

-- start(n [, opts]) -> fleet {hosts, key, known_hosts_text, config(), stop()}
-- hosts[i]: the sshd (sshd.start's) with name ("web" .. i) and root (the
-- host's own tree: root/srv, root/etc); opts.seed(i, root) fills a root
-- before its sshd starts.
function M.start(n, opts)
  opts = opts or {}
  local dir = h.tmpdir()
  for _, b in ipairs(M.BINDS) do
    if not fs.stat(b[2]) then assert(fs.mkdir_p(b[2], 493)) end
  end
  local f = { hosts = {}, key = sshd.keygen(dir .. "/client_key"), dir = dir }
  local known = {}
  for i = 1, n do
    local root = dir .. "/host" .. i
    local mounts = {}
    for _, b in ipairs(M.BINDS) do
      assert(fs.mkdir_p(root .. "/" .. b[1], 493))
      mounts[#mounts + 1] = { root .. "/" .. b[1], b[2] }
    end
    if opts.seed then opts.seed(i, root) end
    local srv = sshd.start({ client_key = f.key, mounts = mounts })
    srv.root, srv.name = root, "web" .. i
    known[#known + 1] = sshd.known_hosts_line(srv.port, srv.host_key_pub)
    f.hosts[i] = srv
  end
  f.known_hosts_text = table.concat(known)
  -- config(): [remotes.webN] of every host, for a config.toml
  function f.config()
    local out = {}
    for _, srv in ipairs(f.hosts) do
      out[#out + 1] = string.format('[remotes.%s]\nhost = "%s"\nport = %d\nuser = "%s"\nkey_file = "%s"\n', srv.name,
        srv.host, srv.port, srv.user, f.key)
    end
    return table.concat(out, "\n")
  end
  function f.stop()
    for _, srv in ipairs(f.hosts) do srv.stop() end
  end
  return f
end

return M
