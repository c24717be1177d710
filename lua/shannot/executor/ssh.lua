-- The SSH executor (DESIGN §6): the same operations as the local one, on
-- a remote host through one connection: SFTP for metadata and contents,
-- exec for what SFTP cannot do without following symlinks (chown -h,
-- rm -rf, sha256sum).  SFTP resolves every path from the root, so before
-- each operation every directory on its path is checked with lstat: a
-- symlink there is refused (ELOOP), never followed.
local fs = require("shannot.fs")
local store = require("shannot.store")
local text = require("shannot.text")

local M = {}
M.__index = M

local q = text.quote

local function split(path)
  local parent, name = path:match("^(.*)/([^/]+)$")
  if not parent then return nil end
  return parent == "" and "/" or parent, name
end

local function fail(msg, code)
  error({ apply_error = msg, code = code }, 0)
end

local function check(ok, msg, ...)
  if not ok then fail(msg) end
  return ok, msg, ...
end

-- new(session, scratch_dir) -> executor; scratch: a local directory for
-- contents on their way (removed by close()).
function M.new(session, target, scratch)
  local sftp, msg = session:sftp()
  if not sftp then return nil, msg end
  return setmetatable({ s = session, sftp = sftp, target = target, scratch = scratch, n = 0 }, M)
end

function M:close()
  if self.sftp then self.sftp:close(); self.sftp = nil end
  if self.s then self.s:close(); self.s = nil end
  if self.scratch then fs.rmtree(self.scratch); self.scratch = nil end
end

function M:run(command, timeout)
  local r, msg = self.s:exec(command, { timeout = timeout or 600 })
  if not r then return nil, msg end
  if r.code ~= 0 then
    return nil, text.inert(((r.stderr or "") ~= "" and r.stderr or ("exit " .. tostring(r.code))):match("[^\n]*"))
  end
  return r
end

-- parents_ok(path) -> true | false (a parent is missing) | nil, msg (a
-- symlink or a non-directory on the way)
function M:parents_ok(path)
  local dir = ""
  local parent = split(path)
  if not parent then return nil, path .. ": not an absolute path below /" end
  for part in parent:gmatch("[^/]+") do
    dir = dir .. "/" .. part
    local st, msg, code = self.sftp:lstat(dir)
    if not st then
      if code == "ENOENT" then return false end
      return nil, msg
    end
    if st.type == "link" then return nil, dir .. ": a symlink on the path (refused)", "ELOOP" end
    if st.type ~= "dir" then return false end
  end
  return true
end

function M:hash(path)
  local r, msg = self:run("sha256sum -- " .. q(path), 3600)
  if not r then return nil, msg end
  return r.stdout:match("^(%x+)")
end

-- ex:state(path [, known]) -> state | nil, msg
function M:state(path, known)
  local ok, msg = self:parents_ok(path)
  if ok == nil then return nil, msg end
  if ok == false then return { exists = false } end
  local st, smsg, code = self.sftp:lstat(path)
  if not st then
    if code == "ENOENT" then return { exists = false } end
    return nil, smsg
  end
  local out = { exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    out.size = st.size
    if known and known.hash and known.size == st.size then
      out.hash = known.hash
    else
      local h, herr = self:hash(path)
      if not h then return nil, herr end
      out.hash = h
    end
  elseif st.type == "link" then
    out.link = self.sftp:readlink(path)
  end
  return out
end

function M:scratch_file()
  self.n = self.n + 1
  return self.scratch .. "/f" .. self.n
end

function M:entry(path, st, cpdir)
  local e = { path = path, exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    local tmp = self:scratch_file()
    local ok, msg = self.sftp:get(path, tmp)
    if not ok then return nil, msg end
    local info, ierr = store.put_file(cpdir, tmp, { move = true })
    fs.remove(tmp)
    if not info then return nil, ierr end
    e.hash, e.size = info.hash, info.size
  elseif st.type == "link" then
    e.link = self.sftp:readlink(path)
  end
  return e
end

function M:subtree(path, into)
  local names = self.sftp:readdir(path) or {}
  table.sort(names)
  for _, name in ipairs(names) do
    local child = path .. "/" .. name
    local st = self.sftp:lstat(child)
    if st then
      into[#into + 1] = { path = child, st = st }
      if st.type == "dir" then self:subtree(child, into) end
    end
  end
end

-- ex:originals(op, cpdir) -> checkpoint entries | nil, msg
function M:originals(op, cpdir)
  local ok, msg = self:parents_ok(op.path)
  if ok == nil then return nil, msg end
  local st = ok and self.sftp:lstat(op.path)
  if not st then return { { path = op.path, exists = false, op = op.id } } end
  local e, emsg = self:entry(op.path, st, cpdir)
  if not e then return nil, emsg end
  e.op = op.id
  local out = { e }
  local replaces_dir = st.type == "dir" and (op.kind == "delete" or op.kind == "replace_dir"
    or (op.new and op.new.type ~= "dir"))
  if replaces_dir then
    local below = {}
    self:subtree(op.path, below)
    for _, b in ipairs(below) do
      local be, berr = self:entry(b.path, b.st, cpdir)
      if not be then return nil, berr end
      be.below = op.id
      out[#out + 1] = be
    end
  end
  return out
end

function M:sync(cpdir) -- luacheck: ignore 212/self
  return fs.syncfs(cpdir)
end

function M:remove_tree(path)
  check(self:run("rm -rf -- " .. q(path)))
end

-- A mode set on the entry itself: opened O_PATH|O_NOFOLLOW (010000000 is
-- O_PATH on every Linux architecture shannot targets) and changed through
-- /proc/self/fd, so a name swapped for a symlink is never followed.  perl
-- is on every Debian (perl-base is essential); without it, SFTP after an
-- lstat (a narrow race: design note 31).
local CHMOD_NOFOLLOW = [[perl -MFcntl -e 'sysopen(my $f, $ARGV[1], 010000000 | O_NOFOLLOW) or die "$ARGV[1]: $!\n";]] ..
  [[ my @s = stat($f) or die "$ARGV[1]: $!\n"; if (($s[2] & 0170000) == 0120000) { print "symlink"; exit 3 }]] ..
  [[ chmod(oct($ARGV[0]), "/proc/self/fd/" . fileno($f)) or die "$ARGV[1]: $!\n"' ]]

function M:chmod_entry(path, mode)
  if self.perl ~= false then
    local r, msg = self.s:exec(CHMOD_NOFOLLOW .. string.format("%o", mode) .. " " .. q(path), { timeout = 120 })
    if not r then fail(msg) end
    if r.code == 3 and r.stdout == "symlink" then fail("is now a symlink") end
    if r.code == 0 then self.perl = true; return end
    if r.code ~= 127 or self.perl then fail(text.inert((r.stderr or ""):match("[^\n]*") or "chmod failed")) end
    self.perl = false
  end
  local st = check(self.sftp:lstat(path))
  if st.type == "link" then fail("is now a symlink") end
  check(self.sftp:chmod(path, mode))
end

function M:owner_mode(path, n, is_link)
  if n.uid and n.gid then
    check(self:run(string.format("chown -h %d:%d -- %s", n.uid, n.gid, q(path))))
  end
  if not is_link and n.mode then self:chmod_entry(path, n.mode) end
end

-- put_content(blobs, hash, remote_tmp): a blob to a new remote file
function M:put_content(blobs, hash, tmp)
  local lfile = self:scratch_file()
  check(store.copy_out(blobs, hash, lfile, 384))
  local ok, msg = self.sftp:put(lfile, tmp, 384)
  fs.remove(lfile)
  check(ok, msg)
end

local APPLY = {}

function APPLY.write(self, op, ctx, tmp)
  self:remove_tree(tmp)
  self:put_content(ctx.blobs, op.new.hash, tmp)
  ctx.step()
  self:owner_mode(tmp, op.new, false)
  local st = self.sftp:lstat(op.path)
  if st and st.type == "dir" then self:remove_tree(op.path) end
  check(self.sftp:rename(tmp, op.path))
end

function APPLY.symlink(self, op, _, tmp)
  self:remove_tree(tmp)
  check(self.sftp:symlink(op.new.link, tmp))
  self:owner_mode(tmp, op.new, true)
  local st = self.sftp:lstat(op.path)
  if st and st.type == "dir" then self:remove_tree(op.path) end
  check(self.sftp:rename(tmp, op.path))
end

function APPLY.mkdir(self, op)
  local st = self.sftp:lstat(op.path)
  if st and st.type ~= "dir" then self:remove_tree(op.path) end
  if not st or st.type ~= "dir" then check(self.sftp:mkdir(op.path, 448)) end
  self:owner_mode(op.path, op.new, false)
end

function APPLY.replace_dir(self, op)
  self:remove_tree(op.path)
  check(self.sftp:mkdir(op.path, 448))
  self:owner_mode(op.path, op.new, false)
end

function APPLY.delete(self, op)
  self:remove_tree(op.path)
end

function APPLY.chmod(self, op)
  self:chmod_entry(op.path, op.new.mode)
end

function APPLY.chown(self, op)
  local st = check(self.sftp:lstat(op.path))
  self:owner_mode(op.path, op.new, st.type == "link")
end

local function guarded(fn)
  local ok, e = pcall(fn)
  if ok then return true end
  if type(e) == "table" and e.apply_error then return nil, e.apply_error end
  error(e, 0)
end

-- ex:apply(op, ctx) -> true | nil, msg
function M:apply(op, ctx)
  local ok, msg = self:parents_ok(op.path)
  if not ok then return nil, msg or (op.path .. ": its directory is gone") end
  local parent = split(op.path)
  local tmp = (parent == "/" and "" or parent) .. "/" .. ctx.temp_prefix .. op.id
  return guarded(function() APPLY[op.kind](self, op, ctx, tmp) end)
end

-- ex:exec(op, timeout) -> result
function M:exec(op, timeout)
  local words = {}
  for i, a in ipairs(op.argv) do words[i] = q(a) end
  local cmd = "cd " .. q(op.cwd or "/") .. " 2>/dev/null || cd /; exec " .. table.concat(words, " ")
  local r, msg = self.s:exec(cmd, { timeout = timeout })
  if not r then return { id = op.id, ok = false, error = msg } end
  return { id = op.id, ok = r.code == 0, code = r.code, signal = r.signal,
    stdout = r.stdout, stderr = r.stderr, timed_out = r.timed_out or nil }
end

-- ex:restore(entry, cpdir, temp_prefix) -> true | nil, msg
function M:restore(e, cpdir, temp_prefix)
  local ok, msg = self:parents_ok(e.path)
  if ok == nil then return nil, msg end
  if ok == false then
    if not e.exists then return true end
    return nil, e.path .. ": its directory is gone"
  end
  local parent = split(e.path)
  local tmp = (parent == "/" and "" or parent) .. "/" .. temp_prefix .. "restore"
  return guarded(function()
    if not e.exists then return self:remove_tree(e.path) end
    local st = self.sftp:lstat(e.path)
    if e.type == "dir" then
      if st and st.type ~= "dir" then self:remove_tree(e.path); st = nil end
      if not st then check(self.sftp:mkdir(e.path, 448)) end
      self:owner_mode(e.path, e, false)
    elseif e.type == "file" or e.type == "link" then
      self:remove_tree(tmp)
      if e.type == "file" then
        self:put_content(cpdir, e.hash, tmp)
      else
        check(self.sftp:symlink(e.link, tmp))
      end
      self:owner_mode(tmp, e, e.type == "link")
      if st and st.type == "dir" then self:remove_tree(e.path) end
      check(self.sftp:rename(tmp, e.path))
    end
  end)
end

-- ex:remove_temps(paths, prefix)
function M:remove_temps(paths, prefix)
  local dirs, seen = {}, {}
  for _, p in ipairs(paths) do
    local parent = split(p)
    if parent and not seen[parent] then seen[parent] = true; dirs[#dirs + 1] = q(parent) end
  end
  if #dirs == 0 then return end
  self:run("for d in " .. table.concat(dirs, " ") .. "; do [ -d \"$d\" ] && [ ! -L \"$d\" ] && " ..
    "rm -rf -- \"$d\"/" .. q(prefix) .. "*; done; true")
end

return M
