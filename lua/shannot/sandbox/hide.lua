-- Hidden paths (run --hide): absolute globs expanded where the sandbox
-- runs, each match resolved to its real path (a symlink hides its target),
-- then covered inside the sandbox: a file by an empty read-only file, a
-- directory by an empty read-only tmpfs (sandbox/bwrap.lua's hide_args).
-- The file system is a table of functions, so a remote host's is read
-- over SFTP by the same code as this machine's.
local glob = require("shannot.glob")
local paths = require("shannot.paths")

local M = {}

-- More matches than this refuse the run: a glob that wide is a mistake,
-- and leaving some of it visible would be worse.
M.MAX_MATCHES = 4096
M.MAX_CANDIDATES = 65536
local MAX_LINKS = 40

-- check(pattern) -> pattern | nil, "what it must be": an absolute glob of
-- whole components (*, ?, [...] within one), no "." or "..", not "/".
function M.check(pattern)
  if type(pattern) ~= "string" then return nil, "a string" end
  if pattern:sub(1, 1) ~= "/" then return nil, "an absolute path glob" end
  if pattern:find("\0", 1, true) then return nil, "a path glob without NUL" end
  if pattern:find("**", 1, true) then return nil, "a path glob without ** (one directory level per *)" end
  local parts = 0
  for part in pattern:gmatch("[^/]+") do
    if part == "." or part == ".." then return nil, 'a path glob without "." or ".." components' end
    parts = parts + 1
  end
  if parts == 0 then return nil, 'a path glob below "/"' end
  return pattern
end

local function wild(part)
  return part:find("[%*%?%[]") ~= nil
end

-- realpath by lstat and readlink alone (SFTP has no realpath): the path
-- with every symlink resolved, or nil when some part does not exist.
local function resolve(api, path)
  local todo = {}
  for part in path:gmatch("[^/]+") do todo[#todo + 1] = part end
  local out, links, i = {}, 0, 1
  while i <= #todo do
    local part = todo[i]
    if part == ".." then
      out[#out] = nil
    elseif part ~= "." then
      local candidate = "/" .. table.concat(out, "/") .. (#out > 0 and "/" or "") .. part
      local st = api.lstat(candidate)
      if not st then return nil end
      if st.type == "link" then
        links = links + 1
        local target = links <= MAX_LINKS and api.readlink(candidate)
        if not target then return nil end
        local rest = {}
        for p in target:gmatch("[^/]+") do rest[#rest + 1] = p end
        table.move(todo, i + 1, #todo, #rest + 1, rest)
        if target:sub(1, 1) == "/" then out = {} end
        todo, i = rest, 0
      else
        out[#out + 1] = part
      end
    end
    i = i + 1
  end
  return "/" .. table.concat(out, "/")
end

-- The file system where the sandbox runs: this machine's.
M.LOCAL = {
  readdir = function(dir) return require("shannot.fs").readdir(dir) end,
  lstat = function(path) return require("shannot.fs").lstat(path) end,
  readlink = function(path) return require("shannot.fs").readlink(path) end,
  realpath = function(path) return require("shannot.fs").realpath(path) end,
}

-- over_sftp(sftp) -> the same for a remote host, read over SFTP
function M.over_sftp(sftp)
  return {
    readdir = function(dir) return sftp:readdir(dir) end,
    lstat = function(path) return sftp:lstat(path) end,
    readlink = function(path) return sftp:readlink(path) end,
  }
end

-- The names one glob matches, unresolved (a symlink on the way is
-- followed by readdir; the final names are resolved by the caller).
local function names(api, pattern)
  local found = { "" }
  for part in pattern:gmatch("[^/]+") do
    local nxt = {}
    for _, dir in ipairs(found) do
      if wild(part) then
        local list = api.readdir(dir == "" and "/" or dir) or {}
        table.sort(list)
        for _, name in ipairs(list) do
          if name ~= "." and name ~= ".." and glob.match(part, name) then nxt[#nxt + 1] = dir .. "/" .. name end
        end
      elseif api.lstat(dir .. "/" .. part) then  -- a name that is not there matches nothing
        nxt[#nxt + 1] = dir .. "/" .. part
      end
      -- what a level may hold on the way (thousands of homes under
      -- /home/*/.ssh); the matches themselves are counted by expand
      if #nxt > M.MAX_CANDIDATES then return nil end
    end
    found = nxt
  end
  return found
end

-- expand(patterns [, api]) -> {{path =, dir =, pattern =, name =}...},
-- sorted, none below another hidden directory | nil, why.  path: the
-- match resolved (no symlink; name: as the glob matched it, when that
-- differs), dir: whether it is a directory.  A pattern matching nothing
-- adds nothing; "/" is never hidden.
function M.expand(patterns, api)
  api = api or M.LOCAL
  local real = api.realpath or function(path) return resolve(api, path) end
  local by_path, list = {}, {}
  for _, pattern in ipairs(patterns) do
    local found = names(api, pattern)
    if not found then
      return nil, string.format("hide: %s passes more than %d paths on its way", pattern, M.MAX_CANDIDATES)
    end
    for _, name in ipairs(found) do
      local path = real(name)
      local st = path and path ~= "/" and api.lstat(path)
      if st and not by_path[path] then
        local entry = { path = path, dir = st.type == "dir", pattern = pattern, name = name ~= path and name or nil }
        by_path[path] = entry
        list[#list + 1] = entry
      end
    end
    if #list > M.MAX_MATCHES then
      return nil, string.format("hide: the patterns match more than %d paths", M.MAX_MATCHES)
    end
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  local out, dirs = {}, {}
  for _, e in ipairs(list) do
    if not paths.below_one_of(e.path, dirs) then
      out[#out + 1] = e
      if e.dir then dirs[e.path] = true end
    end
  end
  return out
end

M.resolve = resolve

return M
