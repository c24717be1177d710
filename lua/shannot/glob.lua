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

-- Where "/**/" may also stand for a single "/" (gitignore's "zero or more
-- directories"), each way: the first MAX_ZERO of them; any further one
-- matches one directory or more only.
local MAX_ZERO = 4
local variants_cache = {}

local function zero_dir_variants(glob)
  local out = { glob }
  local from, n = 1, 0
  while n < MAX_ZERO do
    local i = glob:find("/**/", from, true)
    if not i then break end
    n = n + 1
    local more = {}
    for _, g in ipairs(out) do
      -- the same occurrence in every variant: variants only shorten after it
      local at = i - (#glob - #g)
      more[#more + 1] = g:sub(1, at) .. g:sub(at + 4)
    end
    table.move(more, 1, #more, #out + 1, out)
    from = i + 3
  end
  return out
end

-- match_path(glob, path) -> like match, but "/**/" also matches "/" (as
-- in .gitignore: "/a/**/b" matches "/a/b"), and a leading "**/" any
-- directory, the root included ("**/x" matches "/x").  For capture's
-- ignore list; policy and profile globs keep match's meaning.
function M.match_path(glob, path)
  local list = variants_cache[glob]
  if not list then
    list = zero_dir_variants(glob)
    variants_cache[glob] = list
  end
  for _, g in ipairs(list) do
    if M.match(g, path) then return true end
  end
  return false
end

-- The longest run of plain text in glob (read as to_pattern reads it:
-- not *, ? or a bracket expression): every path match_path finds it to
-- match holds it ("/**/" standing for "/" keeps the text on both sides
-- of it whole).
local function needle(glob)
  local best, from, i = "", 1, 1
  local function piece_ends(at)
    if at - from > #best then best = glob:sub(from, at - 1) end
  end
  while i <= #glob do
    local c = glob:sub(i, i)
    local cls_end = c == "[" and select(2, class(glob, i))
    if c == "*" or c == "?" or cls_end then
      piece_ends(i)
      i = cls_end or i
      from = i + 1
    end
    i = i + 1
  end
  piece_ends(#glob + 1)
  return best
end

-- any_path(list) -> matches(path): whether any glob of list matches path
-- (match_path), each tried only on a path holding its plain text: a
-- capture asks this of every path it walks, and most hold none of it.
function M.any_path(list)
  local needles = {}
  for i, g in ipairs(list) do needles[i] = needle(g) end
  return function(path)
    for i, g in ipairs(list) do
      if path:find(needles[i], 1, true) and M.match_path(g, path) then return true end
    end
    return false
  end
end

return M
