-- Which hosts a fleet run goes to (issue 16.1): a target list ("@web",
-- "web1,web2", a remote name, USER@HOST[:PORT]) expanded through the
-- config's [groups.NAME] members (which may name other groups), and
-- Ansible's --limit patterns over the result.  Pure: tables in, names out.
local err = require("shannot.err")
local glob = require("shannot.glob")
local text = require("shannot.text")

local M = {}

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep) do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

-- members(groups, name, path, acc): every host of group name appended
-- to acc.out once (acc.seen), in order; path: the groups being expanded
-- (a cycle is an error)
local function members(groups, name, path, acc)
  for i, on in ipairs(path) do
    if on == name then
      local cycle = table.move(path, i, #path, 1, {})
      cycle[#cycle + 1] = name
      return nil, err.usage('group "%s" includes itself (%s)', text.inert(name),
        text.inert(table.concat(cycle, " -> ")))
    end
  end
  path[#path + 1] = name
  for _, m in ipairs(groups[name].members or {}) do
    local sub = m:match("^@(.+)$") or (groups[m] and m)
    if sub then
      if not groups[sub] then return nil, err.usage('group "%s": no group "%s"', text.inert(name), text.inert(sub)) end
      local ok, e = members(groups, sub, path, acc)
      if not ok then return nil, e end
    elseif not acc.seen[m] then  -- a host listed twice runs once
      acc.seen[m] = true
      acc.out[#acc.out + 1] = m
    end
  end
  path[#path] = nil
  return true
end

-- expand(spec, groups) -> {host...} | nil, err.  spec: comma-separated
-- targets, "@NAME" for a group; groups: {NAME = {members = {...}}}.
function M.expand(spec, groups)
  groups = groups or {}
  local out, seen = {}, {}
  local parts = split(spec or "", ",")
  if #parts == 0 then return nil, err.usage("no target given") end
  for _, t in ipairs(parts) do
    local g = t:match("^@(.+)$")
    if g then
      if not groups[g] then return nil, err.usage('unknown group "%s" ([groups.%s] in config.toml)', text.inert(g),
        text.inert(g)) end
      local ok, e = members(groups, g, {}, { out = out, seen = seen })
      if not ok then return nil, e end
    elseif not seen[t] then
      seen[t] = true
      out[#out + 1] = t
    end
  end
  return out
end

-- The hosts one pattern word names: a group (its members), a host, or
-- the hosts a glob matches.
local function named(word, hosts, groups)
  if groups[word] then
    local out = {}
    local ok, e = members(groups, word, {}, { out = out, seen = {} })
    if not ok then return nil, e end
    local set = {}
    for _, h in ipairs(out) do set[h] = true end
    return set
  end
  local set = {}
  for _, h in ipairs(hosts) do
    if h == word or (word:find("[*?[]") and glob.match(word, h)) then set[h] = true end
  end
  return set
end

-- limit(pattern, hosts, groups) -> the hosts (in their order) the
-- pattern keeps | nil, err.  Ansible's spelling: words joined by ":" or
-- ",", a union; "&word" keeps only those also in word, "!word" drops
-- word's; a word is a host, a group or a glob ("web*").
function M.limit(pattern, hosts, groups)
  groups = groups or {}
  local keep, only, drop = {}, {}, {}
  local words = split((pattern or ""):gsub(",", ":"), ":")
  if #words == 0 then return nil, err.usage("--limit: an empty pattern") end
  local any_plain = false
  for _, w in ipairs(words) do
    local op, word = w:match("^([&!]?)(.+)$")
    local set, e = named(word, hosts, groups)
    if not set then return nil, e end
    if op == "&" then only[#only + 1] = set
    elseif op == "!" then drop[#drop + 1] = set
    else
      any_plain = true
      for h in pairs(set) do keep[h] = true end
    end
  end
  local out = {}
  for _, h in ipairs(hosts) do
    local ok = (keep[h] or not any_plain)
    for _, set in ipairs(only) do ok = ok and set[h] end
    for _, set in ipairs(drop) do ok = ok and not set[h] end
    if ok then out[#out + 1] = h end
  end
  return out
end

return M
