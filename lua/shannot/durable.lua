-- Files made durable together.  On a journaled file system every fsync
-- forces a commit of the journal (~1 ms on an idle local disk, far more
-- on a busy or networked one), but files whose writeback has started
-- before the first fsync all ride in the one commit it forces, and an
-- fsync of what an earlier commit already holds costs next to nothing.
-- So a session and its audit line (five or six commits one file at a
-- time) take three: the files, then their renames with the log's line,
-- then the log's head.json.
--
-- Each sync still guarantees on any file system what it did alone: a
-- file's content is synced before it is renamed into place, and a rename
-- is durable once its directory is synced.  Only the order of the syncs
-- changed.
local fs = require("shannot.fs")

local M = {}

local Batch = {}
Batch.__index = Batch

-- batch() -> an empty batch
function M.batch()
  return setmetatable({ files = {}, dirs = {}, dir_seen = {} }, Batch)
end

local function parent(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- b:dir(path): a directory whose entries changed, synced by commit()
function Batch:dir(path)
  if not self.dir_seen[path] then
    self.dir_seen[path] = true
    self.dirs[#self.dirs + 1] = path
  end
end

-- b:file(f, path [, final]): f (open at path) holds what was written.
-- Its writeback starts now; place() syncs it and, with final, renames
-- path (a temp file then) to final, whose directory commit() syncs.  The
-- batch closes f.
function Batch:file(f, path, final)
  f:start_sync()  -- a head start only: place() syncs whatever happens here
  self.files[#self.files + 1] = { f = f, path = path, final = final }
end

-- (a failure removes the temp files, never a file written in place)
local function close_all(files, remove)
  for _, e in ipairs(files) do
    e.f:close()
    if remove and e.final then fs.remove(e.path) end
  end
end

local function sync_dirs(self)
  local dirs = self.dirs
  self.dirs, self.dir_seen = {}, {}
  for _, path in ipairs(dirs) do
    -- as a lone rename's always was: as well as the system can (a
    -- directory that cannot be opened any more fails none of its files)
    local d = fs.open(path, "r")
    if d then d:sync(); d:close() end
  end
end

-- b:place() -> true | nil, msg: every file synced, and every directory
-- whose entries changed before (their syncs ride in the same commit),
-- then the files with a final path renamed into place in the order
-- added; their directories are left for the next place() or commit().
-- On failure nothing not yet renamed is left behind.
function Batch:place()
  local files = self.files
  self.files = {}
  for _, e in ipairs(files) do
    local ok, msg = e.f:sync()
    if not ok then
      close_all(files, true)
      return nil, string.format("%s: %s", e.path, msg)
    end
  end
  close_all(files, false)
  sync_dirs(self)
  for i, e in ipairs(files) do
    if e.final then
      local ok, msg = fs.rename(e.path, e.final)
      if not ok then
        for j = i, #files do if files[j].final then fs.remove(files[j].path) end end
        return nil, msg
      end
      self:dir(parent(e.final))
    end
  end
  return true
end

-- b:commit() -> true | nil, msg: place(), then the directories of what
-- it renamed synced
function Batch:commit()
  local ok, msg = self:place()
  if not ok then return nil, msg end
  sync_dirs(self)
  return true
end

-- b:abandon(): every file not yet placed closed and its temp removed
function Batch:abandon()
  close_all(self.files, true)
  self.files = {}
end

return M
