-- The local executor (DESIGN §6): the host's file system and processes
-- as execute and rollback need them.  Every path is reached with its
-- parent opened by openat2 RESOLVE_NO_SYMLINKS and used through
-- /proc/self/fd/N, so a symlink planted on a path is refused (ELOOP),
-- never followed.  The ssh executor offers the same methods.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local store = require("shannot.store")

local M = {}
M.__index = M


local function split(path)
  local parent, name = path:match("^(.*)/([^/]+)$")
  if not parent then return nil end
  return parent == "" and "/" or parent, name
end

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
  if a then a.dir:close() end
end

-- state(path [, known]) -> {exists, type, mode, uid, gid, size, hash, link}
-- | nil, msg.  A symlink in a parent is refused (ELOOP), a missing parent
-- is absence.  known = {hash, size}: the content just written there, not
-- read again when the size agrees.
local function state(path, known)
  local a, msg, code = at(path)
  if not a then
    if code == "ENOENT" or code == "ENOTDIR" then return { exists = false } end
    return nil, msg, code
  end
  local st, smsg, scode = fs.lstat(a.path)
  local out
  if not st then
    close_at(a)
    if scode == "ENOENT" then return { exists = false } end
    return nil, smsg, scode
  end
  out = { exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    out.size = st.size
    if known and known.hash and known.size == st.size then
      out.hash = known.hash
    else
      local h, herr = store.hash_file(a.path)
      if not h then close_at(a); return nil, herr end
      out.hash = h
    end
  elseif st.type == "link" then
    out.link = fs.readlink(a.path)
  end
  close_at(a)
  return out
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
  local e = { path = path, exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
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
  -- A missing parent: an earlier operation creates it; absent before.
  local st = a and fs.lstat(a.path)
  if not st then
    close_at(a)
    return { { path = op.path, exists = false, op = op.id } }
  end
  local out = {}
  local e, emsg = entry_of(op.path, a.path, st, cpdir)
  if not e then close_at(a); return nil, emsg end
  e.op = op.id
  out[1] = e
  local replaces_dir = st.type == "dir" and (op.kind == "delete" or op.kind == "replace_dir"
    or (op.new and op.new.type ~= "dir"))
  if replaces_dir then
    local top, terr = fs.open_dir_at(a.dir, a.name)
    if not top then close_at(a); return nil, terr end
    local ok, werr = subtree(op.path, top, function(path, real, est)
      local be, berr = entry_of(path, real, est, cpdir)
      if not be then return nil, berr end
      be.below = op.id
      out[#out + 1] = be
      return true
    end)
    top:close()
    if not ok then close_at(a); return nil, werr end
  end
  close_at(a)
  return out
end


local function check(ok, msg, ...)
  if not ok then error({ apply_error = msg }, 0) end
  return ok, msg, ...
end

local function remove_tree(path)
  local st = fs.lstat(path)
  if not st then return end
  check(fs.rmtree(path))
end

-- Owner and mode of the entry itself (fs.set_meta: a name swapped for a
-- symlink meanwhile is never followed); a mode for what is now a symlink
-- is an error, not a change elsewhere.
local function set_owner_mode(path, n, is_link)
  local _, msg, code = fs.set_meta(path, { uid = n.uid, gid = n.gid, mode = not is_link and n.mode or nil })
  if code == "ELOOP" then error({ apply_error = "is now a symlink" }, 0) end
  check(msg == nil, msg)
end

local function temp_name(ctx, op)
  return ctx.temp_prefix .. op.id
end

local APPLY = {}

function APPLY.write(a, op, ctx)
  local tmp = a.dirpath .. "/" .. temp_name(ctx, op)
  remove_tree(tmp)
  local ok, e = pcall(function()
    -- Hashed again as it streams: what lands is exactly the content the
    -- approval bound (a blob swapped after review is refused here).
    check(store.copy_out(ctx.blobs, op.new.hash, tmp, 384))
    local st_tmp = check(fs.lstat(tmp))
    if st_tmp.size ~= op.new.size then
      error({ apply_error = string.format("the stored content is %d bytes, not %d", st_tmp.size, op.new.size) }, 0)
    end
    ctx.step()
    set_owner_mode(tmp, op.new, false)
    local st = fs.lstat(a.path)
    if st and st.type == "dir" then remove_tree(a.path) end
    check(fs.rename(tmp, a.path))
  end)
  if not ok then
    fs.rmtree(tmp)  -- no temp file is left beside the target
    error(e, 0)
  end
end

function APPLY.symlink(a, op, ctx)
  local tmp = a.dirpath .. "/" .. temp_name(ctx, op)
  remove_tree(tmp)
  check(fs.symlink(op.new.link, tmp))
  set_owner_mode(tmp, op.new, true)
  local st = fs.lstat(a.path)
  if st and st.type == "dir" then remove_tree(a.path) end
  check(fs.rename(tmp, a.path))
end

function APPLY.mkdir(a, op)
  local st = fs.lstat(a.path)
  if st and st.type ~= "dir" then check(fs.remove(a.path)) end
  if not st or st.type ~= "dir" then check(fs.mkdir(a.path, 448)) end
  set_owner_mode(a.path, op.new, false)
end

function APPLY.replace_dir(a, op)
  remove_tree(a.path)
  check(fs.mkdir(a.path, 448))
  set_owner_mode(a.path, op.new, false)
end

function APPLY.delete(a)
  remove_tree(a.path)
end

function APPLY.chmod(a, op)
  set_owner_mode(a.path, { mode = op.new.mode }, false)
end

function APPLY.chown(a, op)
  local st = check(fs.lstat(a.path))
  set_owner_mode(a.path, op.new, st.type == "link")
end

local function apply_op(op, ctx)
  local a, msg = at(op.path)
  if not a then return nil, msg end
  local ok, e = pcall(APPLY[op.kind], a, op, ctx)
  close_at(a)
  if not ok then
    if type(e) == "table" and e.apply_error then return nil, e.apply_error end
    error(e, 0)
  end
  return true
end


local function run_exec(op, timeout)
  local cwd = op.cwd
  local st = cwd and fs.stat(cwd)
  if not (st and st.type == "dir") then cwd = "/" end
  local r, msg = proc.run(op.argv, { cwd = cwd, stdin = "null", timeout = timeout })
  if not r then return { id = op.id, ok = false, error = msg } end
  return {
    id = op.id, ok = r.code == 0, code = r.code, signal = r.signal_name,
    stdout = r.stdout, stderr = r.stderr, timed_out = r.timed_out or nil,
  }
end


local function restore_entry(e, cpdir, temp_prefix)
  local a, msg, code = at(e.path)
  if not a then
    -- Its parent is gone, so it is too: as it was before.
    if not e.exists and (code == "ENOENT" or code == "ENOTDIR") then return true end
    return nil, msg
  end
  local ok, perr = pcall(function()
    if not e.exists then return remove_tree(a.path) end
    local st = fs.lstat(a.path)
    if e.type == "dir" then
      if st and st.type ~= "dir" then remove_tree(a.path); st = nil end
      if not st then check(fs.mkdir(a.path, 448)) end
      set_owner_mode(a.path, e, false)
    elseif e.type == "file" or e.type == "link" then
      local tmp = a.dirpath .. "/" .. temp_prefix .. "restore"
      remove_tree(tmp)
      if e.type == "file" then
        check(store.copy_out(cpdir, e.hash, tmp, 384))
      elseif type(e.link) == "string" then
        check(fs.symlink(e.link, tmp))
      else
        error({ apply_error = "the checkpoint holds no target for this symlink" }, 0)
      end
      set_owner_mode(tmp, e, e.type == "link")
      if st and st.type == "dir" then remove_tree(a.path) end
      check(fs.rename(tmp, a.path))
    end
  end)
  close_at(a)
  if not ok then
    if type(perr) == "table" and perr.apply_error then return nil, perr.apply_error end
    error(perr, 0)
  end
  return true
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


-- new() -> executor
function M.new()
  return setmetatable({ target = "local" }, M)
end

-- ex:state(path [, known]) -> state | nil, msg, code
function M:state(path, known) -- luacheck: ignore 212/self
  return state(path, known)
end

-- ex:originals(op, cpdir) -> checkpoint entries | nil, msg
function M:originals(op, cpdir) -- luacheck: ignore 212/self
  return originals(op, cpdir)
end

-- ex:sync(cpdir) -> true | nil, msg: the checkpoint durable
function M:sync(cpdir) -- luacheck: ignore 212/self
  return fs.syncfs(cpdir)
end

-- ex:apply(op, ctx) -> true | nil, msg.  ctx: blobs, step, temp_prefix
function M:apply(op, ctx) -- luacheck: ignore 212/self
  return apply_op(op, ctx)
end

-- ex:exec(op, timeout) -> result {id, ok, code, signal, stdout, stderr}
function M:exec(op, timeout) -- luacheck: ignore 212/self
  return run_exec(op, timeout)
end

-- ex:restore(entry, cpdir, temp_prefix) -> true | nil, msg
function M:restore(entry, cpdir, temp_prefix) -- luacheck: ignore 212/self
  return restore_entry(entry, cpdir, temp_prefix)
end

-- ex:remove_temps(paths, prefix): leftovers of an interrupted execute
function M:remove_temps(paths, prefix) -- luacheck: ignore 212/self
  return remove_temps(paths, prefix)
end

-- ex:close()
function M:close() end -- luacheck: ignore 212/self

return M
