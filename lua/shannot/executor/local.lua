-- The local executor (DESIGN §6): the host's file system and processes
-- as execute and rollback need them.  Every path is reached with its
-- parent opened by openat2 RESOLVE_NO_SYMLINKS and used through
-- /proc/self/fd/N, so a symlink planted on a path is refused (ELOOP),
-- never followed.  The ssh executor offers the same methods.
local common = require("shannot.executor.common")
local fs = require("shannot.fs")
local guard = require("shannot.guard")
local proc = require("shannot.proc")
local store = require("shannot.store")
local xattrs = require("shannot.xattrs")

local M = {}
M.__index = M
M.__close = function(self) self:close() end

local split = common.split

-- at(path) -> {dir = File, path = "/proc/self/fd/N/NAME"} | nil, msg, code.
-- The parent is opened with no symlink on the way (ELOOP otherwise) and
-- stays pinned while the handle lives.
local function at(path)
  local parent, name = split(path)
  if not parent then return nil, path .. ": not an absolute path below /", "EINVAL" end
  local dir, msg, code = fs.open_dir(parent)
  if not dir then return nil, msg, code end
  return { dir = dir, name = name, path = "/proc/self/fd/" .. dir:fd() .. "/" .. name,
    dirpath = "/proc/self/fd/" .. dir:fd() }
end

local function close_at(a)
  if a and a.dir then a.dir:close() end
end

-- state(path [, known]) -> {exists, type, mode, uid, gid, size, hash, link}
-- | nil, msg.  A symlink in a parent is refused (ELOOP), a missing parent
-- is absence.
local function state(path, known)
  local a, msg, code = at(path)
  if not a then
    if code == "ENOENT" or code == "ENOTDIR" then return { exists = false } end
    return nil, msg, code
  end
  local _ <close> = guard(function() close_at(a) end)
  local st, smsg, scode = fs.lstat(a.path)
  if not st and scode ~= "ENOENT" then return nil, smsg, scode end
  return common.state_of(st, known, function() return store.hash_file(a.path) end,
    function() return fs.readlink(a.path) end)
end

-- visit(path, real, st) for everything under the directory open as dirf
-- (path names it), parent first.  Each level is opened from the one above
-- with no symlink on the way (fs.open_dir_at) and named through its own
-- descriptor while visited: a directory swapped for a symlink by whoever
-- may write there is refused, never followed (into a root-only place,
-- whose files would then reach the checkpoint and, at rollback, them).
local function subtree(path, dirf, visit)
  local base = "/proc/self/fd/" .. dirf:fd()
  local names = fs.readdir(base) or {}
  table.sort(names)
  for _, name in ipairs(names) do
    local child, real = path .. "/" .. name, base .. "/" .. name
    local st = fs.lstat(real)
    if st then
      local ok, msg = visit(child, real, st)
      if not ok then return nil, msg end
      if st.type == "dir" then
        local sub, serr = fs.open_dir_at(dirf, name)
        if not sub then return nil, string.format("%s: %s", child, serr) end
        ok, msg = subtree(child, sub, visit)
        sub:close()
        if not ok then return nil, msg end
      end
    end
  end
  return true
end

local function entry_of(path, real, st, cpdir)
  local e = { path = path, exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid,
    mtime_sec = st.mtime_sec, mtime_nsec = st.mtime_nsec }
  if st.type ~= "link" then
    local all, msg = fs.xattrs(real)
    if not all then return nil, msg end
    e.xattrs = xattrs.kept_of(all) or {}  -- {}: none, to be put back exactly so
  end
  if st.type == "file" then
    local info, msg = store.put_file(cpdir, real)
    if not info then return nil, msg end
    e.hash, e.size = info.hash, info.size
  elseif st.type == "link" then
    local link, msg = fs.readlink(real)
    if not link then return nil, msg end
    e.link = link
  end
  return e
end

-- originals(op, cpdir) -> entries | nil, msg: the op's path as it is now
-- (absent, or its content saved in cpdir) and, when the op removes or
-- replaces a directory, every entry below it, parent first.
local function originals(op, cpdir)
  local a, msg, code = at(op.path)
  if not a and code ~= "ENOENT" then return nil, msg end
  local _ <close> = guard(function() close_at(a) end)
  -- A missing parent: an earlier operation creates it; absent before.
  local st = a and fs.lstat(a.path)
  if not st then return common.originals(op, {}) end
  local e, emsg = entry_of(op.path, a.path, st, cpdir)
  if not e then return nil, emsg end
  local out = { e }
  if st.type == "dir" and common.replaces_dir(op) then
    local top, terr = fs.open_dir_at(a.dir, a.name)
    if not top then return nil, terr end
    local ok, werr = subtree(op.path, top, function(path, real, est)
      local be, berr = entry_of(path, real, est, cpdir)
      if not be then return nil, berr end
      out[#out + 1] = be
      return true
    end)
    top:close()
    if not ok then return nil, werr end
  end
  return common.originals(op, out)
end

local check = common.check

-- pinned(path [, ex]) -> at(path), closed with its scope; a refused or
-- missing parent fails the primitive.  The parent ex:parent_state just
-- opened for the same operation (ex.held) is taken over, not opened again;
-- a parent kept by the file written before (ex.kept) is let go.
local function pinned(path, ex)
  local held = ex and ex.held
  if ex and ex.kept then ex.kept.dir:close(); ex.kept = nil end
  if held then
    ex.held = nil
    local parent, name = split(path)
    if parent == held.parent then
      local fd = held.dir:fd()
      return setmetatable({ dir = held.dir, parent = parent, name = name, path = "/proc/self/fd/" .. fd .. "/" ..
        name, dirpath = "/proc/self/fd/" .. fd }, { __close = close_at })
    end
    held.dir:close()
  end
  local a, msg = at(path)
  if not a then common.fail("%s", msg) end
  a.parent = split(path)
  return setmetatable(a, { __close = close_at })
end

-- keep(ex, a): the parent of the file just written stays open for the
-- next operation's parent_state, which takes it when it names the same
-- directory (a package's files come one directory at a time: two calls
-- fewer each).  Only from one file written to the next: any other
-- primitive lets it go (pinned), so a directory renamed or removed since
-- is never written into through an old descriptor.
local function keep(ex, a)
  ex.kept, a.dir = { parent = a.parent, dir = a.dir }, nil
end

local function remove_tree(path)
  if fs.lstat(path) then check(fs.rmtree(path)) end
end

-- The kept extended attributes of path exactly want ({name = hex}):
-- others of those namespaces removed.  After the owner: a chown clears
-- security.capability.
local function set_xattrs(path, want)
  local now = xattrs.kept_of(check(fs.xattrs(path))) or {}
  for name in pairs(now) do
    if want[name] == nil then check(fs.set_xattr(path, name)) end
  end
  for name, value in pairs(want) do
    if now[name] ~= value then check(fs.set_xattr(path, name, xattrs.unhex(value))) end
  end
end

-- Owner and mode of the entry itself (fs.set_meta: a name swapped for a
-- symlink meanwhile is never followed); a mode for what is now a symlink
-- is an error, not a change elsewhere.  Then n.xattrs, if any.
local function set_owner_mode(path, n)
  local _, msg, code = fs.set_meta(path, { uid = n.uid, gid = n.gid, mode = n.mode, mtime_sec = n.mtime_sec,
    mtime_nsec = n.mtime_nsec })
  if code == "ELOOP" then common.fail("is now a symlink") end
  check(msg == nil, msg)
  if n.xattrs then set_xattrs(path, n.xattrs) end
end

-- new contents go in beside the target under tmp, then over it: tmp is
-- never left behind.  makes_anew: make() itself replaces a leftover tmp.
local function replace_with(a, tmp_name, make, makes_anew)
  local tmp = a.dirpath .. "/" .. tmp_name
  if not makes_anew then remove_tree(tmp) end
  local leftover <close> = guard(function() fs.rmtree(tmp) end)
  make(tmp)
  local ok, msg, code = fs.rename(tmp, a.path)
  if code == "EISDIR" then  -- a directory there, which the new entry replaces
    remove_tree(a.path)
    ok, msg = fs.rename(tmp, a.path)
  end
  check(ok, msg)
  leftover:cancel()
end

local X = {}

-- (the parent stays open for the primitive that follows: pinned)
function X.parent_state(self, path)
  if self.held then self.held.dir:close(); self.held = nil end
  local parent = split(path)
  if not parent then return nil, path .. ": not an absolute path below /" end
  local kept = self.kept
  self.kept = nil
  if kept and kept.parent == parent then
    self.held = kept
    return true
  end
  if kept then kept.dir:close() end
  local d, msg, code = fs.open_dir(parent)
  if not d then
    if code == "ENOENT" or code == "ENOTDIR" then return false end
    return nil, msg
  end
  self.held = { parent = parent, dir = d }
  return true
end

function X.put_file(self, path, c)
  local a <close> = pinned(path, self)
  replace_with(a, c.tmp, function(tmp)
    -- Hashed again as it streams: what lands is exactly the content the
    -- approval bound (a blob swapped after review is refused here).
    -- owner, mode and time set through the new file's own descriptor
    local m = c.meta
    local how = { uid = m.uid, gid = m.gid, mtime_sec = m.mtime_sec, mtime_nsec = m.mtime_nsec }
    local ok, size, code = store.copy_out(c.blobs, c.hash, tmp, m.mode or 384, how)
    if code == "EEXIST" then  -- a temp a killed run left (O_EXCL): made anew
      remove_tree(tmp)
      ok, size = store.copy_out(c.blobs, c.hash, tmp, m.mode or 384, how)
    end
    check(ok, size)
    if c.size and size ~= c.size then common.fail("the stored content is %d bytes, not %d", size, c.size) end
    if c.step then c.step() end
    if m.xattrs then set_xattrs(tmp, m.xattrs) end
  end, true)
  keep(self, a)
end

function X.put_symlink(self, path, target, meta, tmp_name)
  local a <close> = pinned(path, self)
  replace_with(a, tmp_name, function(tmp)
    check(fs.symlink(target, tmp))
    set_owner_mode(tmp, meta)
  end)
end

function X.put_hardlink(self, path, c)
  local a <close> = pinned(path, self)
  local src <close> = pinned(c.existing)
  local st = fs.lstat(src.path)
  if not (st and st.type == "file" and st.size == c.size and check(store.hash_file(src.path)) == c.hash) then
    common.fail("%s: what it links to is not the file approved", c.existing)
  end
  replace_with(a, c.tmp, function(tmp) check(fs.link(src.path, tmp)) end)
end

function X.put_fifo(self, path, meta, tmp_name)
  local a <close> = pinned(path, self)
  replace_with(a, tmp_name, function(tmp)
    check(fs.mkfifo(tmp, 384))
    set_owner_mode(tmp, meta)
  end)
end

function X.make_dir(self, path, meta)
  local a <close> = pinned(path, self)
  local st = fs.lstat(a.path)
  if st and st.type ~= "dir" then remove_tree(a.path) end
  if not st or st.type ~= "dir" then check(fs.mkdir(a.path, 448)) end
  set_owner_mode(a.path, meta)
end

function X.move(self, from, to)
  local dst <close> = pinned(to, self)
  local src <close> = pinned(from)
  local _, msg, code = fs.rename(src.path, dst.path, "noreplace")
  if code == "EEXIST" then common.fail("%s: something is there now", to) end
  check(msg == nil, msg)
end

function X.remove_tree(self, path)
  local a <close> = pinned(path, self)
  remove_tree(a.path)
end

-- ex:xattrs(path) -> the kept extended attributes ({} none) | nil (not
-- known): what rollback compares, read only there (not on every state)
function M:xattrs(path) -- luacheck: ignore 212/self
  local a = at(path)
  if not a then return nil end
  local _ <close> = guard(function() close_at(a) end)
  local all = fs.xattrs(a.path)
  return all and (xattrs.kept_of(all) or {}) or nil
end

function X.set_xattrs(self, path, want)
  local a <close> = pinned(path, self)
  set_xattrs(a.path, want)
end

function X.set_meta(self, path, meta)
  local a <close> = pinned(path, self)
  set_owner_mode(a.path, meta)
end

local function run_exec(op, timeout, show)
  local cwd = op.cwd
  local st = cwd and fs.stat(cwd)
  if not (st and st.type == "dir") then cwd = "/" end
  local r, msg = proc.run(op.argv, { cwd = cwd, stdin = "null", timeout = timeout,
    tee_stdout = show and 1 or nil, tee_stderr = show and 2 or nil, tee_no_strings = show or nil })
  if not r then return { id = op.id, ok = false, error = msg } end
  return {
    id = op.id, ok = r.code == 0, code = r.code, signal = r.signal_name,
    stdout = r.stdout, stderr = r.stderr, timed_out = r.timed_out or nil,
  }
end

-- Temp files an interrupted execute may have left next to its paths.
local function remove_temps(paths, prefix)
  local seen = {}
  for _, path in ipairs(paths) do
    local parent = split(path)
    if parent and not seen[parent] then
      seen[parent] = true
      local d = fs.open_dir(parent)
      if d then
        local base = "/proc/self/fd/" .. d:fd()
        for _, name in ipairs(fs.readdir(base) or {}) do
          if name:sub(1, #prefix) == prefix then fs.rmtree(base .. "/" .. name) end
        end
        d:close()
      end
    end
  end
end

-- new([settings]) -> executor; settings: executor.settings' (profile,
-- bwrap_path from the config's [executor.local])
function M.new(settings)
  settings = settings or {}
  return setmetatable({ target = "local", default_profile = settings.profile, settings = settings }, M)
end

-- ex:capture(plan) -> trees, deferred, result (see executor/init.lua)
function M:capture(plan)
  return require("shannot.capture.local").capture(plan, self.settings)
end

-- ex:state(path [, known]) -> state | nil, err
function M:state(path, known) -- luacheck: ignore 212/self
  return common.returns(state(path, known))
end

-- ex:below(path) -> every path below the directory at path ({} when it
-- is not one) | nil, err: names only, walked without following symlinks
function M:below(path) -- luacheck: ignore 212/self
  local a, msg, code = at(path)
  if not a then return common.failure(msg, code) end
  local _ <close> = guard(function() close_at(a) end)
  local st = fs.lstat(a.path)
  if not (st and st.type == "dir") then return {} end
  local top, terr = fs.open_dir_at(a.dir, a.name)
  if not top then return common.failure(terr) end
  local out = {}
  local ok, werr = subtree(path, top, function(p)
    out[#out + 1] = p
    return true
  end)
  top:close()
  if not ok then return common.failure(werr) end
  return out
end

-- ex:manifest(path) -> the states of path and everything below it
-- ({path, type, mode, uid, gid, hash, link, mtime_sec}, {} when absent)
-- | nil, err: what a rename's drift check compares
function M:manifest(path) -- luacheck: ignore 212/self
  local a, msg, code = at(path)
  if not a then
    if code == "ENOENT" then return {} end
    return common.failure(msg, code)
  end
  local _ <close> = guard(function() close_at(a) end)
  local out = {}
  local function visit(p, real, st)
    local e, serr = common.state_of(st, nil, function() return store.hash_file(real) end,
      function() return fs.readlink(real) end)
    if not e then return nil, serr end
    e.path = p
    out[#out + 1] = e
    return true
  end
  local st = fs.lstat(a.path)
  if not st then return out end
  local ok, verr = visit(path, a.path, st)
  if ok and st.type == "dir" then
    local top, terr = fs.open_dir_at(a.dir, a.name)
    if not top then return common.failure(terr) end
    ok, verr = subtree(path, top, visit)
    top:close()
  end
  if not ok then return common.failure(verr) end
  return out
end

-- ex:originals(op, cpdir) -> checkpoint entries | nil, err
function M:originals(op, cpdir) -- luacheck: ignore 212/self
  return common.returns(originals(op, cpdir))
end

-- ex:sync(cpdir) -> true | nil, err: the checkpoint durable
function M:sync(cpdir) -- luacheck: ignore 212/self
  return common.returns(fs.syncfs(cpdir))
end

-- ex:apply(op, ctx) -> true | nil, err.  ctx: blobs, step, temp_prefix
M.apply = common.apply

-- ex:exec(op, timeout [, show]) -> result {id, ok, code, signal, stdout,
-- stderr}; show: its output passes through as it comes, as well
function M:exec(op, timeout, show)
  -- a command may move anything: no parent is kept across it
  if self.kept then self.kept.dir:close(); self.kept = nil end
  return run_exec(op, timeout, show)
end

-- ex:restore(entry, cpdir, temp_prefix) -> true | nil, err
M.restore = common.restore

-- the primitives common.apply and common.restore work through
for name, fn in pairs(X) do M[name] = fn end

-- ex:set_times(list) -> failures: modification times, set last
M.set_times = common.set_times

-- ex:remove_temps(paths, prefix): leftovers of an interrupted execute
function M:remove_temps(paths, prefix) -- luacheck: ignore 212/self
  return remove_temps(paths, prefix)
end

-- ex:close()
function M:close()
  if self.held then self.held.dir:close(); self.held = nil end
  if self.kept then self.kept.dir:close(); self.kept = nil end
end

return M
