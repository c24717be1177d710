-- shannot.core.fs through shannot.fs: each primitive and its failures.
local fs = require("shannot.fs")
local h = require("support.h")
local proc = require("shannot.proc")

describe("fs", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(h.cleanup)

  it("stat and lstat describe files, dirs and links", function()
    h.write(dir .. "/f", "12345")
    assert(fs.chmod(dir .. "/f", 416))  -- 0640
    local st = assert(fs.stat(dir .. "/f"))
    assert.equal("file", st.type)
    assert.equal(5, st.size)
    assert.equal(416, st.mode)
    assert.equal("dir", fs.stat(dir).type)
    assert.equal("char", fs.stat("/dev/null").type)
    local _, msg, code = fs.stat(dir .. "/missing")
    assert.equal("ENOENT", code)
    assert.matches("missing: No such file", msg)
  end)

  it("write_atomic replaces a file whole, with the mode given", function()
    local path = dir .. "/cfg"
    assert.is_true(fs.write_atomic(path, "one", 384))  -- 0600
    assert.is_true(fs.write_atomic(path, "two\0bytes", 420))
    assert.equal("two\0bytes", fs.read_file(path))
    assert.equal(420, fs.stat(path).mode)
    assert.same({ "cfg" }, fs.readdir(dir))  -- no temp file left behind
    local ok, _, code = fs.write_atomic(dir .. "/no/such/dir/file", "x")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
  end)

  it("read_file refuses files past the limit", function()
    h.write(dir .. "/big", string.rep("x", 100))
    assert.equal(100, #fs.read_file(dir .. "/big", 100))
    local data, _, code = fs.read_file(dir .. "/big", 99)
    assert.is_nil(data)
    assert.equal("EFBIG", code)
    local _, _, c2 = fs.read_file(dir)
    assert.equal("EISDIR", c2)
  end)

  it("read_file reads whole whatever the size says: files of every size, /proc files of none", function()
    for _, n in ipairs({ 0, 1, 4095, 4096, 4097, 65535, 65536, 65537, 300000 }) do
      local data = string.rep("0123456789abcdef", n // 16 + 1):sub(1, n)
      h.write(dir .. "/f", data)
      assert.equal(data, fs.read_file(dir .. "/f"), n)
      assert.equal(data, assert(fs.open(dir .. "/f", "r")):read_all(), n)
    end
    local stat = assert(fs.read_file("/proc/self/status"))
    assert.matches("\nPid:%s+%d+\n", stat)
    assert.equal(0, assert(fs.stat("/proc/self/status")).size)  -- what made the size no guide
  end)

  it("mkdir_p makes every level and accepts existing ones", function()
    assert.is_true(fs.mkdir_p(dir .. "/a/b/c"))
    assert.is_true(fs.mkdir_p(dir .. "/a/b/c"))
    assert.is_true(fs.is_dir(dir .. "/a/b/c"))
    h.write(dir .. "/file", "")
    local ok, _, code = fs.mkdir_p(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.equal("ENOTDIR", code)
  end)

  it("readdir lists names without . and ..", function()
    h.write(dir .. "/x", "")
    assert(fs.mkdir(dir .. "/y"))
    local names = fs.readdir(dir)
    table.sort(names)
    assert.same({ "x", "y" }, names)
    local _, _, code = fs.readdir(dir .. "/x")
    assert.equal("ENOTDIR", code)
  end)

  it("realpath, readlink and remove", function()
    assert(fs.mkdir(dir .. "/real"))
    local r = require("shannot.proc").run({ "ln", "-s", "real", dir .. "/link" })
    assert.equal(0, r.code)
    assert.equal("link", fs.lstat(dir .. "/link").type)
    assert.equal("real", fs.readlink(dir .. "/link"))
    assert.equal(fs.realpath(dir) .. "/real", fs.realpath(dir .. "/link"))
    assert.is_true(fs.remove(dir .. "/link"))
    assert.is_true(fs.remove(dir .. "/real"))
    local _, _, code = fs.remove(dir .. "/real")
    assert.equal("ENOENT", code)
    local _, _, c2 = fs.readlink(dir)
    assert.equal("EINVAL", c2)
  end)

  it("mkdtemp makes private directories", function()
    local d = assert(fs.mkdtemp(dir .. "/p-"))
    assert.equal(448, fs.stat(d).mode)
    local _, _, code = fs.mkdtemp(dir .. "/missing/p-")
    assert.equal("ENOENT", code)
  end)

  it("rmtree removes unwritable trees and never follows links", function()
    local outside = h.tmpdir()
    h.write(outside .. "/keep", "k")
    assert(fs.mkdir_p(dir .. "/t/ovl-work/ovl-work"))
    h.write(dir .. "/t/ovl-work/ovl-work/f", "")
    require("shannot.proc").run({ "ln", "-s", outside, dir .. "/t/out" })
    assert(fs.chmod(dir .. "/t/ovl-work/ovl-work", 0))
    assert.is_true(fs.rmtree(dir .. "/t"))
    assert.is_false(fs.exists(dir .. "/t"))
    assert.equal("k", fs.read_file(outside .. "/keep"))
  end)

  it("File handles close once and refuse use after close", function()
    local f = assert(fs.open("/etc/hostname"))
    assert.is_number(f:fd())
    f:close()
    f:close()
    assert.has_error(function() f:fd() end, "attempt to use a closed File")
    local _, _, code = fs.open(dir .. "/missing")
    assert.equal("ENOENT", code)
  end)

  it("which finds executables on a search path", function()
    assert.equal("/bin/sh", fs.which("sh", "/nonexistent:/bin"))
    assert.is_nil(fs.which("sh", "/nonexistent"))
    assert.equal("/bin/sh", fs.which("/bin/sh"))
    h.write(dir .. "/plain", "not executable")
    assert.is_nil(fs.which(dir .. "/plain"))
  end)

  -- The primitives apply, checkpoint and the audit log stand on.

  it("open_dir pins a directory reached without any symlink on the way", function()
    assert(fs.mkdir_p(dir .. "/real/sub"))
    h.write(dir .. "/real/sub/name", "inside")
    assert(fs.symlink("real", dir .. "/link"))
    local d, msg, code = fs.open_dir(dir .. "/real/sub")
    if not h.need(code ~= "ENOSYS", "openat2 (Linux 5.6)") then return end
    assert(d, msg)
    assert.equal("dir", d:stat().type)
    for _, through in ipairs({ "/link/sub", "/link" }) do
      local none, lmsg, lcode = fs.open_dir(dir .. through)
      assert.is_nil(none)
      assert.equal("ELOOP", lcode, through)
      assert.matches(through, lmsg, 1, true)
    end
    assert.equal("ENOTDIR", select(3, fs.open_dir(dir .. "/real/sub/name")))
    assert.equal("ENOENT", select(3, fs.open_dir(dir .. "/missing")))
    -- the path may change; the directory stays the one opened
    assert(fs.rename(dir .. "/real", dir .. "/moved"))
    local at = "/proc/self/fd/" .. d:fd()
    assert.equal("inside", fs.read_file(at .. "/name"))
    assert.is_true(fs.write_new(at .. "/new", "n", 384))
    assert.equal("n", fs.read_file(dir .. "/moved/sub/new"))
    d:close()
    assert.has_error(function() d:stat() end, "attempt to use a closed File")
  end)

  it("open in append mode creates with the mode, appends, and never follows a symlink", function()
    local path = dir .. "/log"
    local f = assert(fs.open(path, "a", 384))
    assert.is_true(f:write("abc"))
    f:close()
    assert.equal(384, fs.stat(path).mode)
    local g <close> = assert(fs.open(path, "a", 420))  -- an existing file: kept, mode too
    assert.is_true(g:write("def\n"))
    assert.equal("abcdef\n", fs.read_file(path))
    assert.equal(384, fs.stat(path).mode)
    assert(fs.symlink("log", dir .. "/link"))
    assert(fs.symlink("made-through-link", dir .. "/dangling"))
    for _, name in ipairs({ "link", "dangling" }) do
      local none, msg, code = fs.open(dir .. "/" .. name, "a")
      assert.is_nil(none)
      assert.equal("ELOOP", code)
      assert.matches(name, msg, 1, true)
    end
    assert.equal("abcdef\n", fs.read_file(path))
    assert.is_false(fs.exists(dir .. "/made-through-link"))
    assert.equal("ENOENT", select(3, fs.open(dir .. "/no/such/dir/log", "a")))
    assert.has_error(function() fs.open(path, "append") end)
  end)

  it("File write, stat, pread, sync and lock", function()
    local path = dir .. "/data"
    local f <close> = assert(fs.open(path, "a"))
    assert.is_true(f:write("hello "))
    assert.is_true(f:write("world"))
    assert.is_true(f:write(""))
    local st = assert(f:stat())
    assert.equal("file", st.type)
    assert.equal(11, st.size)
    assert.equal("hello", f:pread(0, 5))
    assert.equal("world", f:pread(6, 100))  -- shorter at the end
    assert.equal("", f:pread(11, 4))
    assert.equal("", f:pread(0, 0))
    assert.is_true(f:sync())
    assert.has_error(function() f:pread(-1, 1) end)
    assert.has_error(function() f:pread(0, -1) end)
    local r <close> = assert(fs.open(path))
    local ok, _, code = r:write("x")
    assert.is_nil(ok)
    assert.equal("EBADF", code)
    assert.is_true(f:lock())
    assert.is_true(f:lock())  -- again: already held, no wait
    local flock = fs.which("flock", os.getenv("PATH"))
    if h.need(flock, "flock(1) (util-linux)") then
      assert.equal(1, proc.run({ flock, "-n", path, "true" }).code)  -- held: another process waits
      f:close()
      assert.equal(0, proc.run({ flock, "-n", path, "true" }).code)  -- released by close
    end
    f:close()
    for _, use in ipairs({ "write", "lock", "stat", "sync" }) do
      assert.has_error(function() f[use](f, "x") end, "attempt to use a closed File")
    end
    assert.has_error(function() f:pread(0, 1) end, "attempt to use a closed File")
  end)

  it("write_new makes only a new file, with its mode exactly whatever the umask", function()
    local script = h.write(dir .. "/wn.lua", [[
      local fs = require("shannot.fs")
      local d = ...
      assert(fs.write_new(d .. "/new", "data", 436))  -- 0664
      io.write(string.format("%o", fs.stat(d .. "/new").mode))]])
    local r = proc.run({ "sh", "-c", 'umask 077 && exec "$0" lua "$1" "$2"', h.BIN, script, dir })
    assert.equal(0, r.code, r.stderr)
    assert.equal("664", r.stdout)
    assert.equal("data", fs.read_file(dir .. "/new"))
    local ok, msg, code = fs.write_new(dir .. "/new", "other", 384)
    assert.is_nil(ok)
    assert.equal("EEXIST", code)
    assert.matches("new: File exists", msg, 1, true)
    assert.equal("data", fs.read_file(dir .. "/new"))
    assert(fs.symlink("target", dir .. "/link"))  -- not through a symlink, dangling or not
    assert.equal("EEXIST", select(3, fs.write_new(dir .. "/link", "x")))
    assert.is_false(fs.exists(dir .. "/target"))
    assert.equal("ENOENT", select(3, fs.write_new(dir .. "/no/dir/file", "x")))
  end)

  it("symlink makes a link, dangling too, and never replaces a path", function()
    assert.is_true(fs.symlink("no/such/target", dir .. "/l"))
    assert.equal("link", fs.lstat(dir .. "/l").type)
    assert.equal("no/such/target", fs.readlink(dir .. "/l"))
    h.write(dir .. "/f", "keep")
    local ok, msg, code = fs.symlink("x", dir .. "/f")
    assert.is_nil(ok)
    assert.equal("EEXIST", code)
    assert.matches("/f: File exists", msg, 1, true)
    assert.equal("file", fs.lstat(dir .. "/f").type)
    assert.equal("ENOENT", select(3, fs.symlink("x", dir .. "/no/dir/l")))
  end)

  it("lchown changes the owner of a link itself, and only with the right to", function()
    h.write(dir .. "/f", "")
    assert(fs.symlink("f", dir .. "/l"))
    local ids = require("shannot.core.sys").ids()
    local before = assert(fs.stat(dir .. "/f"))
    if ids.euid == 0 then
      assert.is_true(fs.lchown(dir .. "/l", 1234, 5678))
      local st = fs.lstat(dir .. "/l")
      assert.same({ 1234, 5678 }, { st.uid, st.gid })
      assert.same({ before.uid, before.gid }, { fs.stat(dir .. "/f").uid, fs.stat(dir .. "/f").gid })
      assert.is_true(fs.lchown(dir .. "/f", 4321, 4321))
      assert.equal(4321, fs.stat(dir .. "/f").uid)
    else
      local ok, _, code = fs.lchown(dir .. "/l", ids.euid + 1, ids.egid)
      assert.is_nil(ok)
      assert.equal("EPERM", code)
    end
    assert.equal("ENOENT", select(3, fs.lchown(dir .. "/missing", 0, 0)))
  end)

  it("set_meta acts on the entry itself, never on what a symlink names", function()
    h.write(dir .. "/target", "t")
    assert(fs.chmod(dir .. "/target", 384))  -- 0600
    assert(fs.symlink(dir .. "/target", dir .. "/link"))
    local _, msg, code = fs.set_meta(dir .. "/link", { mode = 511 })
    assert.equal("ELOOP", code)
    assert.matches("/link: ", msg)
    assert.equal(384, fs.lstat(dir .. "/target").mode)
    h.write(dir .. "/f", "f")
    assert.equal("file", fs.set_meta(dir .. "/f", { mode = 2541 }))  -- 04755
    assert.equal(2541, fs.lstat(dir .. "/f").mode)
    local _, _, missing = fs.set_meta(dir .. "/nothing", { mode = 420 })
    assert.equal("ENOENT", missing)
    if require("shannot.core.sys").ids().euid == 0 then
      assert.equal("link", fs.set_meta(dir .. "/link", { uid = 4242, gid = 4243 }))
      assert.equal(4242, fs.lstat(dir .. "/link").uid)
      assert.equal(0, fs.lstat(dir .. "/target").uid)
      assert.equal("file", fs.set_meta(dir .. "/f", { uid = 4242, gid = 4242, mode = 3565 }))  -- 06755
      local st = fs.lstat(dir .. "/f")
      assert.same({ 4242, 4242, 3565 }, { st.uid, st.gid, st.mode })  -- setuid set after the chown
    end
  end)

  it("rename moves and replaces, and names both paths when it fails", function()
    h.write(dir .. "/a", "A")
    h.write(dir .. "/b", "B")
    assert.is_true(fs.rename(dir .. "/a", dir .. "/b"))
    assert.equal("A", fs.read_file(dir .. "/b"))
    assert.is_false(fs.exists(dir .. "/a"))
    local ok, msg, code = fs.rename(dir .. "/a", dir .. "/c")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.matches("rename " .. dir .. "/a to " .. dir .. "/c: No such file", msg, 1, true)
    assert(fs.mkdir(dir .. "/d1"))
    assert(fs.mkdir_p(dir .. "/d2/x"))
    assert.equal("ENOTEMPTY", select(3, fs.rename(dir .. "/d1", dir .. "/d2")))
    assert.equal("EISDIR", select(3, fs.rename(dir .. "/b", dir .. "/d1")))
    assert.is_true(fs.rename(dir .. "/d1", dir .. "/d3"))
    assert.is_true(fs.is_dir(dir .. "/d3"))
  end)

  it("getxattr reads an attribute of the path itself, ENODATA when absent", function()
    local path = h.write(dir .. "/f", "")
    local none, _, code = fs.getxattr(path, "user.shannot.test")
    assert.is_nil(none)
    assert.equal("ENODATA", code)
    assert.equal("ENOENT", select(3, fs.getxattr(dir .. "/missing", "user.shannot.test")))
    local search = os.getenv("PATH")
    local setter
    if fs.which("setfattr", search) then
      setter = { "setfattr", "-n", "user.shannot.test", "-v", "yes", path }
    elseif fs.which("python3", search) then
      setter = { "python3", "-c", "import os, sys; os.setxattr(sys.argv[1], 'user.shannot.test', b'yes')", path }
    end
    if not h.need(setter, "setfattr or python3 to set an extended attribute") then return end
    local r = proc.run(setter)
    if not h.need(not r.stderr:find("not supported", 1, true), "user xattrs where the specs run") then return end
    assert.equal(0, r.code, r.stderr)
    assert.equal("yes", fs.getxattr(path, "user.shannot.test"))
    assert.equal("ENODATA", select(3, fs.getxattr(path, "user.shannot.other")))
  end)
end)
