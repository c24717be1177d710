-- The content-addressed blob store (DESIGN §3): shannot.core.store's
-- functions, plus valid_hash and the size up to which put_file and
-- put_string consider compressing (the C default, restated here).
local core = require("shannot.core.store")

local M = {}
for name, f in pairs(core) do M[name] = f end

M.DEFAULT_COMPRESS_MAX = 1024 * 1024

-- valid_hash(s) -> true when s names a blob: 64 lowercase hex digits
function M.valid_hash(s)
  return type(s) == "string" and #s == 64 and s:find("^[0-9a-f]+$") ~= nil
end

return M
