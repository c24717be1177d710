-- Ansible inventories read as they are (issue 16.1), INI format (
-- [group] host lines with host vars, [group:children], [group:vars]) and
-- YAML (groups with hosts, children and vars maps, read by Debian's
-- lyaml); "all" and "ungrouped" as Ansible has them.  What shannot takes of the
-- vars: ansible_host, ansible_port, ansible_user,
-- ansible_ssh_private_key_file; the rest is kept, unused.  A host's own
-- vars win over its groups', a child group's over its parent's.
local err = require("shannot.err")
local text = require("shannot.text")

local M = {}

local function bad(file, line, fmt, ...)
  return nil, err.usage("%s:%d: " .. fmt, text.inert(file), line, ...)
end

-- The words of a line: split at blanks; a value in quotes keeps its
-- blanks (key="a b").  nil, why for an unclosed quote.
local function words_of(line)
  local out, i = {}, 1
  while i <= #line do
    local ws = line:match("^%s+", i)
    if ws then i = i + #ws end
    if i > #line then break end
    local word = ""
    while i <= #line and not line:sub(i, i):match("%s") do
      local c = line:sub(i, i)
      if c == '"' or c == "'" then
        local close = line:find(c, i + 1, true)
        if not close then return nil, "an unclosed quote" end
        word, i = word .. line:sub(i + 1, close - 1), close + 1
      else
        word, i = word .. c, i + 1
      end
    end
    out[#out + 1] = word
  end
  return out
end

-- key=value words of a line (values may be quoted, as Ansible allows)
local function vars_of(words, first, file, line)
  local vars = {}
  for i = first, #words do
    local k, v = words[i]:match("^([%w_]+)=(.*)$")
    if not k then return bad(file, line, 'expected key=value, found "%s"', text.inert(words[i])) end
    vars[k] = v
  end
  return vars
end

local function group(inv, name)
  local g = inv.groups[name]
  if not g then
    g = { hosts = {}, children = {}, vars = {} }
    inv.groups[name] = g
  end
  return g
end

-- parse_ini(data, file) -> {hosts = {NAME = {vars}}, groups = {NAME =
-- {hosts = {...}, children = {...}, vars = {}}}} | nil, err (FILE:LINE)
function M.parse_ini(data, file)
  local inv = { hosts = {}, groups = {}, order = {} }
  group(inv, "all")
  local section, kind = "ungrouped", "hosts"
  local n = 0
  for raw in (data .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local line = raw:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line == "" or line:match("^[#;]") then  -- luacheck: ignore 542
      -- a comment or a blank line
    elseif line:match("^%[") then
      local name, suffix = line:match("^%[([^%]:]+):?([^%]]*)%]$")
      if not name or not ({ [""] = true, children = true, vars = true })[suffix] then
        return bad(file, n, 'a section header: "%s"', text.inert(line))
      end
      section, kind = name, suffix == "" and "hosts" or suffix
      group(inv, section)
    else
      local words, serr = words_of(line)
      if not words then return bad(file, n, "%s", serr) end
      if kind == "vars" then
        local v, verr = vars_of(words, 1, file, n)
        if not v then return nil, verr end
        for k, val in pairs(v) do group(inv, section).vars[k] = val end
      elseif kind == "children" then
        if #words ~= 1 then return bad(file, n, "a child group is one name") end
        local c = group(inv, section).children
        c[#c + 1] = words[1]
        group(inv, words[1])
      else
        local host = words[1]
        if host:find("[%[%]]") then return bad(file, n, 'host ranges ("%s") are not read', text.inert(host)) end
        local v, verr = vars_of(words, 2, file, n)
        if not v then return nil, verr end
        if not inv.hosts[host] then
          inv.hosts[host] = {}
          inv.order[#inv.order + 1] = host
        end
        for k, val in pairs(v) do inv.hosts[host][k] = val end
        local g = group(inv, section).hosts
        g[#g + 1] = host
      end
    end
  end
  return M.check(inv, file)
end

-- lyaml, from where this Lua's installation keeps it (Debian's lua-yaml):
-- loaded on first use only, and never from a relative directory.
local function lyaml()
  local function absolute(list)
    local out = {}
    for part in list:gmatch("[^;]+") do
      if part:sub(1, 1) == "/" then out[#out + 1] = part end
    end
    return table.concat(out, ";")
  end
  local saved_path, saved_cpath = package.path, package.cpath
  package.path = absolute(package.system_path or "") .. ";" .. saved_path
  package.cpath = absolute(package.system_cpath or "") .. ";" .. saved_cpath
  local ok, mod = pcall(require, "lyaml")
  package.path, package.cpath = saved_path, saved_cpath
  if not ok then
    return nil, err.env("YAML inventories need lyaml (apt-get install lua-yaml): %s", (tostring(mod):match("[^\n]*")))
  end
  return mod
end

-- Names in a stable order: YAML maps have none once read, so hosts and
-- groups go by name, digits compared as numbers (web2 before web10).
local function natural_less(a, b)
  local function key(s) return (s:gsub("%d+", function(d) return string.format("%012d", #d > 12 and 0 or d) end)) end
  local ka, kb = key(a), key(b)
  if ka ~= kb then return ka < kb end
  return a < b
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out, function(a, b) return natural_less(tostring(a), tostring(b)) end)
  return out
end

-- One YAML group's definition into inv (children first defined here).
local function yaml_group(inv, name, def, file)
  local g = group(inv, name)
  if def == nil or def == inv.null then return true end
  if type(def) ~= "table" then
    return nil, err.usage('%s: group "%s" must be a map', text.inert(file), text.inert(name))
  end
  for _, key in ipairs(sorted_keys(def)) do
    if key ~= "hosts" and key ~= "children" and key ~= "vars" then
      return nil, err.usage('%s: group "%s": unknown key "%s" (hosts, children, vars)', text.inert(file),
        text.inert(name), text.inert(tostring(key)))
    end
  end
  local function map_of(key)
    local v = def[key]
    if v == nil or v == inv.null then return {} end
    if type(v) ~= "table" or (#v > 0) then
      return nil, err.usage('%s: group "%s": %s must be a map', text.inert(file), text.inert(name), key)
    end
    return v
  end
  local hosts, herr = map_of("hosts")
  if not hosts then return nil, herr end
  for _, host in ipairs(sorted_keys(hosts)) do
    host = tostring(host)
    if host:find("[%[%]]") then
      return nil, err.usage('%s: host ranges ("%s") are not read', text.inert(file), text.inert(host))
    end
    if not inv.hosts[host] then
      inv.hosts[host] = {}
      inv.order[#inv.order + 1] = host
    end
    local vars = hosts[host]
    if vars ~= nil and vars ~= inv.null then
      if type(vars) ~= "table" then
        return nil, err.usage('%s: host "%s": its vars must be a map', text.inert(file), text.inert(host))
      end
      for k, v in pairs(vars) do inv.hosts[host][tostring(k)] = tostring(v) end
    end
    g.hosts[#g.hosts + 1] = host
  end
  local vars, verr = map_of("vars")
  if not vars then return nil, verr end
  for k, v in pairs(vars) do g.vars[tostring(k)] = tostring(v) end
  local children, cerr = map_of("children")
  if not children then return nil, cerr end
  for _, child in ipairs(sorted_keys(children)) do
    g.children[#g.children + 1] = tostring(child)
    local ok, e = yaml_group(inv, tostring(child), children[child], file)
    if not ok then return nil, e end
  end
  return true
end

-- parse_yaml(data, file) -> the same inventory as parse_ini | nil, err
-- (FILE:LINE of a syntax error, as lyaml says it)
function M.parse_yaml(data, file)
  local y, yerr = lyaml()
  if not y then return nil, yerr end
  local ok, doc = pcall(y.load, data)
  if not ok then
    local line, msg = tostring(doc):match("^(%d+):%d+: (.*)$")
    return bad(file, tonumber(line) or 0, "%s", text.inert(msg or tostring(doc)))
  end
  local inv = { hosts = {}, groups = {}, order = {}, null = y.null }
  group(inv, "all")
  if doc == nil or doc == y.null then return M.check(inv, file) end
  if type(doc) ~= "table" or #doc > 0 then
    return nil, err.usage("%s: not an inventory (a map of groups)", text.inert(file))
  end
  for _, name in ipairs(sorted_keys(doc)) do
    local gok, gerr = yaml_group(inv, tostring(name), doc[name], file)
    if not gok then return nil, gerr end
  end
  inv.null = nil
  return M.check(inv, file)
end

-- load(file) -> inventory | nil, err: INI or YAML, told by the name
-- (.yml, .yaml) or, failing that, by a first line of "---" or "NAME:"
function M.load(file)
  local data, msg = require("shannot.fs").read_file(file, 16 * 1024 * 1024)
  if not data then return nil, err.usage("cannot read the inventory %s", msg) end
  local first = data:match("^%s*([^\n]*)") or ""
  local yaml = file:match("%.ya?ml$") or first:match("^%-%-%-") or first:match("^[%w_.-]+:%s*$")
  if yaml then return M.parse_yaml(data, file) end
  return M.parse_ini(data, file)
end

-- check(inv, file): every child group defined, none including itself;
-- ungrouped = hosts of no other group; all = every host.
function M.check(inv, file)
  local function visit(name, path)
    for _, p in ipairs(path) do
      if p == name then
        return nil, err.usage('%s: group "%s" includes itself (%s -> %s)', text.inert(file), text.inert(name),
          text.inert(table.concat(path, " -> ")), text.inert(name))
      end
    end
    path[#path + 1] = name
    for _, c in ipairs(inv.groups[name].children) do
      local ok, e = visit(c, path)
      if not ok then return nil, e end
    end
    path[#path] = nil
    return true
  end
  for _, name in ipairs(sorted_keys(inv.groups)) do  -- the same error every time
    local ok, e = visit(name, {})
    if not ok then return nil, e end
  end
  local grouped = {}
  for name, g in pairs(inv.groups) do
    if name ~= "ungrouped" and name ~= "all" then
      for _, h in ipairs(g.hosts) do grouped[h] = true end
    end
  end
  local ungrouped = group(inv, "ungrouped").hosts
  local listed = {}
  for _, h in ipairs(ungrouped) do listed[h] = true end
  for _, h in ipairs(inv.order) do
    if not grouped[h] and not listed[h] then ungrouped[#ungrouped + 1] = h end
  end
  inv.groups.all.hosts = table.move(inv.order, 1, #inv.order, 1, {})
  return inv
end

-- hosts_of(inv, name) -> the hosts of a group with its children's, in
-- inventory order, each once
function M.hosts_of(inv, name)
  local set = {}
  local function add(gname)
    local g = inv.groups[gname]
    for _, h in ipairs(g.hosts) do set[h] = true end
    for _, c in ipairs(g.children) do add(c) end
  end
  add(name)
  local out = {}
  for _, h in ipairs(inv.order) do if set[h] then out[#out + 1] = h end end
  return out
end

-- target(inv, host) -> {name, host, port, user, key_file}: the host's
-- connection, its vars over its groups' (a child's over its parent's,
-- "all" least)
function M.target(inv, host)
  local depth = {}
  local function walk(gname, d)
    if (depth[gname] or -1) >= d then return end
    depth[gname] = d
    for _, c in ipairs(inv.groups[gname].children) do walk(c, d + 1) end
  end
  walk("all", 0)
  for name in pairs(inv.groups) do walk(name, 1) end
  local applying = {}
  for name in pairs(inv.groups) do
    local has = name == "all"
    for _, h in ipairs(M.hosts_of(inv, name)) do has = has or h == host end
    if has then applying[#applying + 1] = name end
  end
  table.sort(applying, function(a, b)
    if depth[a] ~= depth[b] then return depth[a] < depth[b] end
    return a < b
  end)
  local vars = {}
  for _, name in ipairs(applying) do
    for k, v in pairs(inv.groups[name].vars) do vars[k] = v end
  end
  for k, v in pairs(inv.hosts[host] or {}) do vars[k] = v end
  return { name = host, host = vars.ansible_host or host, port = tonumber(vars.ansible_port),
    user = vars.ansible_user, key_file = vars.ansible_ssh_private_key_file }
end

return M
