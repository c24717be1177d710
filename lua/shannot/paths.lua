-- Where shannot keeps things (XDG base directories).
local sys = require("shannot.core.sys")

local M = {}

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

return M
