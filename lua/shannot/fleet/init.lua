-- Fleets (issue 16): which hosts a target list names, through the
-- config's [groups] and an Ansible inventory, each host resolved to the
-- connection a capture opens.  Capture, review and apply of a fleet run
-- live in fleet/capture.lua, fleet/variants.lua and fleet/apply.lua.
local err = require("shannot.err")
-- loaded for a fleet: is_fleet alone (every run asks it) needs neither
local function remote() return require("shannot.remote") end
local function targets() return require("shannot.fleet.targets") end
local text = require("shannot.text")

local M = {}

-- is_fleet(spec, opts) -> whether a --target (with --limit or
-- --inventory) names a fleet rather than one host
function M.is_fleet(spec, opts)
  opts = opts or {}
  return (spec ~= nil and (spec:find("^@") ~= nil or spec:find(",", 1, true) ~= nil))
    or opts.limit ~= nil or opts.inventory ~= nil
end

-- The inventory a run reads: --inventory, else the config's, else none.
local function inventory_of(opts, cfg)
  local file = opts.inventory or (cfg and cfg.values.inventory)
  if not file then return nil end
  return require("shannot.fleet.inventory").load(file)
end

-- Every group a target may name: the config's [groups], then the
-- inventory's (a config group of the same name wins).
local function all_groups(cfg, inv)
  local groups = {}
  if inv then
    local inventory = require("shannot.fleet.inventory")
    for name in pairs(inv.groups) do groups[name] = { members = inventory.hosts_of(inv, name) } end
  end
  for name, g in pairs(cfg and cfg.values.groups or {}) do groups[name] = g end
  return groups
end

-- One host name to its connection: an inventory host, a configured
-- remote, or USER@HOST[:PORT].
local function connection(name, inv, cfg)
  if inv and inv.hosts[name] and not remote().configured(name, cfg) then
    return require("shannot.fleet.inventory").target(inv, name)
  end
  return remote().resolve(name, cfg)
end

-- hosts(spec, cfg, opts) -> {target...} | nil, err.  spec: "@group",
-- "a,b", ...; opts: inventory (a file), limit (an Ansible pattern).
-- Each target as remote.resolve gives it (name, host, port, user,
-- key_file, ...); a host named twice, or two names for the same
-- USER@HOST:PORT, runs once.
function M.hosts(spec, cfg, opts)
  opts = opts or {}
  local inv, ierr = inventory_of(opts, cfg)
  if ierr then return nil, ierr end
  local groups = all_groups(cfg, inv)
  if spec == nil then
    if not inv then return nil, err.usage("no target: give --target @GROUP, a list, or --inventory FILE") end
    spec = "@all"
  end
  local names, eerr = targets().expand(spec, groups)
  if not names then return nil, eerr end
  if opts.limit then
    names, eerr = targets().limit(opts.limit, names, groups)
    if not names then return nil, eerr end
  end
  if #names == 0 then
    return nil, err.usage('no host left: "%s"%s names none', text.inert(spec),
      opts.limit and (' with --limit "' .. text.inert(opts.limit) .. '"') or "")
  end
  local out, seen = {}, {}
  for _, name in ipairs(names) do
    local t, terr = connection(name, inv, cfg)
    if not t then return nil, terr end
    t.name = name
    local addr = remote().display(t)
    if not seen[addr] then
      seen[addr] = name
      out[#out + 1] = t
    end
  end
  return out
end

return M
