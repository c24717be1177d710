-- A throw-away OpenSSH server for specs: /usr/sbin/sshd -D -e on
-- 127.0.0.1 on a free port, with fresh host keys and a fresh client key
-- pair whose public key is the only authorized key.  Works as root (CI)
-- and as an ordinary user.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local sys = require("shannot.core.sys")
local h = require("support.h")

local M = {}

M.SSHD = "/usr/sbin/sshd"
M.HOST = "127.0.0.1"

local function run(argv)
  local r = assert(proc.run(argv))
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. r.stderr)
  return r.stdout
end

-- available() -> true when sshd and ssh-keygen are installed
function M.available()
  return fs.stat(M.SSHD) ~= nil and fs.which("ssh-keygen", os.getenv("PATH")) ~= nil
end

-- keygen(path) -> path: a new ed25519 key pair, path and path .. ".pub"
function M.keygen(path)
  run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "shannot-spec", "-f", path })
  return path
end

-- fingerprint(pub) -> "SHA256:..." as ssh-keygen -l prints it
function M.fingerprint(pub)
  return assert(run({ "ssh-keygen", "-lf", pub }):match("(SHA256:%S+)"))
end

-- known_hosts_line(port, pub) -> the known_hosts line naming 127.0.0.1:port
function M.known_hosts_line(port, pub)
  local key = assert(assert(fs.read_file(pub)):match("^(%S+ %S+)"))
  return string.format("[%s]:%d %s\n", M.HOST, port, key)
end

local function config(dir, port, env)
  local vars = { "SHLVL=1" }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. v end
  table.sort(vars)
  return table.concat({
    "ListenAddress " .. M.HOST,
    "Port " .. port,
    "HostKey " .. dir .. "/host_key",
    "AuthorizedKeysFile " .. dir .. "/authorized_keys",
    "StrictModes no",                       -- the temp dir is not 0700 all the way up
    "PermitRootLogin prohibit-password",    -- CI runs the specs as root
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PidFile " .. dir .. "/sshd.pid",
    "Subsystem sftp internal-sftp",
    -- sshd runs every command through the user's shell; Debian's bash then
    -- sources ~/.bashrc (at shell level 1 only), which on a developer's
    -- machine can cost 100 ms per command and would swamp the timings.
    "SetEnv " .. table.concat(vars, " "),
    "LogLevel INFO",                        -- "Server listening on ..." says it is up
    "",
  }, "\n")
end

-- Waits for sshd's log to say it listens; true, or false and why.
local function wait_listening(log, port)
  local ready = string.format("Server listening on %s port %d.", M.HOST, port)
  for _ = 1, 200 do
    local text = fs.read_file(log) or ""
    if text:find(ready, 1, true) then return true end
    if text:find("fatal:", 1, true) or text:find("Cannot bind", 1, true) then
      return false, text
    end
    proc.run({ "sleep", "0.05" })
  end
  return false, "sshd did not start within 10 s: " .. (fs.read_file(log) or "")
end

-- The command starting sshd: as it is, or (mounts: {{from, onto}...}) in
-- a mount namespace of its own with those binds, so that every session
-- of it sees its own tree there (a fleet's hosts, spec/support/fleet.lua).
local function sshd_argv(dir, log, mounts)
  local binds = {}
  for _, m in ipairs(mounts or {}) do
    binds[#binds + 1] = string.format("mount --bind '%s' '%s' && ", m[1], m[2])
  end
  local argv = { "sh", "-c", table.concat(binds) .. 'exec "$0" -D -e -f "$1" 2>>"$2"', M.SSHD,
    dir .. "/sshd_config", log }
  if mounts then
    argv = table.move(argv, 1, #argv, 5, { "unshare", "-m", "--propagation", "private" })
  end
  return argv
end

-- One attempt on one port: the Process, or nil and sshd's log.
local function spawn(dir, port, opts)
  h.write(dir .. "/sshd_config", config(dir, port, opts.env))
  local log = dir .. "/sshd.log"
  -- each attempt reads its own log: a stale "Cannot bind" of the attempt
  -- before would fail every retry
  h.write(log, "")
  local p = assert(proc.spawn(sshd_argv(dir, log, opts.mounts),
    { stdin = "null", stdout = "null", stderr = "null", die_with_parent = true }))
  local ok, why = wait_listening(log, port)
  if ok then return p end
  p:close()
  return nil, why
end

-- The account of start({unprivileged = true}) when the specs run as root:
-- an ordinary user made for the run (a real entry in /etc/passwd, as
-- sshd and the remote's tools look it up), removed by stop().
M.ACCOUNT = "shannot-spec"

local function account(dir)
  local home = dir .. "/home"
  -- sshd reads authorized_keys as that user, who must reach it
  assert(fs.chmod(dir, 457))  -- 0711
  assert(fs.chmod(h.ROOT .. "/build/spec-tmp", 457))
  assert(fs.chmod(dir .. "/authorized_keys", 420))  -- 0644: a public key
  if proc.run({ "id", "-u", M.ACCOUNT }).code ~= 0 then
    -- "*": no password, yet not locked (sshd without PAM refuses a locked one)
    run({ "useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh", "--password", "*",
      "--user-group", M.ACCOUNT })
  else
    run({ "usermod", "--home", home, M.ACCOUNT })
  end
  local uid = assert(math.tointeger(tonumber(run({ "id", "-u", M.ACCOUNT }))))
  local gid = assert(math.tointeger(tonumber(run({ "id", "-g", M.ACCOUNT }))))
  assert(fs.mkdir(home, 493))
  assert(fs.lchown(home, uid, gid))
  return { user = M.ACCOUNT, home = home, uid = uid, gid = gid }
end

-- start([opts]) -> {host, port, user, key, known_hosts, host_key_pub, dir, log, stop}
-- key: the client's private key; known_hosts: a file with the host key's
-- line; host_key_pub: the host's public key file; stop(): kills sshd and
-- removes dir.  opts.env: variables every session gets (a PATH with a
-- hostile tar first, say); opts.unprivileged: the key logs in as an
-- ordinary user (M.ACCOUNT as root; otherwise the specs' own user, the
-- only one a non-root sshd serves), with home and uid in the result;
-- opts.client_key: the key pair to authorize (one made otherwise);
-- opts.mounts: binds in a mount namespace of sshd's own (sshd_argv).
function M.start(opts)
  opts = opts or {}
  if not fs.stat("/run/sshd") then fs.mkdir_p("/run/sshd", 493) end  -- privsep dir, 0755
  local dir = h.tmpdir()
  M.keygen(dir .. "/host_key")
  local client_key = opts.client_key or M.keygen(dir .. "/client_key")
  h.write(dir .. "/authorized_keys", assert(fs.read_file(client_key .. ".pub")))
  local as_root = sys.ids().euid == 0
  local who
  if opts.unprivileged then
    if as_root then
      who = account(dir)
    else
      local ids = sys.ids()
      who = { user = ids.user, home = assert(os.getenv("HOME")), uid = ids.euid, gid = ids.egid }
    end
  end
  local p, why
  for _ = 1, 10 do
    local port = math.random(20000, 59999)
    p, why = spawn(dir, port, opts)
    if p then
      local srv = {
        host = M.HOST, port = port, user = who and who.user or assert(sys.ids().user), dir = dir,
        home = who and who.home, uid = who and who.uid, gid = who and who.gid,
        key = client_key, host_key_pub = dir .. "/host_key.pub",
        known_hosts = h.write(dir .. "/known_hosts", M.known_hosts_line(port, dir .. "/host_key.pub")),
        log = dir .. "/sshd.log",
      }
      -- restart(): the same sshd again, same port and keys
      function srv.restart()
        assert(fs.write_atomic(srv.log, ""))
        local again, rwhy = spawn(dir, port, opts)
        assert(again, rwhy)
        p = again
      end
      function srv.stop()
        if p then
          p:kill("TERM")
          p:close()
          p = nil
        end
        if who and as_root then proc.run({ "userdel", "--force", M.ACCOUNT }) end
        fs.rmtree(dir)
      end
      return srv
    end
    if not why:find("Address already in use", 1, true) then break end
  end
  fs.rmtree(dir)
  error("cannot start sshd: " .. why)
end

return M
