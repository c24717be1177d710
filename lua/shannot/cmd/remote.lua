-- shannot remote add NAME [USER@]HOST[:PORT] [--key F] [--profile P]
--              | list [--json] | remove NAME
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local remote = require("shannot.remote")
local text = require("shannot.text")

local M = {
  usage = "shannot remote add NAME [USER@]HOST[:PORT] [--key F] [--profile P]\n" ..
    "shannot remote list [--json]\nshannot remote remove NAME\nshannot remote test NAME [--accept-new]\n" ..
    "shannot remote group add GROUP MEMBER... | list [--json] | remove GROUP [MEMBER...]",
  help = [[
Remote hosts live in your config.toml as [remotes.NAME] tables (host, user,
port, key_file, profile).  add and remove edit only that table and keep
the rest of the file (comments, order, spacing) byte for byte.

  add NAME [USER@]HOST[:PORT]   adds a remote (HOST may be [IPv6]:PORT)
      --key F                   the private key to log in with
      --profile P               the profile runs on it use by default
  list                          every remote, and the file it comes from
  remove NAME                   removes one from your config.toml
  NAME run [RUN OPTIONS] ...    the same as shannot run --target NAME ...
  test NAME                     connects (host key checked against
                                ~/.ssh/known_hosts; --accept-new adds an
                                unknown one) and checks that the remote has
                                what captures need: bwrap, util-linux, GNU
                                tar, namespaces, overlayfs

Groups of hosts (fleets: shannot run --target @GROUP) live in the same
file as [groups.GROUP] members = [...]; a member is a remote's name,
USER@HOST[:PORT], or another group as @NAME (a group naming itself,
directly or through others, is refused).
  group add GROUP MEMBER...     makes the group, or adds members to it
  group list                    every group, its members and its hosts
  group remove GROUP [MEMBER...]  removes members, or the whole group]],
  options = { ["--key"] = { arg = "F" }, ["--profile"] = { arg = "P" }, ["--json"] = {},
    ["--accept-new"] = { key = "accept_new" } },
}

-- A remote's name: any printable text of up to 64 bytes that does not
-- look like an option (a TOML key may hold dots and spaces: it is
-- written quoted, [remotes."web.prod"]).
local function valid_name(name)
  return name ~= nil and #name > 0 and #name <= 64 and not name:find("%c") and name:sub(1, 1) ~= "-"
    and name:match("^%s") == nil and name:match("%s$") == nil
end

local function user_config()
  return paths.config_file()
end

local function read_config(file)
  local data, msg, code = fs.read_file(file, 1024 * 1024)
  if data then return data end
  if code == "ENOENT" then return "" end
  return nil, err.usage("cannot read %s", msg)
end

local function write_config(file, data)
  local dir = file:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    local ok, msg = fs.mkdir_p(dir, 448)
    if not ok then return nil, err.env("cannot make %s", msg) end
  end
  local st = fs.lstat(file)
  local ok, msg = fs.write_atomic(file, data, st and st.mode or 384)
  if not ok then return nil, err.env("cannot write %s", msg) end
  return true
end

local function add(opts, args)
  local name, target = args[2], args[3]
  if #args ~= 3 then return nil, err.usage("remote add: usage: shannot remote add NAME [USER@]HOST[:PORT]") end
  if not valid_name(name) then
    return nil, err.usage('remote add: bad name "%s" (up to 64 printable characters, not starting with "-" ' ..
      'or a blank)', text.inert(name))
  end
  local reserved = require("shannot.config").RESERVED_REMOTE_NAMES[name]
  if reserved then
    return nil, err.usage('remote add: the name "%s" is reserved (%s); choose another', name, reserved)
  end
  local t, why = remote.parse_target(target)
  if not t then return nil, err.usage("remote add: %s", why.message) end
  local values = opts.config and opts.config.values
  if values and (values.remotes[name] or values.executor[name]) then
    return nil, err.usage('remote add: "%s" exists already (shannot remote list); remove it first', text.inert(name))
  end
  local kv = { { "host", t.host } }
  if t.user then kv[#kv + 1] = { "user", t.user } end
  if t.port then kv[#kv + 1] = { "port", t.port } end
  if opts.key then
    local key = fs.realpath(opts.key)
    local kst = key and fs.stat(key)
    if not kst or kst.type ~= "file" then
      return nil, err.usage('remote add: no key file "%s"', text.inert(opts.key))
    end
    kv[#kv + 1] = { "key_file", key }
  end
  if opts.profile then kv[#kv + 1] = { "profile", opts.profile } end
  local file = user_config()
  local data, rerr = read_config(file)
  if not data then return nil, rerr end
  local toml = require("shannot.toml")
  local out, terr = toml.set_table(data, { "remotes", name }, kv, file)
  if not out then return nil, err.usage("%s", tostring(terr)) end
  local ok, werr = write_config(file, out)
  if not ok then return nil, werr end
  cli.out(string.format("added remote %s (%s) to %s\n", text.inert(name), text.inert(target), file))
  return const.EXIT.OK
end

local function remove(opts, args)
  local name = args[2]
  if #args ~= 2 or not valid_name(name) then
    return nil, err.usage("remote remove: usage: shannot remote remove NAME")
  end
  local file = user_config()
  local data, rerr = read_config(file)
  if not data then return nil, rerr end
  local out = require("shannot.toml").remove_table(data, { "remotes", name }, file)
  -- The blank line `add` put before the table goes with it.
  if out and out:find("\n\n$") and not data:find("\n\n$") then out = out:gsub("\n+$", "\n") end
  if not out then
    local cfg = opts.config
    local where = cfg and cfg.values.remotes[name] and require("shannot.config").table_source(cfg, { "remotes", name })
    if where and where ~= "config" then
      return nil, err.usage('remote remove: "%s" is defined in %s, not in %s; edit that file', text.inert(name),
        where, file)
    end
    return nil, err.usage('remote remove: no remote "%s" in %s', text.inert(name), file)
  end
  local ok, werr = write_config(file, out)
  if not ok then return nil, werr end
  cli.out(string.format("removed remote %s from %s\n", text.inert(name), file))
  return const.EXIT.OK
end

-- The names of a table of the config, sorted.
local function sorted_names(t)
  local names = {}
  for name in pairs(t) do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function list(opts)
  local cfg = opts.config
  local out = {}
  for _, name in ipairs(sorted_names(cfg.values.remotes)) do
    local r = cfg.values.remotes[name]
    out[#out + 1] = { name = name, host = r.host, user = r.user, port = r.port, key_file = r.key_file,
      profile = r.profile, source = require("shannot.config").table_source(cfg, { "remotes", name }) }
  end
  if opts.json then
    cli.out(json.encode(json.array(out), { indent = "  " }), "\n")
  elseif #out == 0 then
    cli.out("no remotes; add one with: shannot remote add NAME [USER@]HOST[:PORT]\n")
  else
    for _, r in ipairs(out) do
      local where = remote.display(r)
      cli.out(string.format("%-16s %-32s %s\n", text.inert(r.name), text.inert(where), text.inert(r.source)))
    end
  end
  return const.EXIT.OK
end

-- What `remote test` asks the remote, one KEY=VALUE line each.  Every
-- probe is the real step a capture takes (capture/remote_shell.lua): the
-- namespaces (as another user than root, a user namespace mapping that
-- user to 0), an overlay with userxattr in a scratch directory, bwrap
-- inside them; a failed one says its own first line of error.
local PROBE = [=[
d=$(mktemp -d) || exit 1
echo "uid=$(id -u)"
echo "kernel=$(uname -r)"
b=$(command -v bwrap) && echo "bwrap=$b $(bwrap --version 2>/dev/null)"
t=$(tar --version 2>/dev/null | head -n 1) && echo "tar=$t"
u=$(unshare --version 2>/dev/null) && echo "unshare=$u"
mkdir "$d/l" "$d/u" "$d/w" "$d/m"
if [ "$(id -u)" = 0 ]; then ns="unshare -m"; args="@ROOT_ARGS@"
else ns="unshare -U -m --map-root-user"; args="@USER_ARGS@"; fi
said() { printf '%s' "$1" | tr '\n' ' ' | cut -c1-300; }
if e=$($ns true 2>&1); then echo "userns=yes"; else echo "userns=no: $(said "$e")"; fi
m="mount -t overlay overlay -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w,userxattr $d/m"
if e=$($ns sh -c "$m && touch $d/m/x" 2>&1); then echo "overlay=yes"; else echo "overlay=no: $(said "$e")"; fi
if [ -n "$b" ]; then
  if e=$($ns sh -c "exec bwrap $args -- true" 2>&1)
  then echo "sandbox=yes"; else echo "sandbox=no: $(said "$e")"; fi
fi
chmod -R u+rwx "$d" 2>/dev/null; rm -rf "$d"
]=]

-- the sandbox it tries: bwrap.lua's (every word a plain one: no quoting)
PROBE = PROBE:gsub("@(%u+)_ARGS@", function(which)
  local ids = which == "USER" and { uid = "$(id -u)", gid = "$(id -g)" } or nil
  return table.concat(require("shannot.sandbox.bwrap").probe_args(ids), " ")
end)

-- A probe's row: "yes" as said, or "no: " and the error it met.
local function probed(value, yes)
  if value == "yes" then return yes end
  return value and ("no: " .. (value:match("^no: *(.*)$") or value)) or "?"
end

local function test(opts, args)
  local name = args[2]
  if #args ~= 2 then
    return nil, err.usage("remote test: usage: shannot remote test NAME|USER@HOST[:PORT]")
  end
  local t, terr = remote.resolve(name, opts.config)
  if not t then return nil, terr end
  local s <close>, cerr = remote.connect(t, { accept_new = opts.accept_new })
  if not s then return nil, cerr end
  local r, rmsg = s:exec(PROBE, { timeout = 60 })
  if not r then return nil, err.env("%s: %s", name, rmsg) end
  local facts = {}
  for k, v in (r.stdout or ""):gmatch("([%w_]+)=([^\n]*)") do facts[k] = v end
  local key = s:host_key()
  local rows = {
    { "connected", string.format("%s (host key %s %s)", text.inert(name), key.key_type or "?",
      key.fingerprint or "?") },
    { "user", facts.uid == "0" and "root: full fidelity" or
      ("uid " .. tostring(facts.uid) .. ": only that user's files can be captured") },
    { "kernel", facts.kernel or "?" },
    { "bwrap", facts.bwrap or "missing: apt-get install bubblewrap" },
    { "util-linux", facts.unshare or "missing: apt-get install util-linux" },
    { "GNU tar", facts.tar or "missing: apt-get install tar" },
    { "namespaces", probed(facts.userns, "yes") },
    { "overlayfs", probed(facts.overlay, "yes (userxattr)") },
    { "sandbox", facts.bwrap and probed(facts.sandbox, "yes (bwrap runs there)") or "no: bwrap is missing" },
  }
  for _, row in ipairs(rows) do cli.out(string.format("  %-12s %s\n", row[1], text.inert(row[2]))) end
  local usable = facts.bwrap and facts.unshare and facts.tar and facts.userns == "yes" and facts.overlay == "yes"
    and facts.sandbox == "yes"
  if not usable then
    cli.warn("%s cannot run captures yet: see what failed above", text.inert(name))
    return const.EXIT.ENV
  end
  cli.out(string.format("%s is ready for shannot\n", text.inert(name)))
  return const.EXIT.OK
end

---------------------------------------------------------------------------
-- Groups
---------------------------------------------------------------------------

-- The groups after a change, checked as the config would check them
-- (unknown groups, cycles) before anything is written.
local function check_groups(groups)
  for name in pairs(groups) do
    local _, e = require("shannot.fleet.targets").expand("@" .. name, groups)
    if e then return nil, e end
  end
  return true
end

local function write_group(file, data, name, members)
  local toml = require("shannot.toml")
  local out, terr
  if #members == 0 then
    out, terr = toml.remove_table(data, { "groups", name }, file)
    if out and out:find("\n\n$") and not data:find("\n\n$") then out = out:gsub("\n+$", "\n") end
  else
    out, terr = toml.set_table(data, { "groups", name }, { { "members", members } }, file)
  end
  if not out then return nil, err.usage("%s", tostring(terr and (terr.message or terr) or "cannot edit")) end
  return write_config(file, out)
end

-- The groups of the config with one replaced (members nil: removed).
local function groups_with(cfg, name, members)
  local groups = {}
  for k, v in pairs(cfg and cfg.values.groups or {}) do groups[k] = v end
  groups[name] = members and { members = members } or nil
  return groups
end

local function group_add(opts, args)
  local name = args[3]
  if #args < 4 or not valid_name(name) or name:find("[@,%s]") then
    return nil, err.usage("remote group add: usage: shannot remote group add GROUP MEMBER... (a group name has " ..
      "no @, comma or blank)")
  end
  local cfg = opts.config
  local members = {}
  local have = cfg and cfg.values.groups[name]
  for _, m in ipairs(have and have.members or {}) do members[#members + 1] = m end
  local seen = {}
  for _, m in ipairs(members) do seen[m] = true end
  for i = 4, #args do
    local m = args[i]
    if m == "" or m:find("[%s,]") then
      return nil, err.usage('remote group add: bad member "%s" (a remote name, USER@HOST[:PORT] or @GROUP)',
        text.inert(m))
    end
    if not m:find("^@") and not remote.configured(m, cfg) and not (cfg and cfg.values.groups[m]) then
      local _, why = remote.parse_target(m)
      if why then
        return nil, err.usage('remote group add: "%s" is no remote of the config, and %s', text.inert(m),
          why.message)
      end
    end
    if not seen[m] then seen[m] = true; members[#members + 1] = m end
  end
  local ok, gerr = check_groups(groups_with(cfg, name, members))
  if not ok then return nil, err.usage("remote group add: %s", gerr.message) end
  local file = user_config()
  local data, rerr = read_config(file)
  if not data then return nil, rerr end
  local written, werr = write_group(file, data, name, members)
  if not written then return nil, werr end
  cli.out(string.format("group %s: %s (in %s)\n", text.inert(name), text.inert(table.concat(members, " ")), file))
  return const.EXIT.OK
end

local function group_remove(opts, args)
  local name = args[3]
  if #args < 3 or not valid_name(name) then
    return nil, err.usage("remote group remove: usage: shannot remote group remove GROUP [MEMBER...]")
  end
  local cfg = opts.config
  local have = cfg and cfg.values.groups[name]
  if not have then return nil, err.usage('remote group remove: no group "%s"', text.inert(name)) end
  local source = require("shannot.config").table_source(cfg, { "groups", name })
  local file = user_config()
  if source and source ~= "config" and not source:find(file, 1, true) then
    return nil, err.usage('remote group remove: "%s" is defined in %s, not in %s; edit that file', text.inert(name),
      source, file)
  end
  local members = {}
  if #args > 3 then
    local drop = {}
    for i = 4, #args do drop[args[i]] = true end
    for _, m in ipairs(have.members or {}) do
      if drop[m] then drop[m] = nil else members[#members + 1] = m end
    end
    local missing = next(drop)
    if missing then
      return nil, err.usage('remote group remove: "%s" is no member of group %s', text.inert(missing), text.inert(name))
    end
  end
  local ok, gerr = check_groups(groups_with(cfg, name, #members > 0 and members or nil))
  if not ok then
    return nil, err.usage("remote group remove: %s (another group names it)", gerr.message)
  end
  local data, rerr = read_config(file)
  if not data then return nil, rerr end
  local written, werr = write_group(file, data, name, members)
  if not written then return nil, werr end
  cli.out(#members > 0 and string.format("group %s: %s\n", text.inert(name), text.inert(table.concat(members, " ")))
    or string.format("removed group %s from %s\n", text.inert(name), file))
  return const.EXIT.OK
end

local function group_list(opts)
  local cfg = opts.config
  local out = {}
  for _, name in ipairs(sorted_names(cfg.values.groups)) do
    local hosts = require("shannot.fleet.targets").expand("@" .. name, cfg.values.groups) or {}
    out[#out + 1] = { name = name, members = json.array(cfg.values.groups[name].members or {}),
      hosts = json.array(hosts), source = require("shannot.config").table_source(cfg, { "groups", name }) }
  end
  if opts.json then
    cli.out(json.encode(json.array(out), { indent = "  " }), "\n")
  elseif #out == 0 then
    cli.out("no groups; make one with: shannot remote group add GROUP MEMBER...\n")
  else
    for _, g in ipairs(out) do
      cli.out(string.format("%-16s %d host%s: %s   (%s)\n", text.inert(g.name), #g.hosts, #g.hosts == 1 and "" or "s",
        text.inert(table.concat(g.hosts, " ")), text.inert(tostring(g.source))))
    end
  end
  return const.EXIT.OK
end

local function group(opts, args)
  local sub = args[2]
  if sub == "add" then return group_add(opts, args) end
  if sub == "remove" then return group_remove(opts, args) end
  if sub == "list" and #args == 2 then return group_list(opts) end
  return nil, err.usage("remote group: usage: shannot remote group add GROUP MEMBER... | list [--json] | " ..
    "remove GROUP [MEMBER...]")
end

function M.run(opts, args)
  local sub = args[1]
  if sub == "test" then return test(opts, args) end
  if sub == "group" then return group(opts, args) end
  if sub == "add" then return add(opts, args) end
  if sub == "remove" then return remove(opts, args) end
  if sub == "list" and #args == 1 then return list(opts) end
  return nil, err.usage("remote: usage: %s", (M.usage:gsub("\n", " | ")))
end

return M
