-- Ansible inventories read as they are (issue 16.1), INI format here:
-- [group] host lines with host vars, [group:children], [group:vars];
-- "all" and "ungrouped" as Ansible has them.  What shannot takes of the
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
  for name in pairs(inv.groups) do
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
