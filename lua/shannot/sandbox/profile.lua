-- Sandbox profiles: JSON files in the schema of the earlier shannot's
-- bubblewrap profiles (plus `capture` and `defer`), built in or in
-- ~/.config/shannot/profiles/, validated field by field.  sandbox/bwrap.lua
-- turns one into the bwrap command line.
local err = require("shannot.err")
local fs = require("shannot.fs")
local glob = require("shannot.glob")
local json = require("shannot.json")
local paths = require("shannot.paths")
local text = require("shannot.text")

local M = {}

M.DEFAULT = "system"
local MAX_PROFILE_BYTES = 1024 * 1024

-- Field -> kind.  Order is the order `profile show` prints.
local FIELDS = {
  { "name", "string" }, { "description", "string" },
  { "allowed_commands", "strings" }, { "binds", "binds" },
  { "tmpfs_paths", "paths" }, { "environment", "env" },
  { "network_isolation", "boolean" }, { "seccomp_profile", "string" },
  { "additional_args", "strings" }, { "capture", "paths" }, { "defer", "strings" },
  { "unix_sockets", "paths" },
}
local BIND_FIELDS = {
  { "source", "path" }, { "target", "path" }, { "read_only", "boolean" },
  { "create_target", "boolean" }, { "optional", "boolean" },
}

local function names_of(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f[1] end
  return out
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n == #v
end

local check = {}

function check.string(v)
  if type(v) ~= "string" then return "must be a string" end
end

function check.boolean(v)
  if type(v) ~= "boolean" then return "must be true or false" end
end

function check.path(v)
  if type(v) ~= "string" then return "must be a string" end
  if v:sub(1, 1) ~= "/" then return string.format('must be an absolute path, not "%s"', text.inert(v)) end
  if v:find("\0", 1, true) then return "must not contain a NUL byte" end
  for part in v:gmatch("[^/]+") do
    if part == ".." then return string.format('must not contain "..": "%s"', text.inert(v)) end
  end
end

local function check_list(v, item)
  if not is_list(v) then return "must be a list" end
  for i, x in ipairs(v) do
    local problem = item(x)
    if problem then return string.format("item %d %s", i, problem) end
  end
end

function check.strings(v) return check_list(v, check.string) end
function check.paths(v) return check_list(v, check.path) end

function check.env(v)
  if type(v) ~= "table" or (next(v) ~= nil and is_list(v)) then return "must be an object" end
  for k, x in pairs(v) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      return string.format('has an invalid variable name "%s"', text.inert(tostring(k)))
    end
    if type(x) ~= "string" then return string.format('"%s" must be a string', k) end
  end
end

-- Checks `obj` against `fields`; returns a message naming what is wrong.
local function check_object(obj, fields)
  if type(obj) ~= "table" or (next(obj) ~= nil and is_list(obj)) then
    return "must be an object"
  end
  local kinds = {}
  for _, f in ipairs(fields) do kinds[f[1]] = f[2] end
  for key, value in pairs(obj) do
    local kind = kinds[key]
    if not kind then
      return string.format('unknown field "%s"%s', text.inert(tostring(key)),
        text.did_you_mean(tostring(key), names_of(fields)))
    end
    if value ~= json.null then
      local problem
      if kind == "binds" then
        problem = check_list(value, function(b) return check_object(b, BIND_FIELDS) end)
      else
        problem = check[kind](value)
      end
      if problem then return string.format('field "%s" %s', key, problem) end
    end
  end
end

local function absent(v)
  return v == nil or v == json.null
end

local function default(v, d)
  if absent(v) then return d end
  return v
end

local function normalise_bind(b)
  for _, key in ipairs({ "source", "target" }) do
    if absent(b[key]) then return nil, string.format('a bind has no "%s"', key) end
  end
  return {
    source = b.source, target = b.target,
    read_only = default(b.read_only, true),
    create_target = default(b.create_target, true),
    optional = default(b.optional, false),
  }
end

-- from_table(obj, source, dir) -> profile | nil, problem: source names
-- the profile in the problem; dir resolves a relative seccomp path.
local function from_table(obj, source, dir)
  local problem = check_object(obj, FIELDS)
  if problem == "must be an object" then problem = "a profile must be a JSON object" end
  if problem then return nil, string.format("%s: %s", source, problem) end
  if absent(obj.name) or obj.name == "" then
    return nil, string.format('%s: field "name" is required', source)
  end
  local p = {
    name = obj.name, description = default(obj.description, ""), source = source,
    allowed_commands = default(obj.allowed_commands, {}), binds = {},
    tmpfs_paths = default(obj.tmpfs_paths, {}), environment = default(obj.environment, {}),
    network_isolation = default(obj.network_isolation, true),
    additional_args = default(obj.additional_args, {}),
    capture = default(obj.capture, {}), defer = default(obj.defer, {}),
    unix_sockets = default(obj.unix_sockets, {}),
  }
  if #p.unix_sockets > 0 and not p.network_isolation then
    -- shannot makes the sandbox's connects itself (notify.c); with the
    -- host's network it would wait on any host the sandbox names.
    return nil, string.format('%s: "unix_sockets" needs "network_isolation": true', source)
  end
  for _, b in ipairs(default(obj.binds, {})) do
    local bind, msg = normalise_bind(b)
    if not bind then return nil, string.format("%s: %s", source, msg) end
    p.binds[#p.binds + 1] = bind
  end
  -- An allowed socket the sandbox could rename another socket onto (in a
  -- directory it may write) would be any socket of that directory.
  for _, path in ipairs(p.unix_sockets) do
    for _, b in ipairs(p.binds) do
      local t = b.target == "/" and "" or b.target
      if not b.read_only and (path == b.target or path:sub(1, #t + 1) == t .. "/") then
        return nil, string.format('%s: unix_sockets: %s lies in the writable bind %s, where the sandbox could put ' ..
          'another socket in its place', source, text.inert(path), text.inert(b.target))
      end
    end
  end
  if not absent(obj.seccomp_profile) then
    local s = obj.seccomp_profile
    if s:sub(1, 1) ~= "/" then
      if not dir then
        return nil, string.format('%s: field "seccomp_profile" must be an absolute path', source)
      end
      s = dir .. "/" .. s
    end
    p.seccomp_profile = s
  end
  return p
end

-- parse(json_text, source, dir) -> profile | nil, err (usage: a bad
-- profile is bad input)
function M.parse(data, source, dir)
  local obj, msg = json.decode(data, source)
  if obj ~= nil and not data:match("^%s*{") then  -- cjson decodes [] and {} alike
    obj, msg = nil, source .. ": a profile must be a JSON object"
  end
  local p
  if obj ~= nil then p, msg = from_table(obj, source, dir) end
  if not p then return nil, err.usage("bad profile %s", msg) end
  return p
end

function M.load_file(path)
  local data, msg = fs.read_file(path, MAX_PROFILE_BYTES)
  if not data then return nil, err.usage("cannot read profile %s", msg) end
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local absdir = fs.realpath(dir) or dir
  return M.parse(data, path, absdir)
end

local function builtin()
  return require("shannot.builtin_profiles")
end

local function user_file(name)
  return paths.profiles_dir() .. "/" .. name .. ".json"
end

local function valid_name(name)
  return name:match("^[%w_.-]+$") and not name:match("^%.")
end

-- available() -> sorted list of profile names (built in and user)
function M.available()
  local seen, out = {}, {}
  for name in pairs(builtin()) do seen[name] = true end
  for _, f in ipairs(fs.readdir(paths.profiles_dir()) or {}) do
    local name = f:match("^(.+)%.json$")
    if name and valid_name(name) then seen[name] = true end
  end
  for name in pairs(seen) do out[#out + 1] = name end
  table.sort(out)
  return out
end

-- load(spec) -> profile | nil, err.  spec: a name (user profiles win over
-- built-in ones of the same name) or a path to a JSON file.
function M.load(spec)
  spec = spec or M.DEFAULT
  if spec:find("/", 1, true) or spec:match("%.json$") then return M.load_file(spec) end
  if not valid_name(spec) then
    return nil, err.usage('invalid profile name "%s"', text.inert(spec))
  end
  if fs.exists(user_file(spec)) then return M.load_file(user_file(spec)) end
  local data = builtin()[spec]
  if not data then
    return nil, err.usage('unknown profile "%s"%s; "shannot profile list" shows them',
      text.inert(spec), text.did_you_mean(spec, M.available()))
  end
  local p, msg = M.parse(data, "built-in profile " .. spec, nil)
  if not p then error(msg.message) end  -- a broken built-in is a bug
  p.builtin = true
  return p
end

-- list() -> {{name, source, description, problem?, overrides_builtin?}}
function M.list()
  local out = {}
  for _, name in ipairs(M.available()) do
    local entry = { name = name }
    local p, e = M.load(name)
    if p then
      entry.source = p.builtin and "built-in" or p.source
      entry.description = p.description
      entry.overrides_builtin = (not p.builtin and builtin()[name] ~= nil) or nil
    else
      entry.source = user_file(name)
      entry.problem = e.message
    end
    out[#out + 1] = entry
  end
  return out
end

-- Binds replaced by the fresh /dev and /proc every sandbox gets.
function M.ignored_binds(p)
  local out = {}
  for _, b in ipairs(p.binds) do
    if b.target == "/proc" or b.target == "/dev" then out[#out + 1] = b end
  end
  return out
end

-- expand(value, getenv) -> value with each ${VAR} replaced (unset: empty)
function M.expand(value, getenv)
  return (value:gsub("%${([%a_][%w_]*)}", function(name) return getenv(name) or "" end))
end

-- Resolves a bare command name through the sandbox's PATH.
function M.search_path(p, getenv)
  local value = p.environment.PATH
  if value then return M.expand(value, getenv or os.getenv) end
  return "/usr/local/bin:/usr/bin:/bin"
end

-- allows(profile, argv0) -> true | false.  An empty list allows anything.
-- A pattern without "/" matches a bare command name; a pattern with "/"
-- matches the absolute path the command resolves to (never a basename,
-- so "ls" does not admit /tmp/evil/ls).
function M.allows(p, argv0, resolved)
  if #p.allowed_commands == 0 then return true end
  local bare = not argv0:find("/", 1, true)
  for _, pattern in ipairs(p.allowed_commands) do
    if pattern:find("/", 1, true) then
      local path = bare and resolved or argv0
      if path and glob.match(pattern, path) then return true end
    elseif bare and glob.match(pattern, argv0) then
      return true
    end
  end
  return false
end

-- to_table(profile) -> the profile as its JSON object (for show/--json)
function M.to_table(p)
  local out = {}
  for _, f in ipairs(FIELDS) do
    local v = p[f[1]]
    if type(v) == "table" and #v == 0 and f[2] ~= "env" then v = json.array({}) end
    out[f[1]] = v
  end
  return out
end

-- The profile, with the config's extra deferred commands ([profile] defer).
local function with_config_defer(name, cfg)
  local p, perr = M.load(name)
  if not p then return nil, perr end
  local extra = cfg and cfg.values.profile.defer or {}
  if #extra > 0 then
    local seen = {}
    for _, n in ipairs(p.defer) do seen[n] = true end
    for _, n in ipairs(extra) do
      if not seen[n] then seen[n] = true; p.defer[#p.defer + 1] = n end
    end
  end
  return p
end

-- for_run(opts, where) -> the profile a run uses (opts.profile, else the
-- target's where.profile, else the default) with the config's deferred
-- commands, opts.network applied (said through opts.warn when given) |
-- nil, err
function M.for_run(opts, where)
  local p, perr = with_config_defer(opts.profile or where.profile, opts.config)
  if not p then return nil, perr end
  if opts.network then
    if #p.unix_sockets > 0 then
      return nil, err.usage('run: --network and profile "%s"\'s unix_sockets do not go together (unix_sockets ' ..
        "needs network isolation)", p.name)
    end
    p.network_isolation = false
    if opts.warn then
      opts.warn("--network: the sandbox reaches the network; what the script sends or fetches now is not " ..
        "captured or reviewed")
    end
  end
  return p
end

return M
