-- What a session id looks like, alone, so that the audit log can check
-- one without requiring the session module (which records through it).
local M = {}

local PATTERN = "^%d%d%d%d%d%d%d%d%-%d%d%d%d%d%d%-[a-z0-9-]+%-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]$"

-- valid(s) -> true | false: `^[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{4}$`
function M.valid(id)
  if type(id) ~= "string" or not id:match(PATTERN) then return false end
  local name_len = #id - 8 - 1 - 6 - 1 - 1 - 4
  return name_len >= 1 and name_len <= 40
end

return M
