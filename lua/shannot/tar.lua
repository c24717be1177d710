-- Reading tar streams over shannot.core.tar (see src/tar.c): open(path |
-- fd) -> Reader, whose next(), skip(), extract(dest [, mode]) and close()
-- are the raw primitives, plus an iterator.
local core = require("shannot.core.tar")

local M = setmetatable({}, { __index = core })

-- entries(reader) -> iterator for a generic for: each step gives an
-- entry; a failure gives false, msg, code once, then the loop ends.
--   for e, msg, code in tar.entries(r) do
--     if not e then return nil, msg, code end
--     ...
--   end
function M.entries(reader)
  local done = false
  return function()
    if done then return nil end
    local e, msg, code = reader:next()
    if e then return e end
    done = true
    if e == false then return nil end
    return false, msg, code
  end
end

return M
