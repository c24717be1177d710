-- Remote hosts: which host a target names (a [remotes.NAME] or an ssh
-- [executor.NAME] of the config, or USER@HOST[:PORT]), connecting to it
-- with strict host key checking, and the words for every way that fails.
local err = require("shannot.err")
local paths = require("shannot.paths")
local text = require("shannot.text")

local M = {}

M.CONNECT_TIMEOUT = 15

-- parse_target("user@host:port") -> {user, host, port} | nil, err (what
-- is wrong with it: "bad host ...")
function M.parse_target(s)
  local user, rest = s:match("^([^@]+)@(.+)$")
  rest = rest or s
  if user and not user:match("^[%w._-]+$") then return nil, err.usage('bad user name "%s"', text.inert(user)) end
  local host, port = rest:match("^%[([%x:.]+)%]:?(%d*)$")  -- [IPv6]:PORT
  if not host then
    host, port = rest:match("^([%w.-]+):?(%d*)$")
  end
  if not host or host == "" or host:sub(1, 1) == "-" then
    return nil, err.usage('bad host "%s"', text.inert(rest))
  end
  local n
  if port ~= "" then
    n = math.tointeger(tonumber(port))
    if not n or n < 1 or n > 65535 then return nil, err.usage('bad port "%s"', port) end
  end
  return { user = user, host = host, port = n }
end

-- resolve(target, cfg) -> {name, host, user, port, key_file, known_hosts,
-- profile} | nil, err
function M.resolve(target, cfg)
  local values = cfg and cfg.values
  local r = values and values.remotes[target]
  if r then
    return { name = target, host = r.host, user = r.user, port = r.port, key_file = r.key_file,
      profile = r.profile }
  end
  local e = values and values.executor[target]
  if e and e.type == "ssh" then
    return { name = target, host = e.host, user = e.username, port = e.port, key_file = e.key_file,
      known_hosts = e.known_hosts, profile = e.profile, strict = e.strict_host_key }
  end
  local t, why = M.parse_target(target)
  if not t then
    return nil, err.usage('unknown target "%s" (%s; "shannot remote list" shows the remotes)',
      text.inert(target), why.message)
  end
  t.name = target
  return t
end

-- configured(name, cfg) -> whether the config names a remote so
-- (a [remotes] entry or an ssh executor)
function M.configured(name, cfg)
  local values = cfg and cfg.values
  if not values then return false end
  local e = values.executor[name]
  return values.remotes[name] ~= nil or (e ~= nil and e.type == "ssh")
end

-- display(t) -> USER@HOST:PORT as it is written: an IPv6 address in
-- brackets ([::1]:22), so that it reads back the same.
function M.display(t)
  local host = tostring(t.host)
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return (t.user and (t.user .. "@") or "") .. host .. (t.port and (":" .. t.port) or "")
end
local where = M.display

-- The error a failed connect gives, in words.  why: msg, code, info.
local function connect_error(name, known, why)
  local msg, code, info = why.msg, why.code, why.info or {}
  if code == "HOSTKEY_UNKNOWN" then
    return err.refused("%s: unknown host key %s %s (not in %s); if it is right, connect once with " ..
      "--accept-new", name, info.key_type or "?", info.fingerprint or "?", known)
  elseif code == "HOSTKEY_CHANGED" then
    return err.refused("%s: the host key CHANGED: now %s, %s had %s; refused (remove the old key " ..
      "from %s only if you know why it changed)", name, info.fingerprint or "?", known,
      info.old_fingerprint or "another key", known)
  elseif code == "AUTH" then
    return err.refused("%s: authentication failed: %s", name, msg)
  elseif code == "ELIBACC" then
    return err.env("%s (install libssh-4)", msg)
  end
  return err.env("%s: cannot connect: %s", name, msg)
end

-- connect(target_table, opts) -> Session | nil, err.  opts: accept_new,
-- key_only (the host key checked, no login: the session is only closed).
-- The error's `connect` field says which way it failed (HOSTKEY_UNKNOWN,
-- HOSTKEY_CHANGED, AUTH, ...): a fleet's per-host state.
function M.connect(t, opts)
  opts = opts or {}
  local ssh = require("shannot.ssh")
  local known = t.known_hosts or (paths.home() .. "/.ssh/known_hosts")
  local s, msg, code, info = ssh.connect({
    host = t.host, port = t.port, user = t.user, identity = t.key_file, known_hosts = known,
    ssh_dir = paths.home() .. "/.ssh",  -- $HOME's, as known_hosts
    timeout = opts.timeout or M.CONNECT_TIMEOUT, accept_new = opts.accept_new == true,
    config = opts.ssh_config, key_only = opts.key_only == true,
  })
  if s then return s end
  local e = connect_error(text.inert(where(t)), known, { msg = msg, code = code, info = info })
  e.connect = code or "CONNECT"
  return nil, e
end

return M
