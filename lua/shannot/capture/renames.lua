-- Moves the script made, found again.  In a user namespace overlayfs
-- cannot rename a directory that came from below (EXDEV: no
-- redirect_dir), so mv copies it and deletes the original; a file renamed
-- lands as a delete plus a new file.  A deleted (or emptied and made
-- anew) host path whose tree reappears unchanged at a new path becomes
-- one `rename` operation: reviewed as a move, applied with rename(2)
-- after a drift check of the source, nothing copied and no diff of a
-- tree that did not change.
local common = require("shannot.executor.common")
local err = require("shannot.err")
local paths = require("shannot.paths")
local xattrs = require("shannot.xattrs")

local M = {}

local join, under = paths.join, paths.under

local MADE = { mkdir = true, write = true, symlink = true, mkfifo = true, link = true }

-- A new path's tree, from the operations that make it: {root op, entries,
-- ops (set)} | nil when anything below it is not simply made.
local function made_tree(ops, top, alone)
  local entries, set = {}, {}
  -- alone: nothing else at or below it (a file, a symlink), no scan
  for _, op in ipairs(alone and { top } or ops) do
    if op.path and under(op.path, top.path) then
      if not MADE[op.kind] or (op.base and op.base.exists) then return nil end
      if op.kind == "link" and not under(op.new.hardlink or "", top.path) then return nil end
      local n = op.new
      entries[#entries + 1] = { path = op.path, type = n.type, mode = n.mode, uid = n.uid, gid = n.gid,
        hash = n.hash, link = n.link, mtime_sec = n.mtime_sec, xattrs = n.xattrs, size = n.size }
      set[op] = true
    end
  end
  return { op = top, entries = entries, ops = set }
end

-- The host's tree at path (the walk's host reader), contents not yet
-- hashed: most sources match nothing, and a count tells first.  nil once
-- it holds more than `most` entries (no new tree is that large).
local function host_tree(w, path, most)
  local out = {}
  local function visit(p)
    if #out >= most then err.throw(err.failed("larger than any new tree")) end
    local st = w:check(w.host:lstat(p))
    local e = { path = p, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid, mtime_sec = st.mtime_sec,
      size = st.size }
    if st.type == "link" then e.link = w:check(w.host:readlink(p)) end
    out[#out + 1] = e
    if st.type == "dir" then
      for _, name in ipairs(w:check(w.host:names(p))) do visit(join(p, name)) end
    end
  end
  if not err.try(function() visit(path); return true end) then return nil end
  return out
end

-- ... then hashed, with the kept extended attributes where the host's
-- reader tells them.
local function finish_host_tree(w, entries)
  local known = w.host.hashes and w:check(w.host:hashes(entries[1].path)) or {}
  for _, e in ipairs(entries) do
    if e.type == "file" then e.hash = known[e.path] or w:check(w.host:hash(e.path)) end
    if e.type ~= "link" and w.up.xattrs and w.host.xattrs then e.xattrs = w:xattrs(w.host, e.path) or {} end
  end
end

-- Whether two trees' extended attributes agree entry by entry (a host
-- reader that cannot tell them has none to compare).
local function same_xattrs(a, a_root, b, b_root)
  local by_rel = {}
  for _, e in ipairs(a) do by_rel[e.path:sub(#a_root + 1)] = e.xattrs end
  for _, e in ipairs(b) do
    local mine = by_rel[e.path:sub(#b_root + 1)]
    if e.xattrs ~= nil and mine ~= nil and not xattrs.same(mine, e.xattrs) then return false end
  end
  return true
end

local function bytes_of(entries)
  local n = 0
  for _, e in ipairs(entries) do n = n + (e.type == "file" and (e.size or 0) or 0) end
  return n
end

-- The operation that takes the host's source away: a delete, or a
-- directory emptied and made anew (`mv app app.old; mkdir app`).
local function is_source(op)
  return op.base and op.base.exists and (op.kind == "delete" or op.kind == "replace_dir")
    and op.base.type ~= "fifo"
end

local function is_dest(op)
  return MADE[op.kind] and op.kind ~= "link" and op.kind ~= "mkfifo" and op.base and not op.base.exists
end

-- rename_op(source op, dest tree, host {entries, digest, count}) -> the
-- operation
local function rename_op(src, dest, host)
  local digest, count = host.digest, host.count
  local n = dest.op.new
  local b = src.base
  return { kind = "rename", path = dest.op.path, from = src.path, base = { exists = false },
    new = { type = n.type, mode = n.mode, uid = n.uid, gid = n.gid, hash = n.hash, size = n.size, link = n.link,
      mtime_sec = n.mtime_sec, mtime_nsec = n.mtime_nsec, count = count, bytes = bytes_of(host.entries) },
    from_base = { exists = true, type = b.type, mode = b.mode, uid = b.uid, gid = b.gid, hash = b.hash,
      size = b.size, link = b.link, stored = b.stored, digest = digest, count = count } }
end

-- The overlay (capture path or mount below one) a path is in: a rename
-- never crosses file systems.
local function overlay_of(w, path)
  local best
  for _, o in ipairs(w.overlays or {}) do
    if under(path, o.target) and (not best or #o.target > #best) then best = o.target end
  end
  return best
end

-- What moves a rename may stand for: none whose source or destination
-- lies below a path another operation makes, removes or replaces (the
-- destination's directory must be there on the host, as it is, for
-- rename(2); the order of such operations and a rollback's removals
-- would otherwise meet the moved tree), and none across overlays.
local STRUCTURE = { mkdir = true, replace_dir = true, delete = true, write = true, symlink = true, link = true,
  mkfifo = true }

local function structural_paths(ops)
  local out = {}
  for _, op in ipairs(ops) do
    if STRUCTURE[op.kind] then out[op.path] = true end
  end
  return out
end

local function clear_above(path, structural)
  return not paths.below_one_of(path, structural)
end

local function may_move(w, src, dest, structural)
  return overlay_of(w, src) ~= nil and overlay_of(w, src) == overlay_of(w, dest)
    and clear_above(src, structural) and clear_above(dest, structural)
end

-- How many operations are at or below each path (of those in want).
local function counts_below(ops, want)
  local n = {}
  for _, op in ipairs(ops) do
    local p = op.path
    while p and p ~= "" do
      if want[p] then n[p] = (n[p] or 0) + 1 end
      p = p:match("^(.*)/[^/]*$")
    end
  end
  return n
end

-- detect(w): w.ops rewritten in place, every move found one `rename`
-- (where its source was taken away: before whatever then takes the
-- source's name), ids renumbered.
function M.detect(w)
  local sources, dests = {}, {}
  for _, op in ipairs(w.ops) do
    if is_source(op) then sources[#sources + 1] = op elseif is_dest(op) then dests[op.path] = op end
  end
  if #sources == 0 or next(dests) == nil then return end
  local below = counts_below(w.ops, dests)
  local structural = structural_paths(w.ops)
  local order, most = {}, 0  -- of two equal copies, the first by name is the move
  for path in pairs(dests) do
    order[#order + 1] = path
    most = math.max(most, below[path] or 0)
  end
  table.sort(order)
  -- a file or a symlink is matched through its content or target: an
  -- upgrade that deletes thousands and makes thousands stays linear
  local by_content = {}
  for _, path in ipairs(order) do
    local n = dests[path].new
    local key = below[path] == 1 and (n.type == "file" and n.hash or (n.type == "link" and "->" .. tostring(n.link)))
    if key then
      by_content[key] = by_content[key] or {}
      table.insert(by_content[key], path)
    end
  end
  local function candidates(src)
    local b = src.base
    if b.type == "file" then return b.hash and by_content[b.hash] or {} end
    if b.type == "link" then return by_content["->" .. tostring(b.link)] or {} end
    return order
  end
  local gone, renames, taken = {}, {}, {}
  for _, src in ipairs(sources) do
    -- best effort: a source that cannot be read (gone meanwhile, not
    -- readable) stays what it was, a delete
    local match = #candidates(src) > 0 and err.try(function()
      local host = clear_above(src.path, structural) and host_tree(w, src.path, most)
      if not host then return nil end
      local digest, count
      for _, path in ipairs(candidates(src)) do
        local dest = dests[path]
        if not taken[path] and below[path] == #host and dest.new.type == host[1].type
          and not under(path, src.path) and not under(src.path, path) and may_move(w, src.path, path, structural) then
          local t = made_tree(w.ops, dest, below[path] == 1)
          if t and not digest then
            finish_host_tree(w, host)
            digest, count = common.tree_digest(host, src.path)
          end
          if t and common.tree_digest(t.entries, path) == digest and same_xattrs(t.entries, path, host, src.path) then
            return { path = path, tree = t, op = rename_op(src, t, { entries = host, digest = digest, count = count }) }
          end
        end
      end
    end)
    if match then
      taken[match.path] = true
      for op in pairs(match.tree.ops) do gone[op] = true end
      renames[src] = match.op
    end
  end
  if next(renames) == nil then return end
  local out = {}
  for _, op in ipairs(w.ops) do
    local r = renames[op]
    if r then
      out[#out + 1] = r
      if op.kind == "replace_dir" then
        -- made anew where the source was: nothing is there once it moved
        op.kind, op.base = "mkdir", { exists = false }
        out[#out + 1] = op
      end
    elseif not gone[op] then
      out[#out + 1] = op
    end
  end
  local counts = {}
  for i, op in ipairs(out) do
    op.id = i
    counts[op.kind] = (counts[op.kind] or 0) + 1
  end
  w.ops, w.counts = out, counts
end

return M
