-- shannot.core.tar through shannot.tar: archives written by the real GNU
-- tar come back field for field (contents, xattrs, whiteouts), and hostile
-- archives written here by hand are refused with a message naming the entry.
local fs = require("shannot.fs")
local h = require("support.h")
local proc = require("shannot.proc")
local tar = require("shannot.tar")

local IS_ROOT = require("shannot.core.sys").ids().euid == 0

local function run(argv, opts)
  local r = assert(proc.run(argv, opts))
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. r.stderr)
  return r
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- setxattr(path, name, value) -> true | false (no python3, or the file
-- system refuses user xattrs)
local function setxattr(path, name, value)
  local r = proc.run({ "python3", "-c",
    "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), follow_symlinks=False)",
    path, name, hex(value) })
  return r ~= nil and r.code == 0
end

local LONG1 = string.rep("m", 70) .. "/" .. string.rep("n", 70)  -- > 100 bytes
local LONG2 = string.rep("a", 200) .. "/" .. string.rep("b", 200) .. "/" .. string.rep("c", 100)  -- > 255
local LONG_TARGET = string.rep("t/", 80) .. "end"

-- make_tree(root) -> {xattrs = {name = {k = v}}, dev = bool}: every kind
-- of entry an overlay upper dir holds, with awkward names.
local function make_tree(root)
  local files = {
    ["plain.txt"] = "hello\n", empty = "", exact512 = string.rep("z", 512),
    ["bin.dat"] = string.rep(string.char(table.unpack((function()
      local t = {}
      for i = 0, 255 do t[#t + 1] = i end
      return t
    end)())), 10) .. "odd",
    ["dir/sub/nested"] = "nested\n", ["with space.txt"] = "s p a c e",
    ["new\nline"] = "newline\n", ["bad\xff\xfeutf8"] = "latin1\n",
    [LONG1 .. "/file"] = "long one\n", [LONG2 .. "/file"] = "long two\n",
    old = "old\n", ancient = "before 1970\n",
  }
  for name, data in pairs(files) do
    assert(fs.mkdir_p((root .. "/" .. name):match("^(.*)/")))
    h.write(root .. "/" .. name, data)
  end
  assert(fs.chmod(root .. "/dir/sub/nested", 489))  -- 0751
  assert(fs.mkdir_p(root .. "/dir/emptydir", 448))
  assert(fs.mkdir(root .. "/opaque"))
  h.write(root .. "/opaque/inside", "i")
  assert(fs.symlink("../plain.txt", root .. "/dir/rel"))
  assert(fs.symlink("/etc/passwd", root .. "/abs"))
  assert(fs.symlink(LONG_TARGET, root .. "/longlink"))
  run({ "ln", root .. "/plain.txt", root .. "/hard" })
  run({ "mkfifo", root .. "/fifo" })
  run({ "touch", "-h", "-m", "-d", "@1600000000", root .. "/old" })
  run({ "touch", "-h", "-m", "-d", "@-100000", root .. "/ancient" })
  local info = { xattrs = {} }
  if IS_ROOT then
    assert(fs.lchown(root .. "/empty", 3000000, 4000000))  -- past 7 octal digits
    info.dev = proc.run({ "mknod", root .. "/whiteout", "c", "0", "0" }).code == 0
  end
  if setxattr(root .. "/opaque", "user.overlay.opaque", "y") then
    assert(setxattr(root .. "/bin.dat", "user.test", "v\0al\nue"))
    info.xattrs["opaque"] = { ["user.overlay.opaque"] = "y" }
    info.xattrs["bin.dat"] = { ["user.test"] = "v\0al\nue" }
  end
  return info
end

-- walk(root) -> {relative name = lstat}, the root as "."
local function walk(root)
  local out = {}
  local function visit(rel)
    local path = rel == "." and root or root .. "/" .. rel
    local st = assert(fs.lstat(path))
    out[rel] = st
    if st.type == "dir" then
      for _, n in ipairs(assert(fs.readdir(path))) do
        visit(rel == "." and n or rel .. "/" .. n)
      end
    end
  end
  visit(".")
  return out
end

local function tar_create(src, out, format)
  local argv = { "tar", "--numeric-owner", "--format=" .. format }
  if format == "posix" then  -- GNU tar refuses --xattrs for other formats
    table.move({ "--xattrs", "--xattrs-include=user.*" }, 1, 2, #argv + 1, argv)
  end
  table.move({ "-C", src, "-cf", out, "." }, 1, 5, #argv + 1, argv)
  run(argv)
end

-- read_all(archive, outdir) -> {name = entry}; files extracted into outdir
local function read_all(archive, outdir)
  local r <close> = assert(tar.open(archive))
  local got, n = {}, 0
  for e, msg in tar.entries(r) do
    assert(e, msg)
    assert.is_nil(got[e.name], "duplicate entry " .. e.name)
    got[e.name] = e
    if e.type == "file" then
      n = n + 1
      e.extracted = outdir .. "/" .. n
      assert(r:extract(e.extracted))
    end
  end
  return got
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- check(src, got, info, format): every file of src has its entry, right.
local function check(src, got, info, format)
  local want = walk(src)
  assert.equal(count(want), count(got))
  for name, st in pairs(want) do
    local e = got[name]
    assert(e, "no entry for " .. name)
    local path = name == "." and src or src .. "/" .. name
    if e.type == "hardlink" then
      assert.equal("file", st.type)
      assert.equal("file", got[e.linkname].type)
      assert.equal(st.ino, want[e.linkname].ino)
    else
      assert.equal(st.type, e.type, name)
    end
    assert.same({ st.mode, st.uid, st.gid }, { e.mode, e.uid, e.gid }, name)
    if format == "posix" then
      assert.is_true(math.abs(st.mtime - e.mtime) < 1e-6, name)
    else
      assert.equal(math.floor(st.mtime), e.mtime, name)
    end
    if e.type == "file" then
      assert.equal(st.size, e.size, name)
      assert.equal(fs.read_file(path), fs.read_file(e.extracted), name)
    end
    if e.type == "link" then assert.equal(fs.readlink(path), e.linkname) end
    if e.type == "char" then assert.same({ 0, 0 }, { e.devmajor, e.devminor }) end
    local xattrs = format == "posix" and info.xattrs[name] or {}
    assert.same(xattrs, e.xattrs, name)
  end
end

describe("tar", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(h.cleanup)

  for _, format in ipairs({ "posix", "gnu" }) do
    it("reads a " .. format .. " archive from GNU tar field for field", function()
      local src = dir .. "/src"
      assert(fs.mkdir(src))
      local info = make_tree(src)
      tar_create(src, dir .. "/a.tar", format)
      assert(fs.mkdir(dir .. "/out"))
      local got = read_all(dir .. "/a.tar", dir .. "/out")
      check(src, got, info, format)
      assert.equal("dir", got["."].type)
      assert.equal("fifo", got.fifo.type)
      assert.equal("/etc/passwd", got.abs.linkname)
      assert.equal(LONG_TARGET, got.longlink.linkname)
      assert.equal("long two\n", fs.read_file(got[LONG2 .. "/file"].extracted))
      assert.equal(1600000000, math.floor(got.old.mtime))
      assert.equal(-100000, got.ancient.mtime)
      if IS_ROOT then assert.same({ 3000000, 4000000 }, { got.empty.uid, got.empty.gid }) end
    end)
  end

  it("keeps overlayfs whiteouts: char devices 0/0", function()
    if not h.need(IS_ROOT, "root (mknod)") then return end
    local src = dir .. "/src"
    assert(fs.mkdir(src))
    if not h.need(proc.run({ "mknod", src .. "/gone", "c", "0", "0" }).code == 0,
      "mknod permission") then return end
    for _, format in ipairs({ "posix", "gnu" }) do
      tar_create(src, dir .. "/" .. format .. ".tar", format)
      local r <close> = assert(tar.open(dir .. "/" .. format .. ".tar"))
      assert.equal(".", r:next().name)
      local e = r:next()
      assert.same({ "gone", "char", 0, 0 }, { e.name, e.type, e.devmajor, e.devminor })
      assert.is_false(r:next())
      assert.is_false(r:next())  -- the end stays the end
    end
  end)

  it("keeps user xattrs: the opaque directory's and binary values", function()
    local src = dir .. "/src"
    assert(fs.mkdir_p(src .. "/opaque"))
    h.write(src .. "/f", "")
    if not h.need(setxattr(src .. "/opaque", "user.overlay.opaque", "y"),
      "python3 and a file system with user xattrs") then return end
    assert(setxattr(src .. "/f", "user.bin", "\0\1\255=\n"))
    assert(setxattr(src .. "/f", "user.empty", ""))
    tar_create(src, dir .. "/a.tar", "posix")
    local got = read_all(dir .. "/a.tar", dir)
    assert.same({ ["user.overlay.opaque"] = "y" }, got.opaque.xattrs)
    assert.same({ ["user.bin"] = "\0\1\255=\n", ["user.empty"] = "" }, got.f.xattrs)
    assert.same({}, got["."].xattrs)
  end)

  it("reads ustar names split into prefix and name", function()
    local src = dir .. "/src"
    local name = string.rep("p", 90) .. "/" .. string.rep("q", 90)
    assert(fs.mkdir_p(src .. "/" .. string.rep("p", 90)))
    h.write(src .. "/" .. name, "split")
    run({ "tar", "--format=ustar", "-C", src, "-cf", dir .. "/a.tar", "." })
    local got = read_all(dir .. "/a.tar", dir)
    assert.equal("split", fs.read_file(got[name].extracted))
  end)

  it("reads a stream from a pipe (an fd it duplicates)", function()
    local src = dir .. "/src"
    assert(fs.mkdir(src))
    h.write(src .. "/f", "through a pipe")
    local rd, wr = assert(fs.pipe())
    local p <close> = assert(proc.spawn({ "tar", "-C", src, "-cf", "/dev/fd/" .. wr:fd(), "." },
      { keep_fds = { wr:fd() }, stdout = "null", stderr = "null" }))
    wr:close()
    local r <close> = assert(tar.open(rd:fd()))
    rd:close()  -- the reader holds its own copy
    assert.equal(".", r:next().name)
    assert.equal("f", r:next().name)
    assert(r:extract(dir .. "/f"))
    assert.is_false(r:next())
    assert.equal("through a pipe", fs.read_file(dir .. "/f"))
    assert.equal(0, p:communicate({ timeout = 10 }).code)
  end)

  it("streams a 1 GiB file with flat memory", function()
    local src = dir .. "/src"
    assert(fs.mkdir(src))
    run({ "truncate", "-s", "1G", src .. "/big" })
    local f = assert(fs.open(src .. "/big", "w"))
    assert(f:write("head"))
    f:close()
    run({ "tar", "-C", src, "-cf", dir .. "/big.tar", "." })
    local function hwm_kb()
      return tonumber(fs.read_file("/proc/self/status"):match("VmHWM:%s*(%d+) kB"))
    end
    local before = hwm_kb()
    local r <close> = assert(tar.open(dir .. "/big.tar"))
    assert.equal(".", r:next().name)
    local e = r:next()
    assert.same({ "big", 1 << 30 }, { e.name, e.size })
    assert(r:extract(dir .. "/out"))
    assert.is_false(r:next())
    local grown = hwm_kb() - before
    assert(grown < 32 * 1024, "peak RSS grew by " .. grown .. " KiB")
    local out <close> = assert(fs.open(dir .. "/out"))
    assert.equal(1 << 30, out:stat().size)
    assert.equal("head\0\0", out:pread(0, 6))
    assert.equal(string.rep("\0", 16), out:pread((1 << 30) - 16, 16))
    -- skip() (and next() by itself) pass over it as well
    local again <close> = assert(tar.open(dir .. "/big.tar"))
    again:next()
    again:next()
    assert.is_true(again:skip())
    assert.is_true(again:skip())
    assert.is_false(again:next())
  end)

  it("extract makes a new file only, and a failed one can be retried", function()
    local src = dir .. "/src"
    assert(fs.mkdir(src))
    h.write(src .. "/f", "content")
    run({ "tar", "-C", src, "-cf", dir .. "/a.tar", "." })
    h.write(dir .. "/exists", "keep")
    assert(fs.symlink(dir .. "/target", dir .. "/link"))
    local r <close> = assert(tar.open(dir .. "/a.tar"))
    assert.has_error(function() r:extract(dir .. "/x") end)  -- nothing current yet
    local root = r:next()
    assert.has_error(function() r:extract(dir .. "/x") end, "no file content to extract "
      .. "(extract once, after next() returned a file)")
    assert.equal("dir", root.type)
    r:next()
    for _, dest in ipairs({ "exists", "link" }) do
      local ok, msg, code = r:extract(dir .. "/" .. dest)
      assert.is_nil(ok)
      assert.equal("EEXIST", code)
      assert.matches(dest .. ": File exists", msg, 1, true)
    end
    assert.equal("ENOENT", select(3, r:extract(dir .. "/no/dir/f")))
    assert.equal("keep", fs.read_file(dir .. "/exists"))
    assert.is_false(fs.exists(dir .. "/target"))
    assert.is_true(r:extract(dir .. "/new", 416))
    assert.equal("content", fs.read_file(dir .. "/new"))
    assert.equal(0, fs.stat(dir .. "/new").mode & ~416)  -- 0640 less the umask
    assert.has_error(function() r:extract(dir .. "/again") end)
    assert.has_error(function() r:extract(dir .. "/bad", 65536) end)
  end)

  it("open fails with nil, msg, code; misuse raises; close is idempotent", function()
    local none, msg, code = tar.open(dir .. "/missing.tar")
    assert.is_nil(none)
    assert.equal("ENOENT", code)
    assert.matches("missing.tar: No such file", msg, 1, true)
    assert.has_error(function() tar.open(-1) end)
    assert.has_error(function() tar.open({}) end)
    h.write(dir .. "/a.tar", string.rep("\0", 1024))
    local r = assert(tar.open(dir .. "/a.tar"))
    assert.is_false(r:next())
    r:close()
    r:close()
    for _, m in ipairs({ "next", "skip", "extract" }) do
      assert.has_error(function() r[m](r, dir .. "/x") end, "attempt to use a closed Reader")
    end
    do local _ <close> = assert(tar.open(dir .. "/a.tar")) end
  end)
end)

-- Hand-made archives: 512-byte headers with correct checksums.
local function field(s, n)
  assert(#s <= n, "field too long")
  return s .. string.rep("\0", n - #s)
end

local function octal(v, n)
  return string.format("%0" .. (n - 1) .. "o", v) .. "\0"
end

-- header{name, type, size, mode, uid, gid, mtime, linkname, prefix,
-- magic, size_field (raw 12 bytes)} -> 512 bytes
local function header(t)
  local b = table.concat({
    field(t.name or "", 100), octal(t.mode or 420, 8), octal(t.uid or 0, 8), octal(t.gid or 0, 8),
    t.size_field or octal(t.size or 0, 12), octal(t.mtime or 0, 12), "        ", t.type or "0",
    field(t.linkname or "", 100), t.magic or "ustar\00000", field("", 32), field("", 32),
    octal(0, 8), octal(0, 8), field(t.prefix or "", 155), field("", 12),
  })
  assert(#b == 512)
  local sum = 0
  for i = 1, 512 do sum = sum + b:byte(i) end
  return b:sub(1, 148) .. string.format("%06o\0 ", sum) .. b:sub(157)
end

local function padded(data)
  return data .. string.rep("\0", (512 - #data % 512) % 512)
end

local function member(t, data)
  data = data or ""
  t.size = t.size or #data
  return header(t) .. padded(data)
end

-- pax{{key, value}, ...} -> an 'x' (or typ) header and its records
local function pax(list, typ)
  local out = {}
  for _, kv in ipairs(list) do
    local body = " " .. kv[1] .. "=" .. kv[2] .. "\n"
    local n = #body + 1
    while #body + #tostring(n) ~= n do n = #body + #tostring(n) end
    out[#out + 1] = n .. body
  end
  return member({ name = "./PaxHeaders/x", type = typ or "x" }, table.concat(out))
end

local END = string.rep("\0", 1024)

describe("tar refuses hostile archives", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(h.cleanup)

  local function open(data)
    return assert(tar.open(h.write(dir .. "/a.tar", data)))
  end

  -- refused(data) -> msg, code of the first failing next(); the failure
  -- is sticky.
  local function refused(data)
    local r <close> = open(data)
    for _ = 1, 100 do
      local e, msg, code = r:next()
      if e == nil then
        assert.same({ nil, msg, code }, { r:next() })
        return msg, code
      end
      assert(e, "the archive was accepted")
    end
    error("too many entries")
  end

  local function refuses(data, code, ...)
    local msg, got_code = refused(data)
    assert.equal(code, got_code, msg)
    for _, part in ipairs({ ... }) do assert.matches(part, msg, 1, true) end
    assert.matches("^tar: ", msg)
  end

  it("accepts the hand-made baseline", function()
    local r <close> = open(member({ name = "./ok" }, "data") .. member({ name = "d/", type = "5" }) .. END)
    local e = r:next()
    assert.same({ "ok", "file", 4, 420 }, { e.name, e.type, e.size, e.mode })
    assert.equal("d", r:next().name)
    assert.is_false(r:next())
  end)

  it("absolute names and '..' components", function()
    refuses(member({ name = "/etc/passwd" }, "x") .. END, "EINVAL", "entry '/etc/passwd'", "absolute name")
    refuses(member({ name = "../x" }, "x") .. END, "EINVAL", "entry '../x'", "'..' component")
    refuses(member({ name = "a/../../x" }, "x") .. END, "EINVAL", "'..' component")
    refuses(member({ name = "a/.." , type = "5" }) .. END, "EINVAL", "'..' component")
    refuses(member({ name = "x", prefix = "../up" }, "x") .. END, "EINVAL", "entry '../up/x'")
    refuses(member({ name = "" }, "x") .. END, "EINVAL", "empty name")
    refuses(member({ name = "./" }, "x") .. END, "EINVAL", "'.' is not a directory")
  end)

  it("pax and GNU long names that escape", function()
    refuses(pax({ { "path", "../escape" } }) .. member({ name = "benign" }, "x") .. END,
      "EINVAL", "entry '../escape'", "'..' component")
    refuses(pax({ { "path", "/abs" } }) .. member({ name = "benign" }, "x") .. END, "EINVAL", "absolute")
    refuses(member({ name = "././@LongLink", type = "L" }, "../../etc/shadow\0") .. member({ name = "b" }, "x") .. END,
      "EINVAL", "'..' component")
    refuses(member({ name = "h", type = "1", linkname = "../x" }) .. END, "EINVAL", "hard link target")
    refuses(pax({ { "linkpath", "/etc/shadow" } }) .. member({ name = "h", type = "1", linkname = "ok" }) .. END,
      "EINVAL", "hard link target: absolute name")
    refuses(member({ name = "l", type = "2" }) .. END, "EINVAL", "empty link target")
  end)

  it("names with a NUL byte", function()
    refuses(member({ name = "ok\0evil" }, "x") .. END, "EINVAL", "entry 'ok'", "name contains a NUL")
    refuses(pax({ { "path", "a\0b" } }) .. member({ name = "b" }, "x") .. END, "EINVAL", "pax path contains a NUL")
    refuses(member({ name = "././@LongLink", type = "L" }, "a\0b\0") .. member({ name = "b" }) .. END,
      "EINVAL", "GNU long name contains a NUL")
    refuses(member({ name = "l", type = "2", linkname = "t\0u" }) .. END, "EINVAL", "link target contains a NUL")
  end)

  it("names and pax headers past the limits", function()
    refuses(pax({ { "path", string.rep("p", 4097) } }) .. member({ name = "b" }) .. END,
      "ENAMETOOLONG", "pax path longer than 4096 bytes")
    refuses(member({ name = "././@LongLink", type = "L" }, string.rep("l", 5000)) .. member({ name = "b" }) .. END,
      "ENAMETOOLONG", "GNU long name of 5000 bytes")
    refuses(pax({ { "comment", string.rep("c", 70000) } }) .. member({ name = "b" }) .. END,
      "EFBIG", "pax header of 70015 bytes (limit 65536)")
    local half = pax({ { "comment", string.rep("c", 40000) } })
    refuses(half .. half .. member({ name = "b" }) .. END, "EFBIG", "pax header of 40015 bytes (limit 25521)")
    refuses(pax({ { "SCHILY.xattr." .. string.rep("n", 256), "v" } }) .. member({ name = "b" }) .. END,
      "EBADMSG", "pax xattr name of 256 bytes")
    -- a long pax path within the limit is fine
    local r <close> = open(pax({ { "path", string.rep("d/", 2000) .. "f" } }) .. member({ name = "b" }) .. END)
    assert.equal(4001, #r:next().name)
  end)

  it("negative, huge and malformed sizes", function()
    local neg = "\xff" .. string.rep("\xff", 10) .. "\xfe"
    refuses(header({ name = "n", size_field = neg }) .. END, "EBADMSG", "entry 'n'", "negative size")
    local huge = "\x80\0\0\0\x7f" .. string.rep("\xff", 7)  -- INT64_MAX
    refuses(header({ name = "h", size_field = huge }) .. END, "EFBIG", "entry 'h'", "size out of range")
    refuses(header({ name = "o", size_field = "\x80" .. string.rep("\xff", 11) }) .. END, "EFBIG", "size out of range")
    refuses(header({ name = "g", size_field = "12345678x\0\0\0" }) .. END, "EBADMSG", "bad size field")
    refuses(pax({ { "size", "99999999999999999999" } }) .. member({ name = "p" }) .. END, "EFBIG", "bad pax size")
    refuses(pax({ { "size", "-5" } }) .. member({ name = "p" }) .. END, "EFBIG", "bad pax size")
    refuses(pax({ { "uid", "4294967296" } }) .. member({ name = "p" }) .. END, "EBADMSG", "bad pax uid")
    refuses(pax({ { "mtime", "12x" } }) .. member({ name = "p" }) .. END, "EBADMSG", "bad pax mtime")
  end)

  it("bad checksums, bad magic and malformed pax records", function()
    local good = header({ name = "c" })
    local bad = good:sub(1, 10) .. "X" .. good:sub(12)
    refuses(bad .. END, "EBADMSG", "header at byte 0: bad header checksum")
    refuses(member({ name = "first" }, "1") .. bad .. END, "EBADMSG", "header at byte 1024: bad header checksum")
    refuses(header({ name = "m", magic = "notar\0\0\0" }) .. END, "EBADMSG", "not a ustar, pax or GNU tar header")
    local x = header({ name = "x", type = "x", size = 12 }) .. padded("99 path=ab\n\0")
    refuses(x .. member({ name = "b" }) .. END, "EBADMSG", "bad pax record at offset 0")
    local y = header({ name = "y", type = "x", size = 10 }) .. padded("10 nokeyy\n")
    refuses(y .. member({ name = "b" }) .. END, "EBADMSG", "bad pax record")
  end)

  it("truncated streams", function()
    local whole = member({ name = "f" }, string.rep("d", 1000)) .. END
    refuses(whole:sub(1, 300), "EBADMSG", "truncated archive (stream ends after byte 300)")
    refuses(member({ name = "f" }, "data"), "EBADMSG", "truncated archive")  -- no end marker
    refuses(member({ name = "f" }, "data") .. string.rep("\0", 512), "EBADMSG", "truncated")  -- one zero block
    refuses(member({ name = "f" }, "data") .. string.rep("\0", 512) .. member({ name = "g" }) .. END,
      "EBADMSG", "a lone zero block")
    -- cut inside the content: extract fails, leaves nothing, and next() repeats it
    local r <close> = open(whole:sub(1, 512 + 100))
    local e = r:next()
    assert.equal(1000, e.size)
    local ok, msg, code = r:extract(dir .. "/out")
    assert.is_nil(ok)
    assert.equal("EBADMSG", code)
    assert.matches("tar: entry 'f' (header at byte 0): truncated archive", msg, 1, true)
    assert.is_false(fs.exists(dir .. "/out"))
    assert.same({ nil, msg, code }, { r:next() })
    local r2 <close> = open(whole:sub(1, 512 + 100))
    r2:next()
    assert.same({ nil, msg, code }, { r2:skip() })
  end)

  it("entry types it cannot represent", function()
    refuses(member({ name = "sparse", type = "S" }) .. END, "EOPNOTSUPP", "entry 'sparse'",
      "unsupported entry type 'S'")
    refuses(member({ name = "v", type = "V" }) .. END, "EOPNOTSUPP", "unsupported entry type 'V'")
    refuses(member({ name = "dump", type = "D" }) .. END, "EOPNOTSUPP", "type 'D'")
    refuses(pax({ { "GNU.sparse.major", "1" } }) .. member({ name = "s" }) .. END,
      "EOPNOTSUPP", "GNU sparse entries are not supported")
  end)

  it("pax global headers apply to later entries; 'x' overrides them", function()
    local data = pax({ { "uid", "7" }, { "gid", "8" }, { "mtime", "-1.25" }, { "SCHILY.xattr.user.g", "1" },
        { "SCHILY.xattr.user.keep", "k" } }, "g")
      .. member({ name = "a", uid = 1, gid = 2, mtime = 3 }, "A")
      .. pax({ { "uid", "9" }, { "mtime", "1700000000.5" }, { "SCHILY.xattr.user.g", "2" },
        { "path", "renamed" }, { "size", "2" } })
      .. member({ name = "b", uid = 1, gid = 2, size = 99 }, "BB")
      .. pax({ { "uid", "" } }) .. member({ name = "c", uid = 5 })
      .. END
    local r <close> = open(data)
    local a = r:next()
    assert.same({ "a", 7, 8, -1.25 }, { a.name, a.uid, a.gid, a.mtime })
    assert.same({ ["user.g"] = "1", ["user.keep"] = "k" }, a.xattrs)
    local b = r:next()
    assert.same({ "renamed", 9, 8, 1700000000.5, 2 }, { b.name, b.uid, b.gid, b.mtime, b.size })
    assert.same({ ["user.g"] = "2", ["user.keep"] = "k" }, b.xattrs)
    assert(r:extract(dir .. "/b"))
    assert.equal("BB", fs.read_file(dir .. "/b"))
    assert.equal(7, r:next().uid)  -- an empty 'x' value falls back to 'g'
    assert.is_false(r:next())
    refuses(pax({ { "path", "everything" } }, "g") .. member({ name = "a" }) .. END,
      "EBADMSG", "pax global header sets 'path'")
  end)

  it("the iterator reports a failure once, then ends", function()
    local r <close> = open(member({ name = "ok" }, "x") .. member({ name = "../bad" }) .. END)
    local seen = {}
    for e, msg, code in tar.entries(r) do
      seen[#seen + 1] = e and e.name or (code .. " " .. msg)
    end
    assert.equal(2, #seen)
    assert.equal("ok", seen[1])
    assert.matches("^EINVAL tar: entry '../bad'", seen[2])
  end)

  it("escapes unprintable bytes of names in messages", function()
    refuses(member({ name = "../a\nb\xff'" }) .. END, "EINVAL", "entry '../a\\x0ab\\xff\\x27'")
  end)
end)
