-- What every executor does the same way, written once: an operation
-- applied and a checkpoint entry restored (over the primitives below,
-- each executor's own), and the shape of a path's state and of a
-- checkpoint's entries.  An executor provides:
--   x:parent_state(path) -> true | false (a directory on the way is
--       missing) | nil, msg (a symlink or worse on the way: refused)
--   x:put_file(path, {blobs, hash, meta, tmp, size, step, progress}): the content
--       written beside path under tmp, owner and mode set, renamed over
--       (a directory there goes first)
--   x:put_symlink(path, target, meta, tmp): likewise, a symlink
--   x:put_fifo(path, meta, tmp): likewise, a FIFO
--   x:put_hardlink(path, {existing, hash, size, tmp}): likewise, a hard link
--       to the file at existing, refused unless it holds hash
--   x:make_dir(path, meta): a directory there (anything else goes), its
--       owner and mode set
--   x:move(from, to): rename(2), refused when something is at to
--   x:remove_tree(path), x:set_meta(path, {uid, gid, mode, mtime_sec,
--       mtime_nsec}), x:set_xattrs(path, {name = hex}): exactly those of
--       the kept ones (xattrs.lua); a meta's xattrs are set that way too
--       (mode nil: the owner only, as for a symlink)
-- A primitive that fails throws an err object (err.throw).
local err = require("shannot.err")
local store = require("shannot.store")

local M = {}

function M.split(path)
  local parent, name = path:match("^(.*)/([^/]+)$")
  if not parent then return nil end
  return parent == "" and "/" or parent, name
end

-- failure(msg [, code]) -> nil, err: a lower call's message as this
-- interface's error (err objects above the wrappers, STYLE 32)
function M.failure(msg, code)
  if err.is(msg) then return nil, msg end
  return nil, err.with_code(err.failed("%s", msg), code)
end

-- returns(v, msg, code) -> v | nil, err
function M.returns(v, msg, code)
  if v == nil then return M.failure(msg, code) end
  return v
end

-- fail(fmt, ...): a primitive's failure, thrown to apply or restore
function M.fail(fmt, ...)
  err.throw(err.failed(fmt, ...))
end

-- check(ok, msg, ...) -> ok, msg, ...: a lower call's failure thrown
function M.check(ok, msg, ...)
  if not ok then M.fail("%s", msg) end
  return ok, msg, ...
end

-- state_of(st, known, hash, readlink) -> {exists, type, mode, uid, gid,
-- size, hash, link} | nil, msg: a path's state from its lstat.  known =
-- {hash, size}: the content just written there, not read again when the
-- size agrees.
function M.state_of(st, known, hash, readlink)
  if not st then return { exists = false } end
  local out = { exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid,
    mtime_sec = st.mtime_sec, mtime_nsec = st.mtime_nsec }
  if st.type == "file" then
    out.size = st.size
    if known and known.hash and known.size == st.size then
      out.hash = known.hash
    else
      local h, msg = hash()
      if not h then return nil, msg end
      out.hash = h
    end
  elseif st.type == "link" then
    out.link = readlink()
  end
  return out
end

-- tree_digest(entries, root) -> sha256 hex, count: a tree as a rename
-- keeps it, from its entries ({path, type, mode, uid, gid, hash, link,
-- mtime_sec}, root first, any order below): names, types, owners, modes,
-- contents, link targets, and the (whole-second) times of all but
-- directories, which a copy standing in for a rename need not keep.
function M.tree_digest(entries, root)
  local lines = {}
  for _, e in ipairs(entries) do
    local rel = e.path == root and "" or e.path:sub(#root + 2)
    local what = e.type == "file" and e.hash or (e.type == "link" and e.link) or ""
    local time = e.type ~= "dir" and tostring(e.mtime_sec) or ""
    lines[#lines + 1] = table.concat({ rel, e.type, tostring(e.mode), tostring(e.uid), tostring(e.gid), what, time },
      "\0")
  end
  table.sort(lines)
  return store.hash_string(table.concat(lines, "\n")), #lines
end

-- replaces_dir(op) -> whether a directory at op.path goes with op (and
-- everything below it must reach the checkpoint)
function M.replaces_dir(op)
  return op.kind == "delete" or op.kind == "replace_dir" or (op.new ~= nil and op.new.type ~= "dir")
end

-- originals(op, entries) -> checkpoint entries: the path's own entry
-- first (absent when there is none), those below it marked as such
function M.originals(op, entries)
  if #entries == 0 then return { { path = op.path, exists = false, op = op.id } } end
  entries[1].op = op.id
  for i = 2, #entries do entries[i].below = op.id end
  return entries
end

local function owner_mode(n, is_link)
  return { uid = n.uid, gid = n.gid, mode = not is_link and n.mode or nil }
end

-- The same, the modification time and the extended attributes, for what
-- is made anew.
local function made(n, is_link)
  local m = owner_mode(n, is_link)
  m.mtime_sec, m.mtime_nsec = n.mtime_sec, n.mtime_nsec
  if not is_link then m.xattrs = n.xattrs end
  return m
end

local APPLY = {}

function APPLY.write(x, op, ctx, tmp)
  x:put_file(op.path, { blobs = ctx.blobs, hash = op.new.hash, meta = made(op.new), tmp = tmp,
    size = op.new.size, step = ctx.step, progress = ctx.progress })
end

function APPLY.symlink(x, op, _, tmp)
  x:put_symlink(op.path, op.new.link, made(op.new, true), tmp)
end

-- A second name for a file made or kept by this session: what it links to
-- must hold the content the approval bound (checked, then linked).
function APPLY.link(x, op, _, tmp)
  x:put_hardlink(op.path, { existing = op.new.hardlink, hash = op.new.hash, size = op.new.size, tmp = tmp })
end

function APPLY.mkfifo(x, op, _, tmp)
  x:put_fifo(op.path, made(op.new), tmp)
end

function APPLY.mkdir(x, op)
  x:make_dir(op.path, made(op.new))
end

function APPLY.replace_dir(x, op)
  x:remove_tree(op.path)
  x:make_dir(op.path, made(op.new))
end

-- The modification time alone (content, owner and mode as they are).
function APPLY.touch(x, op)
  x:set_meta(op.path, { mtime_sec = op.new.mtime_sec, mtime_nsec = op.new.mtime_nsec })
end

-- The extended attributes exactly as the script left them (added,
-- changed, removed), content, owner and mode untouched.
function APPLY.xattr(x, op)
  x:set_xattrs(op.path, op.new.xattrs or {})
end

-- A move within the host (rename(2)): the approved tree, which the drift
-- check found unchanged at its old name, is never copied.
function APPLY.rename(x, op)
  x:move(op.from, op.path)
end

function APPLY.delete(x, op)
  x:remove_tree(op.path)
end

function APPLY.chmod(x, op)
  x:set_meta(op.path, { mode = op.new.mode })
end

-- A symlink's owner only: the mode of what was a symlink at capture is
-- never set (on what the name may point to now).
function APPLY.chown(x, op)
  x:set_meta(op.path, owner_mode(op.new, (op.base or {}).type == "link"))
end

-- apply(x, op, ctx) -> true | nil, err.  ctx: blobs, step, temp_prefix
local function apply_one(x, op, ctx)
  APPLY[op.kind](x, op, ctx, ctx.temp_prefix .. op.id)
  return true
end

function M.apply(x, op, ctx)
  local ready, msg = x:parent_state(op.path)
  if not ready then return nil, err.failed("%s", msg or (op.path .. ": its directory is gone")) end
  return err.try(apply_one, x, op, ctx)
end

-- set_times(x, list) -> failures {{path, error}}: each {path, mtime_sec,
-- mtime_nsec}'s
-- modification time set, after everything below it is in place (a
-- directory's changes as its entries are made or removed)
function M.set_times(x, list)
  local failures = {}
  for _, t in ipairs(list) do
    local ok, e = err.try(function()
      x:set_meta(t.path, { mtime_sec = t.mtime_sec, mtime_nsec = t.mtime_nsec })
      return true
    end)
    if not ok then failures[#failures + 1] = { path = t.path, error = e.message } end
  end
  return failures
end

-- restore(x, entry, cpdir, temp_prefix) -> true | nil, err: the path as
-- the checkpoint holds it
function M.restore(x, e, cpdir, temp_prefix)
  local ready, msg = x:parent_state(e.path)
  if ready == nil then return nil, err.failed("%s", msg) end
  if ready == false then
    -- its parent is gone, so it is too: as it was before, if it was absent
    if not e.exists then return true end
    return nil, err.failed("%s: its directory is gone", e.path)
  end
  local tmp = temp_prefix .. "restore"
  return err.try(function()
    if not e.exists then
      x:remove_tree(e.path)
    elseif e.type == "dir" then
      x:make_dir(e.path, owner_mode(e))
      if e.xattrs then x:set_xattrs(e.path, e.xattrs) end
    elseif e.type == "file" then
      x:put_file(e.path, { blobs = cpdir, hash = e.hash, meta = made(e), tmp = tmp })
    elseif e.type == "link" then
      if type(e.link) ~= "string" then M.fail("the checkpoint holds no target for this symlink") end
      x:put_symlink(e.path, e.link, made(e, true), tmp)
    elseif e.type == "fifo" then
      x:put_fifo(e.path, made(e), tmp)
    end
    return true
  end)
end

return M
