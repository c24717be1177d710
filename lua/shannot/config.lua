-- config.toml: the schema, the built-in defaults, and the merge of the
-- system files (/etc/shannot/config.toml, $XDG_CONFIG_DIRS/shannot/), the
-- user file ($XDG_CONFIG_HOME/shannot/config.toml, or $SHANNOT_CONFIG)
-- with the project file (.shannot/config.toml in the current directory or
-- the nearest parent).  Nothing falls back silently: a malformed file, an
-- unknown key or a wrong type is an error naming file, line and column.
--
-- Merge: scalars in the project file override the user file key by key;
-- pattern lists ([profile], [policy]) only ever grow, so a project file can
-- add to always_deny but never remove from it.  Every value remembers
-- where it came from ("built-in" or FILE:LINE).
--
-- A project file is found by walking up from the current directory, so it
-- may have been planted by someone else: it is read only when it and its
-- .shannot/ belong to the user (or root) and nobody else may write them,
-- the walk stops at the user's home and at a directory someone else owns,
-- and it may only make things stricter (PROJECT_KEYS); anything else it
-- sets is refused and listed in cfg.refused.
-- loaded when a config file sets patterns: a run without one pays for none
local function cmdpattern() return require("shannot.policy.cmdpattern") end
local err = require("shannot.err")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local sys = require("shannot.core.sys")
local text = require("shannot.text")

-- The TOML parser is loaded only when a config file exists: most runs
-- have none, and every command pays for what it loads (bench/startup).
local function toml() return require("shannot.toml") end

local M = {}

local MAX_CONFIG_BYTES = 1024 * 1024

---------------------------------------------------------------------------
-- Built-in defaults
---------------------------------------------------------------------------

-- Read-only commands whose every spelling below is safe to run on the host
-- without review.  Deliberately absent: env, find, xargs, awk, sed, less,
-- more, man, vi, watch, tail -f (they execute, write or wait forever),
-- date/hostname with arguments (they set the clock or the name).
M.DEFAULT_AUTO_APPROVE = {
  "ls", "ls *", "cat *", "head *", "wc *", "stat *", "file *", "pwd", "id", "id *",
  "whoami", "uname", "uname *", "uptime", "date", "date +*", "hostname", "df", "df *",
  "du *", "free", "free *", "ps", "ps *", "grep *", "diff *", "cmp *",
  "md5sum *", "sha1sum *", "sha256sum *", "sha512sum *", "lsblk", "lsblk *",
  "systemctl status *", "systemctl is-active *", "systemctl is-enabled *",
  "systemctl list-units", "systemctl list-units *", "systemctl show *",
  "journalctl --no-pager *", "ip addr", "ip -brief addr", "ss -l*", "getent *",
  "dpkg -l", "dpkg -l *", "dpkg -s *", "which *", "test *", "true", "false",
}

-- Matched on the normalised argv with extra flags and operands allowed,
-- so `sudo /bin/rm -rfv --no-preserve-root /` is still `rm -r /`, and on
-- every command inside it (sh -c '...', busybox rm, xargs, find -exec).
M.DEFAULT_ALWAYS_DENY = {
  "rm -r /", "rm -r /*", "rm -r ~", "rm --no-preserve-root",
  "chmod -R * /", "chown -R * /", "chgrp -R * /",
  "mkfs", "mkfs.*", "mke2fs", "mkswap", "wipefs", "fdisk", "sfdisk", "cfdisk", "parted",
  "sgdisk", "blkdiscard", "dd of=/dev/**", "shred /dev/**",
  "crontab -r", "passwd -d *", "userdel root", "kill -- 1", "kill -- -1", "pkill init", "pkill systemd",
  "killall init", "killall systemd", "> /dev/root", "> /dev/block/**", "cp /dev/root", "truncate /dev/root",
  "mv / *", "mv /* *", "find / -delete",
  -- a disk written through the shell, cp or tee
  "> /dev/sd*", "> /dev/hd*", "> /dev/vd*", "> /dev/xvd*", "> /dev/nvme*", "> /dev/mmcblk*",
  "> /dev/md*", "> /dev/dm-*", "> /dev/mapper/*", "> /dev/disk/**",
  "cp /dev/sd*", "cp /dev/hd*", "cp /dev/vd*", "cp /dev/xvd*", "cp /dev/nvme*",
  "cp /dev/mmcblk*", "cp /dev/disk/**", "tee /dev/sd*", "tee /dev/vd*", "tee /dev/nvme*",
  "truncate /dev/sd*", "truncate /dev/vd*", "truncate /dev/nvme*", "truncate /dev/xvd*", "truncate /dev/disk/**",
}

-- What a capture leaves out ([capture] ignore; capture/walk.lua): noise
-- nobody reviews and nothing needs applied, since the system makes it
-- again: log files, the caches of apt, man, ldconfig and fontconfig, and
-- Python's byte code.  Not all of /var/cache: debconf keeps its answers
-- database there.  Never /etc, /var/lib or /var/tmp.
M.DEFAULT_CAPTURE_IGNORE = {
  "/var/log/**", "/var/cache/apt/**", "/var/cache/man/**", "/var/cache/ldconfig/**",
  "/var/cache/fontconfig/**", "**/__pycache__/**",
}

---------------------------------------------------------------------------
-- Schema
---------------------------------------------------------------------------

-- Each checker: (value) -> normalised value | nil, "what it must be"
local check = {}

function check.string(v)
  if type(v) == "string" then return v end
  return nil, "a string"
end

function check.boolean(v)
  if type(v) == "boolean" then return v end
  return nil, "true or false"
end

function check.port(v)
  if math.type(v) == "integer" and v >= 1 and v <= 65535 then return v end
  return nil, "a port number (1-65535)"
end

function check.count(v)
  if math.type(v) == "integer" and v >= 1 then return v end
  return nil, "a positive integer"
end

local SIZES = { K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4 }

-- size: bytes, or a string such as "512M", "8G"
function check.size(v)
  if math.type(v) == "integer" and v > 0 then return v end
  if type(v) == "string" then
    local n, unit = v:match("^(%d+)([KMGT])i?B?$")
    if n and tonumber(n) > 0 then return math.tointeger(tonumber(n) * SIZES[unit]) end
  end
  return nil, 'a size: bytes, or a string such as "512M", "8G"'
end

-- size_or_share: a size, or a share of the machine's memory such as "50%"
function check.size_or_share(v)
  if type(v) == "string" then
    local pct = v:match("^(%d+)%%$")
    if pct and tonumber(pct) >= 1 and tonumber(pct) <= 100 then return v end
  end
  local size = check.size(v)
  if size then return size end
  return nil, 'a size ("4G") or a share of the memory ("50%")'
end

local UNITS = { s = 1, m = 60, h = 3600, d = 86400 }

-- ttl: seconds, or a string such as "90s", "30m", "1h", "7d"
function check.duration(v)
  if math.type(v) == "integer" and v > 0 then return v end
  if type(v) == "string" then
    local n, unit = v:match("^(%d+)([smhd])$")
    if n and tonumber(n) > 0 then return tonumber(n) * UNITS[unit] end
  end
  return nil, 'a duration: seconds, or a string such as "30m", "1h", "7d"'
end

local function enum(...)
  local allowed = { ... }
  return function(v)
    for _, a in ipairs(allowed) do
      if v == a then return v end
    end
    return nil, "one of " .. table.concat(allowed, ", ")
  end
end

-- ~ and relative paths are resolved (relative to the file's directory)
-- when the file is read; see resolve_path.
function check.path(v)
  if type(v) == "string" and v ~= "" and not v:find("\0", 1, true) then return v end
  return nil, "a path"
end

local function list_of(item, what)
  return function(v)
    if type(v) ~= "table" or getmetatable(v) ~= toml().array_mt then
      return nil, "an array of " .. what
    end
    for i, x in ipairs(v) do
      local ok, why = item(x)
      if not ok then return nil, string.format("an array of %s (item %d: %s)", what, i, why) end
    end
    return v
  end
end

local function command_pattern(v)
  local ok, why = cmdpattern().compile(v)
  if not ok then return nil, why.message end  -- a reason phrase: "must be ..."
  return v
end

local function command_name(v)
  if type(v) == "string" and v:match("^[%w_.+-]+$") and v ~= "." and v ~= ".." then return v end
  return nil, "a command name (no slash)"
end

local function path_glob(v)
  if type(v) ~= "string" then return nil, "a string" end
  if v:sub(1, 1) ~= "/" then return nil, string.format('an absolute path glob, not "%s"', text.inert(v)) end
  return v
end

-- A path a capture leaves out: an absolute glob, or one for any depth
-- ("**/__pycache__/**"); glob.match_path's meaning.
local ignore_glob = function(v)
  if type(v) ~= "string" then return nil, "a string" end
  if not (v:sub(1, 1) == "/" or v:sub(1, 3) == "**/") or v:find("\0", 1, true) then
    return nil, string.format('an absolute path glob or a "**/" one, not "%s"', text.inert(v))
  end
  return v
end

-- A path hidden from the MCP server's read-only runs (sandbox/hide.lua).
local function hide_glob(v)
  local ok, why = require("shannot.sandbox.hide").check(v)
  if not ok then return nil, type(v) == "string" and string.format('%s, not "%s"', why, text.inert(v)) or why end
  return v
end

-- A table's keys: name -> checker, or a nested schema table.
local EXECUTOR = {
  type = enum("local", "ssh"), host = check.string, username = check.string,
  key_file = check.path, port = check.port, known_hosts = check.path,
  strict_host_key = check.boolean, bwrap_path = check.path, profile = check.string,
}

local REMOTE = {
  host = check.string, user = check.string, port = check.port,
  key_file = check.path, profile = check.string,
}

local function target_name(v)
  if type(v) == "string" and v ~= "" and not v:find("[%s,]") then return v end
  return nil, "a target (a remote name, USER@HOST[:PORT], or a group as @NAME)"
end

-- A fleet's hosts (issue 16): members are targets or other groups.
local GROUP = { members = list_of(target_name, "targets") }

local SCHEMA = {
  default_executor = check.string,
  executor = { ["*"] = EXECUTOR },
  remotes = { ["*"] = REMOTE },
  groups = { ["*"] = GROUP },
  inventory = check.path,
  profile = {
    auto_approve = list_of(command_pattern, "command patterns"),
    always_deny = list_of(command_pattern, "command patterns"),
    defer = list_of(command_name, "command names"),
  },
  policy = {
    deny = list_of(path_glob, "path globs"),
    review = list_of(path_glob, "path globs"),
    auto_approve = list_of(path_glob, "path globs"),
  },
  audit = {
    enabled = check.boolean, path = check.path,
    rotation = enum("daily", "session", "none"), max_files = check.count,
  },
  session = { ttl = check.duration },
  limits = {
    processes = check.count, memory = check.size_or_share, staging = check.size,
    mcp_sandboxes = check.count,
  },
  mcp = { hide = list_of(hide_glob, "absolute path globs") },
  capture = { ignore = list_of(ignore_glob, "path globs") },
}

-- Keys whose values are lists that merge by union (all the lists there are).
local GROWING = {
  ["profile.auto_approve"] = true, ["profile.always_deny"] = true, ["profile.defer"] = true,
  ["policy.deny"] = true, ["policy.review"] = true, ["policy.auto_approve"] = true,
  ["mcp.hide"] = true,
}

-- Keys whose values are lists (`config show` prints them as lists):
-- the growing ones, and those a file replaces whole.
M.LIST_KEYS = setmetatable({ ["capture.ignore"] = true }, { __index = GROWING })

local PATH_KEYS = { key_file = true, known_hosts = true, bwrap_path = true, path = true, inventory = true }

local function defaults()
  return {
    values = {
      default_executor = "local",
      executor = {}, remotes = {}, groups = {},
      profile = {
        auto_approve = table.move(M.DEFAULT_AUTO_APPROVE, 1, #M.DEFAULT_AUTO_APPROVE, 1, {}),
        always_deny = table.move(M.DEFAULT_ALWAYS_DENY, 1, #M.DEFAULT_ALWAYS_DENY, 1, {}),
        defer = {},
      },
      policy = { deny = {}, review = {}, auto_approve = {} },
      audit = { enabled = true, path = paths.data_dir() .. "/audit", rotation = "daily", max_files = 30 },
      session = { ttl = 3600 },
      limits = {
        processes = 4096, memory = "50%", staging = 8 * 1024 * 1024 * 1024, mcp_sandboxes = 4,
      },
      mcp = { hide = {} },  -- added to the built-in list of mcp/hide.lua
      -- replaced, not grown, by a file's list: `ignore = []` keeps everything
      capture = { ignore = table.move(M.DEFAULT_CAPTURE_IGNORE, 1, #M.DEFAULT_CAPTURE_IGNORE, 1, {}) },
    },
    origin = {},  -- dotted key -> "FILE:LINE"; list keys -> {per item}
  }
end

---------------------------------------------------------------------------
-- Reading one file
---------------------------------------------------------------------------

local function schema_names(schema)
  local out = {}
  for k in pairs(schema) do
    if k ~= "*" then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- A key's name in messages, origins and `config show`: its parts as TOML
-- writes them, so [remotes."web.prod"] stays one table named web.prod.
local function dotted(prefix, key)
  local part = require("shannot.toml").key_text(key)
  return prefix == "" and part or (prefix .. "." .. part)
end

local function resolve_path(v, dir)
  if v == "~" then return paths.home() end
  if v:sub(1, 2) == "~/" then return paths.home() .. v:sub(2) end
  if v:sub(1, 1) ~= "/" then return dir .. "/" .. v end
  return v
end

-- Walks a parsed table against the schema, collecting leaf values into
-- ctx.out as {key = dotted key, path, value, source} or returning the
-- first error.  at: where tbl is, {prefix = dotted key, parts = keys}.
local function walk(ctx, tbl, schema, at)
  local prefix, parts = at.prefix, at.parts
  local keys = {}
  for k in pairs(tbl) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = tbl[k]
    local line, col = ctx.locate(tbl, k)
    local where = string.format("%s:%d:%d", ctx.file, line or 1, col or 1)
    local name = dotted(prefix, k)
    local path = table.move(parts, 1, #parts, 1, {})
    path[#path + 1] = k
    local rule = schema[k] or schema["*"]
    if rule == nil then
      return nil, string.format('%s: unknown key "%s"%s', where, text.inert(name),
        text.did_you_mean(k, schema_names(schema)))
    end
    if type(rule) == "table" then
      if type(v) ~= "table" or getmetatable(v) ~= nil then
        return nil, string.format("%s: %s must be a table", where, text.inert(name))
      end
      local ok, e = walk(ctx, v, rule, { prefix = name, parts = path })
      if not ok then return nil, e end
    else
      local value, why = rule(v)
      if value == nil then
        local shown = type(v) == "string" and string.format(', not "%s"', text.inert(v))
          or (type(v) ~= "table" and ", not " .. tostring(v)) or ""
        return nil, string.format("%s: %s must be %s%s", where, text.inert(name), why, shown)
      end
      if PATH_KEYS[k] then value = resolve_path(value, ctx.dir) end
      ctx.out[#ctx.out + 1] = { key = name, path = path, value = value,
        source = string.format("%s:%d", ctx.file, line or 1) }
    end
  end
  return true
end

-- read_file(path) -> leaves | nil (absent) | nil, err
function M.read_file(path)
  local data, msg, code = fs.read_user_file(path, MAX_CONFIG_BYTES, "config file")
  if not data then return nil, msg and err.usage("%s", msg), code end
  local root, locate = toml().parse_located(data, path)
  if not root then return nil, err.usage("%s", tostring(locate)) end
  local leaves = {}
  local ok, e = walk({ file = path, dir = path:match("^(.*)/[^/]*$") or ".", locate = locate, out = leaves },
    root, SCHEMA, { prefix = "", parts = {} })
  if not ok then return nil, err.usage("%s", e) end
  return leaves
end

---------------------------------------------------------------------------
-- Finding and merging the files
---------------------------------------------------------------------------

-- The invoking user, for the trust checks: euid and real home.
local function invoker()
  local home = paths.home()
  return { uid = sys.ids(false).euid, home = fs.realpath(home) or home }
end

local function parent_of(dir)
  local up = dir:match("^(.*)/[^/]*$")
  return up == "" and "/" or up
end

local function owned_by_trusted(st, who)
  return st.uid == who.uid or st.uid == 0
end

-- Why a project path (its lstat) cannot be trusted, or nil.
local function distrust(st, kind, who)
  if st.type ~= kind then
    return st.type == "link" and "it is a symlink" or ("it is a " .. st.type .. ", not a " .. kind)
  end
  if not owned_by_trusted(st, who) then
    return string.format("it is owned by uid %d, not by you or root", st.uid)
  end
  if st.mode & 18 ~= 0 then return "group or others may write it" end  -- 022
end

local function refuse(path, why)
  return err.usage("%s: refused: %s; a project's .shannot files must be yours (or root's) " ..
    "and writable only by their owner", path, why)
end

-- project_dir(cwd[, who]) -> the nearest directory holding .shannot/ |
-- nil | nil, err (a .shannot/ that cannot be trusted).  The walk never
-- leaves the user's home upwards, and stops at a directory owned by
-- someone else: what they keep above us is not our project.
function M.project_dir(cwd, who)
  who = who or invoker()
  local dir = cwd
  while true do
    local st = fs.lstat(dir)
    if not st or not owned_by_trusted(st, who) then return nil end
    local dot = (dir == "/" and "" or dir) .. "/.shannot"
    local dst = fs.lstat(dot)
    if dst then
      local why = distrust(dst, "dir", who)
      if why then return nil, refuse(dot, why) end
      return dir
    end
    if dir == who.home or dir == "/" then return nil end
    dir = parent_of(dir)
  end
end

-- A file in a trusted .shannot/: absent is fine, anything else must pass.
local function check_project_file(path, who)
  local st = fs.lstat(path)
  if not st then return true end
  local why = distrust(st, "file", who)
  if why then return nil, refuse(path, why) end
  return true
end

-- files(cwd) -> {system = {paths...}, user = path, user_explicit = bool, project = path|nil,
-- project_policy = path|nil, policies = {paths...}, project_error = err|nil}
-- (paths that may or may not exist)
function M.files(cwd)
  local explicit = os.getenv("SHANNOT_CONFIG")
  local f = {
    system = paths.system_config_files(),
    user = paths.config_file(),
    user_explicit = explicit ~= nil and explicit ~= "",
    policies = { paths.config_dir() .. "/policy.lua" },
  }
  local who = invoker()
  local project, perr = M.project_dir(cwd, who)
  if perr then f.project_error = perr end
  if project then
    local base = (project == "/" and "" or project) .. "/.shannot/"
    f.project, f.project_policy = base .. "config.toml", base .. "policy.lua"
    local ok, ferr = check_project_file(f.project, who)
    if ok then ok, ferr = check_project_file(f.project_policy, who) end
    if not ok then f.project_error = ferr end
    f.policies[#f.policies + 1] = f.project_policy
  end
  return f
end

-- set/get by a leaf's path: its key parts as parsed ("web.prod" is one)
local function set(values, path, value)
  local t = values
  for i = 1, #path - 1 do
    t[path[i]] = t[path[i]] or {}
    t = t[path[i]]
  end
  t[path[#path]] = value
end

local function get(values, path)
  local t = values
  for _, part in ipairs(path) do
    if type(t) ~= "table" then return nil end
    t = t[part]
  end
  return t
end

-- What a project file may set: only what makes things stricter.  Deny
-- and review lists and deferred commands grow; a TTL may only shrink; a
-- profile may be chosen only among those that capture (checked in
-- check_project_profile).  Never bwrap_path, executors, remotes, audit
-- settings or approve lists.
local PROJECT_KEYS = {
  ["profile.always_deny"] = true, ["profile.defer"] = true,
  ["policy.deny"] = true, ["policy.review"] = true,
  ["session.ttl"] = true, ["executor.local.profile"] = true,
  ["limits.processes"] = true, ["limits.memory"] = true, ["limits.staging"] = true,
  ["limits.mcp_sandboxes"] = true, ["mcp.hide"] = true,
}

-- Values a project file may only lower: key -> their comparable amount.
local LOWER_ONLY = {
  ["session.ttl"] = function(v) return v end,
  ["limits.processes"] = function(v) return v end,
  ["limits.staging"] = function(v) return v end,
  ["limits.mcp_sandboxes"] = function(v) return v end,
  ["limits.memory"] = function(v) return require("shannot.sandbox.limits").memory_bytes(v) end,
}

-- A profile a project may choose: named (not a file of the project's),
-- built in or the user's, capturing, with no writable bind, no network
-- and no bwrap arguments of its own.
local function check_project_profile(name)
  if name:find("/", 1, true) or name:match("%.json$") then
    return "a project file may name a profile, not a profile file"
  end
  local p = require("shannot.sandbox.profile").load(name)
  if not p then return string.format('there is no profile "%s"', text.inert(name)) end
  if #p.capture == 0 then
    return string.format('profile "%s" captures nothing, so its writes would not be reviewed', name)
  end
  for _, b in ipairs(p.binds) do
    if not b.read_only then
      return string.format('profile "%s" binds %s writable', name, text.inert(b.target))
    end
  end
  if p.network_isolation == false then return string.format('profile "%s" lets the network in', name) end
  if #p.unix_sockets > 0 then
    return string.format('profile "%s" reaches host sockets (unix_sockets)', name)
  end
  if #p.additional_args > 0 then
    return string.format('profile "%s" passes bwrap arguments of its own', name)
  end
end

-- Why a project file may not set this leaf (in cfg as merged so far), or nil.
local function project_refusal(cfg, leaf)
  if not PROJECT_KEYS[leaf.key] then
    return "a project file may only add deny/review rules, deferred commands and hidden paths, " ..
      "lower the session TTL and limits or choose a capturing profile"
  end
  local amount = LOWER_ONLY[leaf.key]
  if amount and amount(leaf.value) > amount(get(cfg.values, leaf.path)) then
    return "a project file may only lower it"
  end
  if leaf.key == "executor.local.profile" then return check_project_profile(leaf.value) end
end

-- Only the key's schema can say whether it grows: [executor.x] keys never do.
local function apply(cfg, leaves, project)
  for _, leaf in ipairs(leaves) do
    local refusal = project and project_refusal(cfg, leaf)
    if refusal then
      cfg.refused[#cfg.refused + 1] = { key = leaf.key, value = leaf.value, source = leaf.source, why = refusal }
    elseif GROWING[leaf.key] then
      local list = get(cfg.values, leaf.path)
      local from = cfg.origin[leaf.key] or {}
      cfg.origin[leaf.key] = from
      local have = {}
      for i, x in ipairs(list) do have[x] = true; from[i] = from[i] or "built-in" end
      for _, x in ipairs(leaf.value) do
        if not have[x] then
          have[x] = true
          list[#list + 1] = x
          from[#list] = leaf.source
        end
      end
    else
      set(cfg.values, leaf.path, leaf.value)
      cfg.origin[leaf.key] = leaf.source
    end
  end
end

-- Where some key of a table (path {"remotes", "web"}) was set.
local function table_origin(cfg, path)
  local prefix = require("shannot.toml").keys_text(path)
  local best
  for key, o in pairs(cfg.origin) do
    if key:sub(1, #prefix + 1) == prefix .. "." and type(o) == "string" and (best == nil or o < best) then
      best = o
    end
  end
  return best or "config"
end

-- Names a remote may not have: a target of that name means something else.
M.RESERVED_REMOTE_NAMES = { ["local"] = "it names this machine", default = "it names the default executor" }

-- Cross-key checks that no single value can make.
local function validate(cfg)
  local name = cfg.values.default_executor
  local function keys(path) return require("shannot.toml").keys_text(path) end  -- loaded only to say what is wrong
  if name ~= "local" and cfg.values.executor[name] == nil and cfg.values.remotes[name] == nil then
    return nil, err.usage('%s: default_executor "%s" names no [%s] or [%s]', cfg.origin.default_executor or "config",
      text.inert(name), text.inert(keys({ "executor", name })), text.inert(keys({ "remotes", name })))
  end
  for rname, r in pairs(cfg.values.remotes) do
    local header = text.inert(keys({ "remotes", rname }))
    if M.RESERVED_REMOTE_NAMES[rname] then
      return nil, err.usage('%s: [%s]: the name "%s" is reserved (%s)', table_origin(cfg, { "remotes", rname }),
        header, rname, M.RESERVED_REMOTE_NAMES[rname])
    end
    if r.host == nil then
      return nil, err.usage("%s: [%s] needs a host", table_origin(cfg, { "remotes", rname }), header)
    end
  end
  local gnames = {}
  for gname in pairs(cfg.values.groups) do gnames[#gnames + 1] = gname end
  table.sort(gnames)  -- the same error every time
  for _, gname in ipairs(gnames) do
    local _, gerr = require("shannot.fleet.targets").expand("@" .. gname, cfg.values.groups)
    if gerr then
      return nil, err.usage("%s: [%s]: %s", table_origin(cfg, { "groups", gname }),
        text.inert(keys({ "groups", gname })), gerr.message)
    end
  end
  for ename, e in pairs(cfg.values.executor) do
    if e.type == "ssh" and e.host == nil then
      return nil, err.usage("%s: [%s] has type ssh but no host", table_origin(cfg, { "executor", ename }),
        text.inert(keys({ "executor", ename })))
    end
  end
  return true
end

-- load({cwd}) -> cfg | nil, err.  cfg.values (the merged config),
-- cfg.origin (where each value came from), cfg.files (which files exist),
-- cfg.refused (what the project file set and may not: {key, value,
-- source, why}).
function M.load(opts)
  opts = opts or {}
  local cwd = opts.cwd or sys.getcwd() or "/"
  local cfg = defaults()
  cfg.refused = {}
  cfg.files = M.files(cwd)
  if cfg.files.project_error then return nil, cfg.files.project_error end
  cfg.files.system_present = {}  -- below the user's file: the user wins
  cfg.files.system_unreadable = {}
  for _, path in ipairs(cfg.files.system) do
    local leaves, serr, code = M.read_file(path)
    -- a system file kept from this user (mode 600, say) is not theirs:
    -- said, not fatal; a broken one still stops everything
    if code == "EACCES" or code == "ENOTDIR" then
      cfg.files.system_unreadable[#cfg.files.system_unreadable + 1] = serr.message
      serr = nil
    end
    if serr then return nil, serr end
    if leaves then
      apply(cfg, leaves)
      cfg.files.system_present[#cfg.files.system_present + 1] = path
    end
  end
  local user, uerr = M.read_file(cfg.files.user)
  if uerr then return nil, uerr end
  if not user and cfg.files.user_explicit then
    return nil, err.usage("%s: no such file (named by SHANNOT_CONFIG)", cfg.files.user)
  end
  cfg.files.user_exists = user ~= nil
  if user then apply(cfg, user) end
  if cfg.files.project then
    local project, perr = M.read_file(cfg.files.project)
    if perr then return nil, perr end
    cfg.files.project_exists = project ~= nil
    if project then apply(cfg, project, true) end
  end
  local ok, verr = validate(cfg)
  if not ok then return nil, verr end
  return cfg
end

-- source(cfg, key[, index]) -> where the value came from
function M.source(cfg, key, index)
  local o = cfg.origin[key]
  if type(o) == "table" then return o[index] or "built-in" end
  return o or "built-in"
end

-- table_source(cfg, {"remotes", "web"}) -> FILE:LINE where that table was set
M.table_source = table_origin

-- Compiled command patterns of one list ("auto_approve" | "always_deny").
function M.command_patterns(cfg, which)
  local out = {}
  for i, p in ipairs(cfg.values.profile[which]) do
    out[i] = assert(cmdpattern().compile(p))
  end
  return out
end

return M
