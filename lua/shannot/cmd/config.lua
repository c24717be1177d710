-- shannot config show [--json] | check | path
local cli = require("shannot.cli")
local config = require("shannot.config")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local policyfile = require("shannot.policy.file")
local sys = require("shannot.core.sys")
local text = require("shannot.text")

local M = {
  usage = "shannot config show [--json]\nshannot config check\nshannot config path",
  help = [[
shannot reads the system files /etc/shannot/config.toml ($SHANNOT_SYSCONFDIR
instead of /etc) and shannot/config.toml in each of $XDG_CONFIG_DIRS
(default /etc/xdg; the first one wins), then ~/.config/shannot/config.toml
($XDG_CONFIG_HOME, or the file named by $SHANNOT_CONFIG), which wins over
them, then .shannot/config.toml in the current
directory or the nearest parent (never above your home, never through a
directory someone else owns).  Pattern lists ([profile] auto_approve /
always_deny / defer, [policy] deny / review / auto_approve) only grow.
Lua policy files: ~/.config/shannot/policy.lua and .shannot/policy.lua,
each returning function(op, ctx) -> decision, reason (or a list of such
functions).

[limits] bounds every sandbox: processes (default 4096), memory ("50%"
of RAM, or a size such as "4G"), staging (what a capture may write,
default "8G") and mcp_sandboxes (sandboxes an MCP server runs at once,
default 4).

[mcp] hide lists absolute path globs that the MCP server's read-only
runs (run_command) hide, besides its built-in list (shadow files, SSH
host keys and keys, /root, /etc/ssl/private, shannot's data directory);
"shannot://status" shows them and what they match.

A project file (.shannot/) may have been put there by someone else, so it
is read only when it and its directory are yours (or root's) and nobody
else may write them (otherwise: an error naming it), and it may only make
things stricter: [profile] always_deny and defer, [policy] deny and
review, more [mcp] hide globs, a shorter [session] ttl, lower [limits], and [executor.local]
profile naming a profile that captures.  Anything else it sets (bwrap_path, executors,
remotes, [audit], approve lists) is ignored, with a warning; "check"
lists it.  A project policy.lua may deny or ask for review; its approve
decisions are ignored.

  show     the effective configuration (--json: values and their sources)
  check    validates every file and prints the effective configuration
           with where each value came from
  path     the files shannot looks at, and which of them exist

A malformed file is an error (exit 2) naming the file, line and column;
shannot never falls back to defaults behind your back.]],
  options = { ["--json"] = {} },
  needs_config = false,  -- reports errors in the config itself
}

-- Whether the value at key name is a list (a growing one, or any array
-- of the file, [groups.NAME] members say).
local function is_list(v, name)
  return config.LIST_KEYS[name] or (type(v) == "table" and getmetatable(v) == require("shannot.toml").array_mt)
end

-- Sorted dotted keys of the leaves of a nested table.
local function flatten(t, prefix, out)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local part = require("shannot.toml").key_text(k)  -- "web.prod" stays one key
    local v, name = t[k], prefix == "" and part or (prefix .. "." .. part)
    if type(v) == "table" and not is_list(v, name) then
      flatten(v, name, out)
    else
      out[#out + 1] = { key = name, value = v }
    end
  end
  return out
end

local function toml_value(v)
  if type(v) == "string" then return json.encode(v) end
  if type(v) == "table" then
    local items = {}
    for i, x in ipairs(v) do items[i] = toml_value(x) end
    return "[" .. table.concat(items, ", ") .. "]"
  end
  return tostring(v)
end

-- One line per value; lists one item per line, each with its source.
local function render(cfg, with_sources)
  local lines = {}
  for _, leaf in ipairs(flatten(cfg.values, "", {})) do
    local v = leaf.value
    if type(v) == "table" and #v > 0 then  -- a list, one item per line
      lines[#lines + 1] = leaf.key .. " = ["
      for i, x in ipairs(v) do
        local item = "  " .. toml_value(x) .. ","
        if with_sources then item = string.format("%-40s # %s", item, config.source(cfg, leaf.key, i)) end
        lines[#lines + 1] = item
      end
      lines[#lines + 1] = "]"
    else
      local line = leaf.key .. " = " .. toml_value(v)
      if with_sources then line = string.format("%-40s # %s", line, config.source(cfg, leaf.key)) end
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, "\n")
end

local function sources(cfg)
  local out = {}
  for _, leaf in ipairs(flatten(cfg.values, "", {})) do
    if type(leaf.value) == "table" then
      local s = {}
      for i = 1, #leaf.value do s[i] = config.source(cfg, leaf.key, i) end
      out[leaf.key] = json.array(s)
    else
      out[leaf.key] = config.source(cfg, leaf.key)
    end
  end
  return out
end

local function as_json_values(v, name)
  if type(v) ~= "table" then return v end
  if is_list(v, name) then return json.array(table.move(v, 1, #v, 1, {})) end  -- a copy: v keeps its own mark
  local out = {}
  for k, x in pairs(v) do out[k] = as_json_values(x, name == "" and k or (name .. "." .. k)) end
  return out
end

local function show(opts)
  local cfg, e = config.load()
  if not cfg then return nil, e end
  if opts.json then
    cli.out(json.encode({ config = as_json_values(cfg.values, ""), sources = sources(cfg) }, { indent = "  " }), "\n")
  else
    cli.out(text.inert_lines(render(cfg, false)), "\n")
  end
  return const.EXIT.OK
end

local function file_line(label, path, exists)
  return string.format("%-9s %s%s", label, path, exists and "" or " (not present)")
end

local function path()
  local f = config.files(sys.getcwd() or "/")
  f.user_exists = fs.exists(f.user)
  f.project_exists = f.project ~= nil and fs.exists(f.project)
  local lines = {}
  for _, p in ipairs(f.system) do lines[#lines + 1] = file_line("system", p, fs.exists(p)) end
  lines[#lines + 1] = file_line("config", f.user, f.user_exists)
  if f.project then lines[#lines + 1] = file_line("project", f.project, f.project_exists) end
  for _, p in ipairs(f.policies) do
    lines[#lines + 1] = file_line("policy", p, fs.exists(p))
  end
  cli.out(text.inert_lines(table.concat(lines, "\n")), "\n")  -- a project's path is anyone's name
  return const.EXIT.OK
end

local function check()
  local cfg, e = config.load()
  if not cfg then return nil, e end
  local policies, perr = policyfile.load_all(cfg.files)
  if not policies then return nil, perr end
  cli.out("# effective configuration; each value's source after #\n", text.inert_lines(render(cfg, true)), "\n")
  for _, p in ipairs(policies) do
    cli.out(string.format("# policy %s: %d rule%s%s\n", text.inert(p.path), #p.rules, #p.rules == 1 and "" or "s",
      p.project and " (a project's: its approve decisions are ignored)" or ""))
  end
  for _, r in ipairs(cfg.refused) do
    cli.out(text.inert(string.format("# refused %s = %s  # %s: %s", r.key, toml_value(r.value), r.source, r.why)), "\n")
  end
  local checked = table.move(cfg.files.system_present, 1, #cfg.files.system_present, 1, {})
  if cfg.files.user_exists then checked[#checked + 1] = cfg.files.user end
  if cfg.files.project_exists then checked[#checked + 1] = cfg.files.project end
  for _, p in ipairs(policies) do checked[#checked + 1] = p.path end
  cli.warn("ok: %s", #checked > 0 and table.concat(checked, ", ") or "no files; built-in defaults only")
  return const.EXIT.OK
end

function M.run(opts, args)
  local sub = args[1]
  if sub == "show" then return show(opts) end
  if sub == "check" then return check() end
  if sub == "path" then return path() end
  if sub == nil then return nil, err.usage("config: what to do? usage: %s", M.usage:gsub("\n", " | ")) end
  return nil, err.usage('config: unknown subcommand "%s"%s', text.inert(sub),
    text.did_you_mean(sub, { "show", "check", "path" }))
end

return M
