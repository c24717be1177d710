-- What a run wrote, as operations: each overlay's upper tree compared with
-- the host, entry by entry (DESIGN §2 step 4), contents moved into the
-- session's blob store, and the host's state of every touched path kept
-- as `base` for the drift checks before anything is applied.
local err = require("shannot.err")
local fs = require("shannot.fs")
local glob = require("shannot.glob")
local guard = require("shannot.guard")
local store = require("shannot.store")
local text = require("shannot.text")
local xattrs = require("shannot.xattrs")

local M = {}

-- Host files up to this size are kept in the store as they were, so a diff
-- can be shown later even after the host file has changed.
M.BASE_CONTENT_MAX = 4 * 1024 * 1024
local OPAQUE_XATTR = "user.overlay.opaque"

local join = require("shannot.paths").join

local function is_whiteout(st)
  return st.type == "char" and st.rdev == 0
end

-- How much of a written file tells whether it is text (diff.content_kind)
local HEAD = 8192

-- A tree on this machine, as the walk reads it: an upper directory of a
-- local capture, or the host itself.  A remote capture brings its own
-- (the upper trees from a tar stream, the host over SSH).
M.local_tree = {
  names = function(_, dir)
    local names, msg, code = fs.readdir(dir)
    if not names then return nil, msg, code end
    table.sort(names)
    return names
  end,
  lstat = function(_, path) return fs.lstat(path) end,
  opaque = function(_, path) return fs.getxattr(path, OPAQUE_XATTR) == "y" end,
  readlink = function(_, path) return fs.readlink(path) end,
  xattrs = function(_, path) return fs.xattrs(path) end,
  hash = function(_, path) return store.hash_file(path) end,
  -- store(blobs, path, move) -> {hash, size [, head]} | nil, msg
  -- (a small file's first bytes come back with it: no second open to
  -- peek at them)
  store = function(_, blobs, path, move) return store.put_file(blobs, path, { move = move, head = HEAD }) end,
}

-- An operation that takes a host path away: the source of a move
-- renames.lua may find (which needs every operation in memory).
local function is_source(op)
  return op.base and op.base.exists and (op.kind == "delete" or op.kind == "replace_dir")
end

local Walk = {}
Walk.__index = Walk

-- add(op) -> op, its id the next.  self.ops holds the operations not yet
-- spooled (all of them when the walk keeps them in memory); self.n
-- counts every one.
function Walk:add(op)
  self.n = self.n + 1
  op.id = self.n
  self.ops[#self.ops + 1] = op
  self.counts[op.kind] = (self.counts[op.kind] or 0) + 1
  if self.spool_path and is_source(op) then self.sources = self.sources + 1 end
  return op
end

-- drop_last(): the operation added last is not one after all
function Walk:drop_last()
  local op = table.remove(self.ops)
  self.n = self.n - 1
  self.counts[op.kind] = self.counts[op.kind] - 1
  if self.counts[op.kind] == 0 then self.counts[op.kind] = nil end
  return op
end

-- flush(): with a spool, the operations of the entries walked so far
-- written out, but for trailing new directories (a directory the walk is
-- still below may yet turn out to hold only what is ignored, and go);
-- only once there are SPOOL_AFTER of them: a small capture stays in
-- memory, not written out and read back (a tenth of a 100-file one's)
local SPOOL_AFTER = 1000
function Walk:flush()
  if not self.spool_path or #self.ops < SPOOL_AFTER then return end
  local keep = #self.ops
  while keep > 0 and self.ops[keep].kind == "mkdir" do keep = keep - 1 end
  if keep == 0 then return end
  if not self.spool then
    local spool, msg = require("shannot.session.lines").writer(self.spool_path, { scratch = true })
    if not spool then err.throw(err.env("%s", msg)) end
    self.spool, self.encode = spool, require("shannot.session").encode_operation
  end
  for i = 1, keep do
    local ok, msg = self.spool:add_line(self.encode(self.ops[i]))
    if not ok then err.throw(err.env("%s", msg)) end
  end
  local n = #self.ops
  table.move(self.ops, keep + 1, n, 1)
  for i = n - keep + 1, n do self.ops[i] = nil end
end

local function fail(fmt, ...)
  err.throw(err.env(fmt, ...))
end

-- what the run made, refused as a whole
local function refuse(fmt, ...)
  err.throw(err.with_code(err.refused(fmt, ...), "refused"))
end

-- The longest path the kernel takes (PATH_MAX, with its NUL): a deeper
-- tree could be neither reviewed nor applied by path.
M.MAX_PATH = 4095

function Walk.check(_, ok, msg, ...)
  if not ok then fail("%s", msg) end
  return ok, msg, ...
end

-- The host's state of a path at capture time.
function Walk:base(host, st)
  if not st then return { exists = false } end
  local b = { exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    b.size = st.size
    if st.size <= M.BASE_CONTENT_MAX then
      -- Kept whole: the diff shown later is against what the script saw.
      local info = self:check(self.host:store(self.blobs, host, false))
      b.hash, b.stored = info.hash, true
    else
      b.hash = self:check(self.host:hash(host))
    end
  elseif st.type == "link" then
    b.link = self.host:readlink(host)
  end
  return b
end

-- What a path becomes: type, owner, mode, and the modification time the
-- script gave it (execute gives it the same: dpkg's shipped times, a .pyc
-- valid for its .py).
local function new_meta(st)
  return { type = st.type, mode = st.mode, uid = st.uid, gid = st.gid, mtime_sec = st.mtime_sec,
    mtime_nsec = st.mtime_nsec }
end

-- The kept extended attributes of path in tree | nil: none, or a tree
-- that cannot tell (a remote host over SFTP).
function Walk:xattrs(tree, path)
  if not tree.xattrs then return nil end
  return xattrs.kept_of(self:check(tree:xattrs(path)))
end

-- Metadata-only changes of a path that exists on both sides (e: as for
-- file/symlink/dir below).
function Walk:metadata(e)
  local path, host, ust, hst = e.path, e.host, e.ust, e.hst
  local base
  if ust.type ~= "link" and ust.mode ~= hst.mode then
    base = self:base(host, hst)
    self:add({ kind = "chmod", path = path, new = new_meta(ust), base = base })
  end
  if ust.uid ~= hst.uid or ust.gid ~= hst.gid then
    base = base or self:base(host, hst)
    self:add({ kind = "chown", path = path, new = new_meta(ust), base = base })
  end
  -- the time alone (touch -d, a tool restoring a shipped time): files and
  -- symlinks; a directory's changes whenever anything in it does
  -- (a host tree without nanoseconds, SFTP's, is compared in seconds)
  local moved = ust.mtime_sec ~= hst.mtime_sec or (hst.mtime_nsec ~= nil and ust.mtime_nsec ~= hst.mtime_nsec)
  if ust.type ~= "dir" and ust.mtime_sec and moved then
    base = base or self:base(host, hst)
    base.mtime_sec, base.mtime_nsec = hst.mtime_sec, hst.mtime_nsec
    self:add({ kind = "touch", path = path, new = new_meta(ust), base = base })
  end
  if ust.type ~= "link" and self.up.xattrs and self.host.xattrs then
    local now, before = self:xattrs(self.up, e.up), self:xattrs(self.host, host)
    if not xattrs.same(now, before) then
      base = base or self:base(host, hst)
      base.xattrs = before
      local new = new_meta(ust)
      new.xattrs = now
      self:add({ kind = "xattr", path = path, new = new, base = base })
    end
  end
end

-- file/symlink/dir(e): one entry of the upper tree, e = {path (what it
-- stands for), up (its upper path), host (the host path, or nil when all
-- is new there), ust, hst (their lstats)}
function Walk:file(e)
  local path, ust = e.path, e.ust
  local first = self.n + 1
  self:content(e)
  if (ust.nlink or 1) > 1 and ust.ino then
    -- one of several names of one file: made a hard link after the walk
    local key = tostring(ust.dev) .. ":" .. tostring(ust.ino)
    local group = self.linked[key] or {}
    self.linked[key] = group
    local op = self.n >= first and self.ops[#self.ops - (self.n - first)] or nil
    group[#group + 1] = { path = path, write = op and op.kind == "write" and op or nil }
  end
end

function Walk:content(e)
  local path, up, host, ust, hst = e.path, e.up, e.host, e.ust, e.hst
  if hst and hst.type == "file" and hst.size == ust.size then
    local same = self:check(self.up:hash(up)) == self:check(self.host:hash(host))
    if same then return self:metadata(e) end
  end
  if self.max_bytes and self.bytes + ust.size > self.max_bytes then
    -- apparent sizes: a sparse file costs no disk in staging, but would
    -- be read, hashed and stored whole
    refuse("the run wrote more than %d bytes of files (%s is %d bytes): more than [limits] staging lets a " ..
      "capture keep", self.max_bytes, text.middle(path, 80), ust.size)
  end
  local base = self:base(host, hst)
  local attrs = self:xattrs(self.up, up)  -- read before the content moves away
  local info = self:check(self.up:store(self.blobs, up, true))
  local new = new_meta(ust)
  new.hash, new.size, new.xattrs = info.hash, info.size, attrs
  -- whether a person can read it as text (policy rates what they cannot)
  local head = info.head or store.peek(self.blobs, info.hash, HEAD)
  new.content = require("shannot.diff").content_kind(head or "", info.size)
  self.bytes = self.bytes + info.size
  self.progress:add(0, info.size)
  self:add({ kind = "write", path = path, new = new, base = base })
end

function Walk:symlink(e)
  local path, up, host, ust, hst = e.path, e.up, e.host, e.ust, e.hst
  local target = self:check(self.up:readlink(up))
  if hst and hst.type == "link" and self.host:readlink(host) == target then
    return self:metadata(e)
  end
  local new = new_meta(ust)
  new.link = target
  self:add({ kind = "symlink", path = path, new = new, base = self:base(host, hst) })
end

-- A FIFO is made anew at execute (it holds no data worth keeping); one
-- that is there already only changes owner or mode.
function Walk:fifo(e)
  local path, host, ust, hst = e.path, e.host, e.ust, e.hst
  if hst and hst.type == "fifo" then return self:metadata(e) end
  local new = new_meta(ust)
  new.xattrs = self:xattrs(self.up, e.up)
  self:add({ kind = "mkfifo", path = path, new = new, base = self:base(host, hst) })
end

-- A directory that stays: its time as the script left it, set at execute
-- once everything in it is done (an entry replaced by rename moves it;
-- the script's own changes moved it in the sandbox).
function Walk:dir_time(path, ust, hst)
  if ust.mtime_sec then
    -- base: the host's, which execute finds again unless someone else
    -- changed the directory since
    self.dir_times[#self.dir_times + 1] = { path = path, mtime_sec = ust.mtime_sec, mtime_nsec = ust.mtime_nsec or 0,
      base_sec = hst and hst.mtime_sec, base_nsec = hst and hst.mtime_nsec }
  end
end

-- Whether the walk below a directory kept nothing and left something
-- out ([capture] ignore): before = {ops =, ignored =, skipped =} as they
-- were when it started.
function Walk:only_ignored(before)
  return self.n == before.ops and self.ignored > before.ignored and #self.skipped == before.skipped
end

function Walk:marks()
  return { ops = self.n, ignored = self.ignored, skipped = #self.skipped }
end

function Walk:dir(e)
  local path, up, host, ust, hst = e.path, e.up, e.host, e.ust, e.hst
  if hst and hst.type == "dir" and not self.up:opaque(up) then
    self:metadata(e)
    self:dir_time(path, ust, hst)
    local time, before = self.dir_times[#self.dir_times], self:marks()
    self:tree(up, path, host)
    -- only ignored paths changed in it: its time stays the host's
    if self:only_ignored(before) and time and self.dir_times[#self.dir_times] == time then
      self.dir_times[#self.dir_times] = nil
    end
    return
  end
  local kind = (hst and hst.type == "dir") and "replace_dir" or "mkdir"
  local new = new_meta(ust)
  new.xattrs = self:xattrs(self.up, up)
  local before = self:marks()
  local op = self:add({ kind = kind, path = path, new = new, base = self:base(host, hst) })
  before.ops = self.n
  -- Everything below is new: the host's entries (if any) are gone.
  self:tree(up, path, nil)
  if kind == "mkdir" and self:only_ignored(before) then
    -- a new directory holding only what is left out (a __pycache__)
    assert(self:drop_last() == op)
    self.ignored = self.ignored + 1
  end
end

-- left_out(up, ust) -> the number of upper entries an ignored one stands
-- for: itself and everything below it
function Walk:left_out(up, ust)
  local n = 1
  if ust.type == "dir" then
    for _, name in ipairs(self:check(self.up:names(up))) do
      local below = join(up, name)
      n = n + self:left_out(below, self:check(self.up:lstat(below)))
    end
  end
  return n
end

-- An ignored entry is left out with everything below it, but for an
-- empty directory the run made: that is structure a program may need (a
-- package's /var/log/NAME), not noise.
function Walk:ignored_entry(up, ust, host)
  if ust.type == "dir" and #self:check(self.up:names(up)) == 0 and not (host and self.host:lstat(host)) then
    return false
  end
  self.ignored = self.ignored + self:left_out(up, ust)
  return true
end

function Walk:entry(name, up_dir, path_dir, host_dir)
  local up, path = join(up_dir, name), join(path_dir, name)
  if #up > M.MAX_PATH or #path > M.MAX_PATH then
    refuse("the run made a path longer than %d bytes (%s): it can be neither reviewed nor applied",
      M.MAX_PATH, text.middle(path, 80))
  end
  local host = host_dir and join(host_dir, name)
  local ust = self:check(self.up:lstat(up))
  -- before the host is asked anything (a remote's lstat is a round trip)
  if self.ignores and self.ignores(path) and self:ignored_entry(up, ust, host) then return end
  local hst = host and self.host:lstat(host)
  if is_whiteout(ust) then
    if hst then self:add({ kind = "delete", path = path, base = self:base(host, hst) }) end
  elseif ust.type == "dir" then
    self:dir({ path = path, up = up, host = host, ust = ust, hst = hst })
  elseif ust.type == "file" then
    self:file({ path = path, up = up, host = host, ust = ust, hst = hst })
  elseif ust.type == "link" then
    self:symlink({ path = path, up = up, host = host, ust = ust, hst = hst })
  elseif ust.type == "fifo" then
    self:fifo({ path = path, up = up, host = host, ust = ust, hst = hst })
  else
    self.skipped[#self.skipped + 1] = { path = path, type = ust.type }
  end
  self.progress:add(1, 0, path)
  self:flush()
end

-- Names the run gave one file (several upper paths, one inode) become
-- hard links: every written name but one is an operation `link` to that
-- one (the name whose content the host already has, if any, else the
-- first written), applied after every other file operation so that what
-- it links to is in place.  Op ids follow the new order.
function Walk:hard_links()
  local links, seen = {}, {}
  local keys = {}
  for key in pairs(self.linked) do keys[#keys + 1] = key end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local group = self.linked[key]
    if #group > 1 then
      local source
      for _, m in ipairs(group) do
        if not m.write then source = m; break end
      end
      source = source or group[1]
      for _, m in ipairs(group) do
        if m ~= source and m.write then
          local op = m.write
          op.kind = "link"
          op.new.hardlink = source.path
          self.counts.write = self.counts.write - 1
          self.counts.link = (self.counts.link or 0) + 1
          links[#links + 1], seen[op] = op, true
        end
      end
    end
  end
  if #links == 0 then return end
  if self.spooled then
    -- spooled as writes: each_operation() leaves them out there, and
    -- puts them after the rest
    self.links, self.link_ids = links, {}
    for _, op in ipairs(links) do self.link_ids[op.id] = true end
    return
  end
  local ordered = {}
  for _, op in ipairs(self.ops) do
    if not seen[op] then ordered[#ordered + 1] = op end
  end
  table.move(links, 1, #links, #ordered + 1, ordered)
  for i, op in ipairs(ordered) do op.id = i end
  self.ops = ordered
end

-- finish_spool(): every operation written out and the spool complete;
-- when the run took host paths away, read back whole instead (the
-- search for moves, renames.lua, needs all of them at once)
function Walk:finish_spool()
  if not self.spool then return end  -- all of them still here
  for _, op in ipairs(self.ops) do
    local ok, msg = self.spool:add_line(self.encode(op))
    if not ok then fail("%s", msg) end
  end
  self.ops = {}
  local ok, msg = self.spool:commit()
  if not ok then fail("%s", msg) end
  self.spool, self.spooled = nil, self.spool.path
  if self.sources == 0 then return end
  local by_id = {}
  for _, op in self:spooled_operations() do
    self.ops[#self.ops + 1] = op
    by_id[op.id] = op
  end
  -- the hard links' groups hold the operations as they were made
  for _, group in pairs(self.linked) do
    for _, m in ipairs(group) do
      if m.write then m.write = by_id[m.write.id] end
    end
  end
  fs.remove(self.spooled)
  self.spooled = nil
end

-- spooled_operations() -> iterator of (n, op) over the spool: this
-- walk's own records, in its own staging (no sandbox ever sees it), read
-- back as written: decoded, not checked against the schema again
-- (everything that reads them from the session later checks them)
function Walk:spooled_operations()
  local decode = require("shannot.session").decode_checked_operation
  local it, msg = require("shannot.session.lines").records(self.spooled, decode)
  if not it then fail("%s", msg) end
  return it
end

-- each_operation(w, fn): fn(op) for every operation of a finished walk,
-- in order, ids numbered from 1 (a spooled walk's read back one at a
-- time: the operations of 100 000 files are never all in memory).
-- -> how many
function M.each_operation(w, fn)
  local n = 0
  local function give(op)
    n = n + 1
    op.id = n
    fn(op)
  end
  if w.spooled then
    local links = w.link_ids or {}
    for _, op in w:spooled_operations() do
      if not links[op.id] then give(op) end
    end
    for _, op in ipairs(w.links or {}) do give(op) end
  end
  for _, op in ipairs(w.ops) do give(op) end
  return n
end

-- count(w) -> how many operations a finished walk has
function M.count(w)
  return w.n
end

-- tree(upper dir, path it stands for, host dir or nil when all is new)
function Walk:tree(up_dir, path_dir, host_dir)
  local names = self:check(self.up:names(up_dir))
  for _, name in ipairs(names) do self:entry(name, up_dir, path_dir, host_dir) end
end

-- operations(overlays, blobs_dir [, trees [, opts]]) -> {ops =, counts =,
-- bytes =, skipped =, ignored =} | nil, err (code "refused": what the run
-- made cannot be captured at all).  overlays: {{target =, upper =}...};
-- trees: {up =, host =} (default: both this machine's); opts.max_bytes:
-- the most file content a capture keeps; opts.ignore: path globs
-- (glob.match_path) left out, counted in ignored; opts.progress:
-- shannot.progress's reporter (entries walked, bytes stored);
-- opts.spool: a file the operations go to as they are found (read them
-- with each_operation: ops holds only those added after the walk).
function M.operations(overlays, blobs, trees, opts)
  local w = setmetatable({ ops = {}, n = 0, counts = {}, bytes = 0, skipped = {}, blobs = blobs, linked = {},
    dir_times = {}, spool_path = opts and opts.spool, sources = 0,
    up = trees and trees.up or M.local_tree, host = trees and trees.host or M.local_tree,
    max_bytes = opts and opts.max_bytes, overlays = overlays, ignored = 0,
    progress = opts and opts.progress or require("shannot.progress").none }, Walk)
  -- ignores(path) -> whether [capture] ignore leaves path out (nil: no list)
  local ignore = opts and opts.ignore or {}
  if #ignore > 0 then w.ignores = glob.any_path(ignore) end
  w.progress:start("capturing", nil, nil, "entries")
  return err.try(function()
    for _, o in ipairs(overlays) do
      -- The root itself: a chmod or chown of the captured directory.
      local ust, hst = w:check(w.up:lstat(o.upper)), w:check(w.host:lstat(o.target))
      w:metadata({ path = o.target, up = o.upper, host = o.target, ust = ust, hst = hst })
      w:dir_time(o.target, ust, hst)
      w:tree(o.upper, o.target, o.target)
    end
    w:finish_spool()
    w:hard_links()
    if not w.spooled then
      -- (a run that took nothing away has no move to find)
      if w.sources > 0 or not w.spool_path then require("shannot.capture.renames").detect(w) end
      w.n = #w.ops
    end
    return w
  end)
end

-- What an executor's capture hands back (see executor/init.lua): its
-- fields, and the removal of what it staged, done once, at the end of the
-- caller's scope (<close>) or by :close().  The caller sets discard when
-- the walk refused what the trees hold: none of it is kept for a later
-- run (a local staging is then removed whole, not pooled).
local Trees = {}
Trees.__index = Trees

function Trees:close()
  self.staging:close()
end

Trees.__close = Trees.close

-- trees(fields, remove) -> fields as a to-be-closed Trees
function M.trees(fields, remove)
  fields.staging = guard(remove)
  return setmetatable(fields, Trees)
end

-- add_questions(result, questions): each question the run asked the
-- host (capture/queries.lua) as a query operation, with the answer it got
-- (the output whole for review, its hash for the comparison at execute:
-- output need not be UTF-8, which session.json's strings are).
function M.add_questions(w, questions)
  for _, q in ipairs(questions) do
    w.counts.query = (w.counts.query or 0) + 1
    w.n = w.n + 1
    w.ops[#w.ops + 1] = { id = w.n, kind = "query", argv = q.argv,
      answer = { code = q.code, stdout = q.stdout, sha256 = store.hash_string(q.stdout) } }
  end
  return w
end

-- add_deferred(result, records): each deferred command as an exec
-- operation, after the file operations, in the order it was called.
function M.add_deferred(w, records)
  for _, r in ipairs(records) do
    w.counts.exec = (w.counts.exec or 0) + 1
    w.n = w.n + 1
    w.ops[#w.ops + 1] = { id = w.n, kind = "exec", argv = r.argv, cwd = r.cwd }
  end
  return w
end

return M
