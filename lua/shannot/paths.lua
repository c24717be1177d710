-- Where shannot keeps things (XDG base directories).
local sys = require("shannot.core.sys")

local M = {}

-- under(path, dir) -> whether path is dir or lies below it, by name
-- ("/" holds every absolute path)
function M.under(path, dir)
  return dir == "/" or path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- below_one_of(path, set) -> whether a directory above path (not path
-- itself, not "/") is a key of set
function M.below_one_of(path, set)
  local dir = path:match("^(.*)/[^/]*$")
  while dir and dir ~= "" do
    if set[dir] then return true end
    dir = dir:match("^(.*)/[^/]*$")
  end
  return false
end

-- join(dir, name) -> the path of name in dir ("/" without a second slash)
function M.join(dir, name)
  return dir == "/" and "/" .. name or dir .. "/" .. name
end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
end

function M.home()
  return nonempty(os.getenv("HOME")) or sys.ids().home or "/"
end

function M.config_dir()
  local base = nonempty(os.getenv("XDG_CONFIG_HOME")) or (M.home() .. "/.config")
  return base .. "/shannot"
end

function M.data_dir()
  local base = nonempty(os.getenv("XDG_DATA_HOME")) or (M.home() .. "/.local/share")
  return base .. "/shannot"
end

function M.profiles_dir()
  return M.config_dir() .. "/profiles"
end

function M.config_file()
  return nonempty(os.getenv("SHANNOT_CONFIG")) or (M.config_dir() .. "/config.toml")
end

-- system_config_files() -> the system-wide config files, read below the
-- user's, the least important first: $SHANNOT_SYSCONFDIR (default /etc)
-- /shannot/config.toml, then DIR/shannot/config.toml of each absolute
-- $XDG_CONFIG_DIRS entry (default /etc/xdg), the first entry last: it
-- wins, as the XDG spec orders them.
function M.system_config_files()
  local out, seen = {}, {}
  local function add(path)
    if not seen[path] then seen[path] = true; out[#out + 1] = path end
  end
  add((nonempty(os.getenv("SHANNOT_SYSCONFDIR")) or "/etc") .. "/shannot/config.toml")
  local dirs = {}
  for d in (nonempty(os.getenv("XDG_CONFIG_DIRS")) or "/etc/xdg"):gmatch("[^:]+") do
    if d:sub(1, 1) == "/" then dirs[#dirs + 1] = d:gsub("/+$", "") end
  end
  for i = #dirs, 1, -1 do add(dirs[i] .. "/shannot/config.toml") end
  return out
end

return M
