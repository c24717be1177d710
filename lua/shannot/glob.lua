-- Shell-style globs (*, ?, [...]) as in fnmatch(3) with FNM_PATHNAME: a
-- wildcard never matches "/"; only "**" does (any depth, as in gitignore).
local M = {}

local cache = {}  -- glob -> Lua pattern; profiles hold few globs

local function class(glob, i)
  -- Returns the Lua class for the bracket expression at i, and its end.
  local j = i + 1
  local negate = glob:sub(j, j) == "!" or glob:sub(j, j) == "^"
  if negate then j = j + 1 end
  local body_start = j
  if glob:sub(j, j) == "]" then j = j + 1 end
  while j <= #glob and glob:sub(j, j) ~= "]" do j = j + 1 end
  if j > #glob then return nil end
  local body = glob:sub(body_start, j - 1):gsub("[%%%]%^]", "%%%0")
  body = body:gsub("(%w)%%?%-(%w)", "%1-%2")
  return "[" .. (negate and "^/" or "") .. body .. "]", j
end

function M.to_pattern(glob)
  local out, i = { "^" }, 1
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == "*" and glob:sub(i + 1, i + 1) == "*" then
      out[#out + 1] = ".*"
      i = i + 1
    elseif c == "*" then
      out[#out + 1] = "[^/]*"
    elseif c == "?" then
      out[#out + 1] = "[^/]"
    elseif c == "[" and class(glob, i) then
      local cls, j = class(glob, i)
      out[#out + 1] = cls
      i = j
    else
      out[#out + 1] = c:gsub("%W", "%%%0")
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

function M.match(glob, s)
  local pat = cache[glob]
  if not pat then
    pat = M.to_pattern(glob)
    cache[glob] = pat
  end
  return s:find(pat) ~= nil
end

return M
