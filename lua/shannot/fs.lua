-- File system helpers over shannot.core.fs: the raw primitives plus the
-- few compositions the rest of shannot needs (which, rmtree).
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

-- read_user_file(path, max, what) -> data | nil (absent) | nil, msg.
-- For files a person writes (config, policy): over max bytes is refused
-- rather than truncated, and msg names the file.
function M.read_user_file(path, max, what)
  local data, msg, code = core.read_file(path, max)
  if data then return data end
  if code == "ENOENT" then return nil end
  if code == "EFBIG" then
    return nil, string.format("%s: larger than %d bytes; not a %s", path, max, what)
  end
  return nil, msg  -- already names the path
end

-- rmtree(path) -> true | nil, msg, code.  Never follows symlinks; makes
-- directories writable first (overlayfs leaves work/work at mode 000).
function M.rmtree(path)
  local st, msg, code = core.lstat(path)
  if not st then
    if code == "ENOENT" then return true end
    return nil, msg, code
  end
  if st.type == "dir" then
    if st.mode & 448 ~= 448 then core.chmod(path, st.mode | 448) end  -- u+rwx
    local names, lmsg, lcode = core.readdir(path)
    if not names then return nil, lmsg, lcode end
    for _, name in ipairs(names) do
      local ok, emsg, ecode = M.rmtree(path .. "/" .. name)
      if not ok then return nil, emsg, ecode end
    end
  end
  return core.remove(path)
end

return M
