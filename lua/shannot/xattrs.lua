-- Which extended attributes shannot carries from a capture to the host
-- and back, and their form in a session: {name = value as hex}, JSON-safe
-- (ACLs and capabilities are binary).  The script's own (user.*,
-- trusted.*), file capabilities and POSIX ACLs; never the overlay's own,
-- nor what the kernel or a security module keeps (security.selinux ...).
local M = {}

function M.kept(name)
  if name:match("^user%.overlay%.") or name:match("^trusted%.overlay%.") then return false end
  return name:match("^user%.") ~= nil or name:match("^trusted%.") ~= nil or name == "security.capability"
    or name == "system.posix_acl_access" or name == "system.posix_acl_default"
end

function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- kept_of(all) -> {name = hex value} of the kept ones | nil (none)
function M.kept_of(all)
  local out
  for name, value in pairs(all or {}) do
    if M.kept(name) then
      out = out or {}
      out[name] = M.hex(value)
    end
  end
  return out
end

-- same(a, b): the same attributes with the same values (nil: none)
function M.same(a, b)
  for k, v in pairs(a or {}) do if (b or {})[k] ~= v then return false end end
  for k in pairs(b or {}) do if (a or {})[k] == nil then return false end end
  return true
end

-- names(x) -> the names, sorted (for digests and descriptions)
function M.names(x)
  local out = {}
  for k in pairs(x or {}) do out[#out + 1] = k end
  table.sort(out)
  return out
end

return M
