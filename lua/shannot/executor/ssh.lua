-- The SSH executor (DESIGN §6): the same operations as the local one, on
-- a remote host through one connection: SFTP to read state and carry
-- contents, and every change through the AT perl script below (a walk to
-- the parent that no swapped symlink can redirect, then relative calls).
-- Reads check every directory on a path with lstat first.
local common = require("shannot.executor.common")
local fs = require("shannot.fs")
local guard = require("shannot.guard")
local store = require("shannot.store")
local text = require("shannot.text")

local M = {}
M.__index = M
M.__close = function(self) self:close() end

local q = text.quote

local split, fail, check = common.split, common.fail, common.check

-- new(session, remote, scratch_dir) -> executor; remote: remote.resolve's
-- table; scratch: a local directory for contents on their way (removed by
-- close()).
function M.new(session, remote, scratch)
  local sftp, msg = session:sftp()
  if not sftp then return nil, msg end
  return setmetatable({ s = session, sftp = sftp, target = remote.name, remote = remote,
    default_profile = remote.profile, scratch = scratch, n = 0 }, M)
end

-- ex:location() -> {name, user, host, port, fingerprint, key_file}: where
-- this executor's changes land, as a session records it (issue 15.3)
function M:location()
  local key = self.s and self.s:host_key() or {}
  local r = self.remote
  return { name = r.name, user = r.user, host = r.host, port = r.port, fingerprint = key.fingerprint,
    key_file = r.key_file }
end

-- ex:capture(plan) -> trees, deferred, result (see executor/init.lua)
function M:capture(plan)
  return require("shannot.capture.ssh").capture(self, plan)
end

function M:close()
  if self.private and self.s then
    self.s:exec("rm -rf -- " .. q(self.private), { timeout = 120 })
    self.private = nil
  end
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

-- ex:state(path [, known]) -> state | nil, err
function M:state(path, known)
  local ok, msg = self:parents_ok(path)
  if ok == nil then return common.failure(msg) end
  if ok == false then return { exists = false } end
  local st, smsg, code = self.sftp:lstat(path)
  if not st and code ~= "ENOENT" then return common.failure(smsg, code) end
  return common.returns(common.state_of(st, known, function() return self:hash(path) end,
    function() return self.sftp:readlink(path) end))
end

function M:scratch_file()
  self.n = self.n + 1
  return self.scratch .. "/f" .. self.n
end

function M:sync(cpdir) -- luacheck: ignore 212/self
  return common.returns(fs.syncfs(cpdir))
end

-- Every change on the remote goes through this perl script (perl-base is
-- essential on Debian): it walks to the parent directory one component
-- at a time (lstat, chdir, then the dev and inode of "." must be the
-- lstat'd ones: a component swapped for a symlink meanwhile is refused,
-- never followed) and then acts relative to that directory, which no
-- rename of a path can move: new files O_EXCL|O_NOFOLLOW, owner and mode
-- through the open descriptor, renames within the directory.  SFTP alone
-- resolves every path from the root at each call, so another user who
-- may write a directory on the way could redirect root's writes.
local AT = [==[
use strict; use Fcntl;
my ($act, $parent, $name, @a) = @ARGV;
sub walkto { my ($dir, $lenient) = @_; chdir "/" or die "/: $!\n";
  for my $p (grep { length } split m{/}, $dir) {
    my @l = lstat($p);
    exit 0 if $lenient && (!@l && $!{ENOENT} || @l && !-l _ && !-d _); # nothing there
    @l or die "$dir: $p: $!\n";
    die "$dir: $p is a symlink (refused)\n" if -l _;
    die "$dir: $p is not a directory\n" unless -d _;
    chdir($p) or die "$dir: $p: $!\n";
    my @s = stat(".");
    die "$dir: $p changed while walking (refused)\n" unless $s[0] == $l[0] && $s[1] == $l[1];
  } }
walkto($parent, $act eq "snap");
sub own { my ($fh, $uid, $gid, $mode) = @_;
  chown($uid, $gid, $fh) or die "$name: chown: $!\n" if $uid ne "";
  chmod(oct($mode), $fh) or die "$name: chmod: $!\n" if $mode ne ""; }
sub stamp { my ($n, $t) = @_; return if !defined $t || $t eq "";
  system("touch", "-h", "-c", "-d", "\@$t", "--", "./$n") == 0 or die "$n: touch failed\n"; }
sub lown { my ($n, $uid, $gid) = @_; return if $uid eq "";
  system("chown", "-h", "$uid:$gid", "--", "./$n") == 0 or die "$n: chown -h failed\n"; }
my %kind = (0100000, "file", 0040000, "dir", 0120000, "link", 0020000, "char",
  0060000, "block", 0010000, "fifo", 0140000, "socket");
sub rec { my ($t, $s, $rel, $link, $size) = @_;
  printf "%s %o %d %d %d %d %d %d\n%s%s", $t, $s->[2] & 07777, $s->[4], $s->[5], $size,
    length($rel), length($link), $s->[9], $rel, $link; }
sub same { my ($a, $b) = @_; return $a->[0] == $b->[0] && $a->[1] == $b->[1] }
sub snap { my ($n, $rel, $deep) = @_; my $shown = $rel eq "" ? $name : $rel;
  my @l = lstat($n);
  unless (@l) { return if $!{ENOENT}; die "$shown: $!\n" }
  my $t = $kind{$l[2] & 0170000} or die "$shown: unknown type\n";
  if ($t eq "link") {
    my $to = readlink($n); defined $to or die "$shown: $!\n"; rec($t, \@l, $rel, $to, 0);
  } elsif ($t eq "file") {
    sysopen(my $f, $n, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or die "$shown: $!\n";
    my @s = stat($f); die "$shown changed while read (refused)\n" unless same(\@s, \@l);
    rec($t, \@s, $rel, "", $s[7]); my ($left, $buf) = ($s[7]);
    while ($left > 0) {
      my $got = sysread($f, $buf, $left < 1048576 ? $left : 1048576);
      defined $got or die "$shown: $!\n"; die "$shown shrank while read (refused)\n" unless $got;
      print $buf; $left -= $got; }
  } elsif ($t eq "dir" && $deep) {
    rec($t, \@l, $rel, "", 0); my @up = stat(".");
    chdir($n) or die "$shown: $!\n"; my @in = stat(".");
    die "$shown changed while walking (refused)\n" unless same(\@in, \@l);
    opendir(my $dh, ".") or die "$shown: $!\n";
    my @names = sort grep { $_ ne "." && $_ ne ".." } readdir($dh); closedir($dh);
    snap($_, $rel eq "" ? $_ : "$rel/$_", 1) for @names;
    chdir("..") or die "$shown: $!\n"; my @back = stat(".");
    die "$shown moved while walking (refused)\n" unless same(\@back, \@up);
  } else { rec($t, \@l, $rel, "", 0) } }
sub names { my ($n, $rel) = @_; my @l = lstat($n);
  return unless @l && !-l _ && -d _;
  my @up = stat("."); chdir($n) or die "$rel: $!\n"; my @in = stat(".");
  die "$rel changed while walking (refused)\n" unless same(\@in, \@l);
  opendir(my $dh, ".") or die "$rel: $!\n";
  my @all = sort grep { $_ ne "." && $_ ne ".." } readdir($dh); closedir($dh);
  for (@all) { print "$rel/$_\0"; names($_, "$rel/$_") }
  chdir("..") or die "$rel: $!\n"; my @back = stat(".");
  die "$rel moved while walking (refused)\n" unless same(\@back, \@up); }
sub gone { my $n = shift; if (lstat($n)) { system("rm", "-rf", "--", "./$n") == 0 or die "$n: rm failed\n" } }
if ($act eq "put") {            # SRC TMP UID GID MODE MTIME
  my ($src, $tmp, $uid, $gid, $mode, $mtime) = @a; gone($tmp);
  open(my $in, "<", $src) or die "$src: $!\n";
  sysopen(my $out, $tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600) or die "$tmp: $!\n";
  binmode $in; binmode $out; my $buf;
  my $total = 0;  # a block of zeros is a hole: a sparse file stays sparse
  while (my $n = sysread($in, $buf, 1 << 16)) {
    if ($buf =~ /\A\0*\z/) { defined sysseek($out, $n, 1) or die "$tmp: $!\n" }
    else { syswrite($out, $buf) == $n or die "$tmp: $!\n" }
    $total += $n; }
  truncate($out, $total) or die "$tmp: $!\n";
  own($out, $uid, $gid, $mode); close($out) or die "$tmp: $!\n"; stamp($tmp, $mtime);
  gone($name) if -d $name && !-l $name; rename($tmp, $name) or die "$name: $!\n";
} elsif ($act eq "symlink") {   # TARGET TMP UID GID MTIME
  my ($target, $tmp, $uid, $gid, $mtime) = @a; gone($tmp);
  symlink($target, $tmp) or die "$tmp: $!\n"; lown($tmp, $uid, $gid); stamp($tmp, $mtime);
  gone($name) if -d $name && !-l $name; rename($tmp, $name) or die "$name: $!\n";
} elsif ($act eq "hardlink") {  # SRCPARENT SRCNAME TMP: a second name for SRCPARENT/SRCNAME
  my ($sp, $sn, $tmp) = @a; gone($tmp);
  walkto($sp); sysopen(my $sd, ".", O_RDONLY | O_DIRECTORY) or die "$sp: $!\n"; walkto($parent);
  link("/proc/self/fd/" . fileno($sd) . "/$sn", $tmp) or die "$tmp: link: $!\n";
  gone($name) if -d $name && !-l $name; rename($tmp, $name) or die "$name: $!\n";
} elsif ($act eq "fifo") {      # TMP UID GID MODE MTIME
  my ($tmp, $uid, $gid, $mode, $mtime) = @a; gone($tmp);
  system("mkfifo", "-m", "600", "--", "./$tmp") == 0 or die "$tmp: mkfifo failed\n";
  sysopen(my $f, $tmp, 010000000 | O_NOFOLLOW) or die "$tmp: $!\n";
  my $via = "/proc/self/fd/" . fileno($f);
  chown($uid, $gid, $via) or die "$tmp: chown: $!\n" if $uid ne "";
  chmod(oct($mode), $via) or die "$tmp: chmod: $!\n" if $mode ne "";
  stamp($tmp, $mtime);
  gone($name) if -d $name && !-l $name; rename($tmp, $name) or die "$name: $!\n";
} elsif ($act eq "mkdir") {     # UID GID MODE
  my ($uid, $gid, $mode) = @a;
  gone($name) if lstat($name) && !-d _;
  mkdir($name, 0700) or die "$name: $!\n" unless -d $name;
  sysopen(my $d, $name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) or die "$name: $!\n";
  own($d, $uid, $gid, $mode);
} elsif ($act eq "meta") {      # UID GID MODE MTIME (of the entry itself)
  my ($uid, $gid, $mode, $mtime) = @a;
  sysopen(my $f, $name, 010000000 | O_NOFOLLOW) or die "$name: $!\n";
  my @s = stat($f) or die "$name: $!\n";
  if (($s[2] & 0170000) == 0120000) {
    die "is now a symlink\n" if $mode ne ""; lown($name, $uid, $gid); stamp($name, $mtime); exit 0 }
  my $via = "/proc/self/fd/" . fileno($f);
  chown($uid, $gid, $via) or die "$name: chown: $!\n" if $uid ne "";
  chmod(oct($mode), $via) or die "$name: chmod: $!\n" if $mode ne "";
  stamp($name, $mtime);
} elsif ($act eq "move") {      # SRCPARENT SRCNAME: rename(2) of SRCPARENT/SRCNAME to here
  my ($sp, $sn) = @a;
  walkto($sp); sysopen(my $sd, ".", O_RDONLY | O_DIRECTORY) or die "$sp: $!\n"; walkto($parent);
  my $from = "/proc/self/fd/" . fileno($sd) . "/$sn";
  # renameat2(RENAME_NOREPLACE) where the syscall's number is known: an
  # entry made at the destination meanwhile is never replaced
  require POSIX; my %nr = (x86_64 => 316, aarch64 => 276); my ($arch) = (POSIX::uname())[4];
  if (defined $nr{$arch}) {
    syscall($nr{$arch}, -100, $from, -100, $name, 1) == 0 or die "$name: rename: $!\n";
  } else {
    die "$name: something is there now\n" if lstat($name);
    rename($from, $name) or die "$name: rename: $!\n"; }
} elsif ($act eq "rmtree") {
  gone($name);
} elsif ($act eq "snap") {      # DEEP: the entry (and, DEEP, all below it) as records on stdout
  binmode STDOUT; snap($name, "", $a[0]);
} elsif ($act eq "names") {     # PREFIX: every path below the directory, PREFIX/..., NUL-terminated
  binmode STDOUT; names($name, $a[0]);
} else { die "unknown action $act\n" }
]==]

-- at(action, path, ...) -> true | throws an err object: the AT script's
-- action on path (its parent walked safely, then relative)
function M:at(action, path, ...)
  local parent, name = split(path)
  if not parent then fail("%s: not an absolute path below /", path) end
  local words = { "perl", "-e", q(AT), action, q(parent), q(name) }
  for _, v in ipairs({ ... }) do words[#words + 1] = q(tostring(v)) end
  local r, msg = self.s:exec(table.concat(words, " "), { timeout = 3600 })
  if not r then fail("%s", msg) end
  if r.code ~= 0 then
    fail("%s", text.inert(((r.stderr or "") ~= "" and r.stderr or ("exit " .. r.code)):match("[^\n]*")))
  end
  return true
end

-- A snapshot stream's records: "TYPE MODE UID GID SIZE RELLEN LINKLEN MTIME\n"
-- (MTIME in whole seconds: perl-base's stat has no finer),
-- the relative path, the link target, SIZE bytes of content for a file.
local MAX_NAME = 4096

local function bad_record(path, why)
  return nil, string.format("%s: the remote's snapshot is malformed (%s)", path, why)
end

-- clean_rel(rel) -> rel is "" or names an entry below (no "", ".", "..")
local function clean_rel(rel)
  if rel == "" then return true end
  for part in (rel .. "/"):gmatch("([^/]*)/") do
    if part == "" or part == "." or part == ".." then return false end
  end
  return true
end

-- read_records(stream, path, cpdir, scratch) -> entries | nil, msg: the
-- stream parsed, file contents put in the checkpoint's store
local function read_records(stream, path, cpdir, scratch)
  local f <close>, ferr = fs.open(stream, "r")
  if not f then return nil, ferr end
  local size = assert(f:stat()).size
  local off, out = 0, {}
  while off < size do
    local head = f:pread(off, 128)
    local line, t, mode, uid, gid, n, rl, ll, mtime =
      head:match("^(([a-z]+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%-?%d+)\n)")
    if not line then return bad_record(path, "a record header at byte " .. off) end
    mode, n, rl, ll = tonumber(mode, 8), tonumber(n), tonumber(rl), tonumber(ll)
    off = off + #line
    if not mode or rl > MAX_NAME or ll > MAX_NAME or off + rl + ll + n > size then
      return bad_record(path, "a record past the end at byte " .. off)
    end
    local rel, link = f:pread(off, rl), f:pread(off + rl, ll)
    off = off + rl + ll
    if not clean_rel(rel) or (#out == 0) ~= (rel == "") then return bad_record(path, "a path " .. text.inert(rel)) end
    local e = { path = rel == "" and path or path .. "/" .. rel, exists = true, type = t, mode = mode,
      uid = tonumber(uid), gid = tonumber(gid), mtime_sec = math.tointeger(tonumber(mtime)), mtime_nsec = 0 }
    if t == "link" then e.link = link end
    if t == "file" then
      local tmp <close> = assert(fs.open(scratch, "a", 384))
      for at = off, off + n - 1, 1 << 20 do
        assert(tmp:write(f:pread(at, math.min(1 << 20, off + n - at))))
      end
      tmp:close()
      local info, ierr = store.put_file(cpdir, scratch, { move = true })
      fs.remove(scratch)
      if not info then return nil, ierr end
      e.hash, e.size = info.hash, info.size
      off = off + n
    elseif n ~= 0 then
      return bad_record(path, "content for a " .. t)
    end
    out[#out + 1] = e
  end
  return out
end

-- snapshot(path, deep, cpdir) -> entries (path first, then, deep and a
-- directory, all below it; {} when absent) | nil, msg: read by the AT script's safe walk
-- (SFTP would resolve each path from the root: a directory swapped for a
-- symlink meanwhile would hand root's reads of another tree to the
-- checkpoint, and rollback would restore them where they were read)
function M:snapshot(path, deep, cpdir)
  local parent, name = split(path)
  if not parent then return nil, path .. ": not an absolute path below /" end
  local stream = self:scratch_file()
  local out <close>, oerr = fs.open(stream, "a", 384)
  if not out then return nil, oerr end
  local words = { "perl", "-e", q(AT), "snap", q(parent), q(name), deep and "1" or "0" }
  local r, msg = self.s:exec(table.concat(words, " "), { stdout_fd = out:fd(), timeout = 3600 })
  out:close()
  if r and r.code ~= 0 then
    msg = text.inert(((r.stderr or "") ~= "" and r.stderr or ("exit " .. r.code)):match("[^\n]*"))
  end
  local entries, rerr
  if r and r.code == 0 then entries, rerr = read_records(stream, path, cpdir, self:scratch_file()) end
  fs.remove(stream)
  if not entries then return nil, rerr or msg end
  return entries
end

-- ex:below(path) -> every path below the directory at path ({} when it
-- is not one) | nil, err: names only, read by the AT script's safe walk
function M:below(path)
  local parent, name = split(path)
  if not parent then return common.failure(path .. ": not an absolute path below /") end
  local words = { "perl", "-e", q(AT), "names", q(parent), q(name), q(path) }
  local r, msg = self.s:exec(table.concat(words, " "), { timeout = 3600, max_capture = 256 * 1024 * 1024 })
  if not r then return common.failure(msg) end
  if r.code ~= 0 then
    return common.failure(text.inert(((r.stderr or "") ~= "" and r.stderr or ("exit " .. r.code)):match("[^\n]*")))
  end
  if r.stdout_truncated then return common.failure(path .. ": too many entries below it to list") end
  local out = {}
  for p in r.stdout:gmatch("([^%z]*)%z") do out[#out + 1] = p end
  return out
end

-- ex:originals(op, cpdir) -> checkpoint entries | nil, err
function M:originals(op, cpdir)
  -- what is below a directory goes too when the directory is replaced
  local entries, serr = self:snapshot(op.path, common.replaces_dir(op), cpdir)
  if not entries then return common.failure(serr) end
  return common.originals(op, entries)
end

local function owner_args(n)
  return n.uid or "", n.gid or "", n.mode and string.format("%o", n.mode) or ""
end

-- A modification time as touch -d takes it after "@": SECONDS.NANOSECONDS
local function touch_time(meta)
  if math.type(meta.mtime_sec) ~= "integer" then return "" end
  return string.format("%d.%09d", meta.mtime_sec, meta.mtime_nsec or 0)
end

-- upload(blobs, hash [, progress]) -> a remote path holding the content, in a private
-- directory of this executor's (made on first use, removed by close)
function M:upload(blobs, hash, progress)
  if not self.private then
    local r = check(self:run("mktemp -d /tmp/shannot-exec-XXXXXXXXXX"))
    self.private = r.stdout:match("^(%S+)")
    if not self.private then fail("cannot make a private directory on the remote") end
  end
  local lfile = self:scratch_file()
  check(store.copy_out(blobs, hash, lfile, 384))
  self.n = self.n + 1
  local remote = self.private .. "/c" .. self.n
  -- a big file takes a while to cross: the progress line shows how far
  local ok, msg = self.sftp:put(lfile, remote, 384, progress and function(n) progress:partial(n) end)
  fs.remove(lfile)
  check(ok, msg)
  return remote
end

-- The primitives common.apply and common.restore work through: each one
-- run of the AT script (its parent walked safely, then relative calls).

function M:parent_state(path)
  return self:parents_ok(path)
end

function M:put_file(path, c)
  if c.step then c.step() end
  local src = self:upload(c.blobs, c.hash, c.progress)
  local _ <close> = guard(function() self.s:exec("rm -f -- " .. q(src), { timeout = 60 }) end)
  local uid, gid, mode = owner_args(c.meta)
  self:at("put", path, src, c.tmp, uid, gid, mode, touch_time(c.meta))
end

function M:put_symlink(path, target, meta, tmp_name)
  self:at("symlink", path, target, tmp_name, meta.uid or "", meta.gid or "", touch_time(meta))
end

function M:put_hardlink(path, c)
  local now, msg = self:state(c.existing)
  if not now then fail("%s: %s", c.existing, msg.message) end
  if now.type ~= "file" or now.size ~= c.size or now.hash ~= c.hash then
    fail("%s: what it links to is not the file approved", c.existing)
  end
  local sp, sn = split(c.existing)
  self:at("hardlink", path, sp, sn, c.tmp)
end

function M:put_fifo(path, meta, tmp_name)
  local uid, gid, mode = owner_args(meta)
  self:at("fifo", path, tmp_name, uid, gid, mode, touch_time(meta))
end

function M:make_dir(path, meta)
  self:at("mkdir", path, owner_args(meta))
end

function M:remove_tree(path)
  self:at("rmtree", path)
end

function M:move(from, to)
  local sp, sn = split(from)
  if not sp then fail("%s: not an absolute path below /", from) end
  self:at("move", to, sp, sn)
end

-- ex:manifest(path) -> the states of path and everything below it ({}
-- when absent) | nil, err: read by the AT script's safe walk, contents
-- hashed on their way through a scratch store
function M:manifest(path)
  local scratch = self:scratch_file()
  local _ <close> = guard(function() fs.rmtree(scratch) end)
  local ok, msg = fs.mkdir_p(scratch, 448)
  if not ok then return common.failure(msg) end
  local entries, serr = self:snapshot(path, true, scratch)
  if not entries then return common.failure(serr) end
  return entries
end

-- Extended attributes over SSH: none is captured from a remote (no
-- setfattr there to apply them with), so there is never one to set.
function M:xattrs() -- luacheck: ignore 212/self
  return nil  -- not known over SFTP
end

function M:set_xattrs(path, want) -- luacheck: ignore 212/self
  if next(want) ~= nil then fail("%s: extended attributes cannot be set over SSH", path) end
end

function M:set_meta(path, meta)
  local uid, gid, mode = owner_args(meta)
  self:at("meta", path, uid, gid, mode, touch_time(meta))
end

M.apply = common.apply
M.restore = common.restore
M.set_times = common.set_times

-- ex:exec(op, timeout [, show]) -> result (show: the output passes
-- through as it comes, as well)
function M:exec(op, timeout, show)
  local words = {}
  for i, a in ipairs(op.argv) do words[i] = q(a) end
  local cmd = "cd " .. q(op.cwd or "/") .. " 2>/dev/null || cd /; exec " .. table.concat(words, " ")
  local r, msg = self.s:exec(cmd, { timeout = timeout,
    tee_stdout = show and 1 or nil, tee_stderr = show and 2 or nil, tee_no_strings = show or nil })
  if not r then return { id = op.id, ok = false, error = msg } end
  return { id = op.id, ok = r.code == 0, code = r.code, signal = r.signal_name,
    stdout = r.stdout, stderr = r.stderr, timed_out = r.timed_out or nil }
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
