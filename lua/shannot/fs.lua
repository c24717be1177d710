-- File system helpers over shannot.core.fs: the raw primitives (rmtree
-- among them) plus the few compositions the rest of shannot needs.
local core = require("shannot.core.fs")

local M = setmetatable({}, { __index = core })

function M.exists(path)
  return core.lstat(path) ~= nil
end

function M.is_dir(path)
  local st = core.stat(path)
  return st ~= nil and st.type == "dir"
end

-- which(name, PATH) -> absolute path of an executable file | nil
function M.which(name, search_path)
  if name:find("/", 1, true) then
    local st = core.stat(name)
    if st and st.type == "file" and st.mode & 73 ~= 0 then return name end
    return nil
  end
  for dir in (search_path or ""):gmatch("[^:]+") do
    local candidate = dir .. "/" .. name
    local st = core.stat(candidate)
    if st and st.type == "file" and st.mode & 73 ~= 0 then  -- 73 = 0111
      return candidate
    end
  end
  return nil
end

-- read_user_file(path, max, what) -> data | nil (absent) | nil, msg, code.
-- For files a person writes (config, policy): over max bytes is refused
-- rather than truncated, and msg names the file.
function M.read_user_file(path, max, what)
  local data, msg, code = core.read_file(path, max)
  if data then return data end
  if code == "ENOENT" then return nil end
  if code == "EFBIG" then
    return nil, string.format("%s: larger than %d bytes; not a %s", path, max, what)
  end
  return nil, msg, code  -- msg already names the path
end

return M
