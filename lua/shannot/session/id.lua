-- What a session id looks like, alone, so that the audit log can check
-- one without requiring the session module (which records through it).
local M = {}

-- (its parts each matched where they are: one pattern over the whole id
-- backtracks through the name, ten thousand times a listing)
local STAMP = "^%d%d%d%d%d%d%d%d%-%d%d%d%d%d%d%-"
local NAME = "^[a-z0-9-]+$"
local TAIL = "^%-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]$"

-- valid(s) -> true | false: `^[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{4}$`
function M.valid(id)
  if type(id) ~= "string" then return false end
  local name_len = #id - 8 - 1 - 6 - 1 - 1 - 4
  return name_len >= 1 and name_len <= 40 and id:find(STAMP) ~= nil and id:find(TAIL, -5) ~= nil and
    id:sub(17, -6):find(NAME) ~= nil
end

return M
