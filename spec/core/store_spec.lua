-- shannot.core.store through shannot.store: hashing, put/read/copy_out
-- round trips, compression only where it pays, dedupe, move, corruption,
-- and bounded memory for a large file.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local store = require("shannot.store")
local h = require("support.h")

local EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
local ASAN = (os.getenv("SHANNOT_BIN") or ""):find("asan") ~= nil

local function sh(script, ...)
  local r = assert(proc.run({ "sh", "-c", script, "sh", ... }))
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

local function sha256sum(path)
  return sh('sha256sum "$1"', path):match("^(%x+)")
end

local function random_file(path, bytes)
  sh('head -c "$2" /dev/urandom > "$1"', path, tostring(bytes))
  return path
end

local function blob_path(dir, hash, z)
  return dir .. "/" .. hash .. (z and ".z" or "")
end

-- where a store written before note 151 kept it: DIR/ab/<hash>[.z]
local function old_path(dir, hash, z)
  return dir .. "/" .. hash:sub(1, 2) .. "/" .. hash .. (z and ".z" or "")
end

local function sorted(list)
  table.sort(list)
  return list
end

-- Every file under the store, as "ab/<hash>[.z]" or a top-level name.
local function listing(dir)
  local out = {}
  for _, name in ipairs(fs.readdir(dir)) do
    if fs.is_dir(dir .. "/" .. name) then
      for _, blob in ipairs(fs.readdir(dir .. "/" .. name)) do out[#out + 1] = name .. "/" .. blob end
    else
      out[#out + 1] = name
    end
  end
  table.sort(out)
  return out
end

local TEXT = string.rep("the quick brown fox jumps over the lazy dog\n", 200)

describe("store", function()
  local dir, blobs
  before_each(function()
    dir = h.tmpdir()
    blobs = dir .. "/blobs"
    assert(fs.mkdir(blobs, 448))
  end)
  after_each(h.cleanup)

  it("names things by a 64-bit FNV-1a of their text, without libcrypto", function()
    -- the published FNV-1a test vectors
    assert.equal("cbf29ce484222325", store.name_hash(""))
    assert.equal("af63dc4c8601ec8c", store.name_hash("a"))
    assert.equal("85944171f73967e8", store.name_hash("foobar"))
    assert.are_not.equal(store.name_hash("a\0b"), store.name_hash("a\0c"))
  end)

  it("hashes strings and files like sha256sum", function()
    assert.equal(EMPTY, store.hash_string(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", store.hash_string("abc"))
    local files = {
      h.write(dir .. "/empty", ""), h.write(dir .. "/text", TEXT), random_file(dir .. "/random", 300000),
    }
    for _, path in ipairs(files) do
      local hex, size = store.hash_file(path)
      assert.equal(sha256sum(path), hex)
      assert.equal(fs.stat(path).size, size)
    end
    assert.equal(store.hash_string(TEXT), store.hash_file(dir .. "/text"))
    assert.is_true(store.valid_hash(EMPTY))
    assert.is_false(store.valid_hash(EMPTY:upper()))
    assert.is_false(store.valid_hash(EMPTY .. "0"))
    assert.is_false(store.valid_hash(nil))
  end)

  it("hash_file and put_file take regular files only", function()
    sh('mkfifo "$1/fifo" && ln -s text "$1/link"', dir)
    h.write(dir .. "/text", TEXT)
    for _, f in ipairs({ store.hash_file, function(p) return store.put_file(blobs, p) end }) do
      local cases = { missing = "ENOENT", link = "ELOOP", fifo = "EINVAL", ["."] = "EISDIR" }
      for name, want in pairs(cases) do
        local v, msg, code = f(dir .. "/" .. name)
        assert.is_nil(v)
        assert.equal(want, code, name)
        assert.matches(dir, msg, 1, true)
      end
    end
    local _, msg = store.hash_file(dir .. "/fifo")
    assert.matches("not a regular file", msg)
    local _, _, code = store.put_file(dir .. "/no-store", dir .. "/text")
    assert.equal("ENOENT", code)
  end)

  it("put_string stores text compressed and reads it back", function()
    local info = assert(store.put_string(blobs, TEXT))
    assert.equal(store.hash_string(TEXT), info.hash)
    assert.equal(#TEXT, info.size)
    assert.is_true(info.compressed)
    assert.is_true(info.new)
    assert.is_false(info.moved)
    assert.is_true(info.stored < #TEXT / 10)
    local st = fs.stat(blob_path(blobs, info.hash, true))
    assert.equal(info.stored, st.size)
    assert.equal(384, st.mode) -- 0600
    assert.same({ info.hash .. ".z" }, fs.readdir(blobs))  -- in the store itself: no directory made
    assert.is_nil(fs.lstat(blob_path(blobs, info.hash)))
    assert.equal(TEXT, store.read(blobs, info.hash))
    assert.is_true(store.has(blobs, info.hash))
    assert.is_false(store.has(blobs, EMPTY))
  end)

  it("peek gives both ends of a content, raw or compressed, without reading the middle", function()
    for _, data in ipairs({ "", "short", string.rep("0123456789", 300), string.rep("line\n", 400000) }) do
      local info = assert(store.put_string(blobs, data))
      local head, tail, size = assert(store.peek(blobs, info.hash, 100))
      assert.equal(#data, size)
      if #data <= 200 then
        assert.equal(data, head .. tail)
      else
        assert.equal(data:sub(1, 100), head)
        assert.equal(data:sub(-100), tail)
      end
    end
    local _, msg, code = store.peek(blobs, string.rep("a", 64), 10)
    assert.equal("ENOENT", code)
    assert.matches("blobs/a+: ", msg)
  end)

  it("stores random bytes and tiny contents raw", function()
    local path = random_file(dir .. "/random", 100000)
    local info = assert(store.put_file(blobs, path))
    assert.is_false(info.compressed)
    assert.equal(100000, info.stored)
    assert.equal(fs.read_file(path), fs.read_file(blob_path(blobs, info.hash)))
    for _, data in ipairs({ "", "x", "abcabcabc" }) do
      local i = assert(store.put_string(blobs, data))
      assert.is_false(i.compressed)
      assert.equal(#data, i.stored)
      assert.equal(data, store.read(blobs, i.hash))
    end
    assert.equal(EMPTY, store.put_string(blobs, "").hash)
    -- compress_max = 0: only the empty content would be considered
    local t = assert(store.put_string(blobs, TEXT, { compress_max = 0 }))
    assert.is_false(t.compressed)
    assert.equal(#TEXT, t.stored)
  end)

  it("compresses up to DEFAULT_COMPRESS_MAX bytes, streams larger files raw", function()
    local max = store.DEFAULT_COMPRESS_MAX
    local at = assert(store.put_file(blobs, h.write(dir .. "/at", string.rep("a", max))))
    assert.is_true(at.compressed)
    local over = assert(store.put_file(blobs, h.write(dir .. "/over", string.rep("a", max + 1))))
    assert.is_false(over.compressed)
    assert.equal(max + 1, over.stored)
    assert.equal(string.rep("a", max + 1), store.read(blobs, over.hash))
    local small = assert(store.put_file(blobs, h.write(dir .. "/small", TEXT), { compress_max = 100 }))
    assert.is_false(small.compressed)
  end)

  it("copy_out writes a new file, inflating and with the mode asked", function()
    local text = assert(store.put_string(blobs, TEXT))
    local random = assert(store.put_file(blobs, random_file(dir .. "/random", 700000)))
    assert.is_true(store.copy_out(blobs, text.hash, dir .. "/out1"))
    assert.equal(TEXT, fs.read_file(dir .. "/out1"))
    assert.equal(384, fs.stat(dir .. "/out1").mode)
    assert.is_true(store.copy_out(blobs, random.hash, dir .. "/out2", 493)) -- 0755
    assert.equal(fs.read_file(dir .. "/random"), fs.read_file(dir .. "/out2"))
    assert.equal(493, fs.stat(dir .. "/out2").mode)
    -- never over an existing file or through a symlink, which stay as they were
    local ok, msg, code = store.copy_out(blobs, text.hash, dir .. "/out2")
    assert.is_nil(ok)
    assert.equal("EEXIST", code)
    assert.matches("out2", msg)
    assert.equal(fs.read_file(dir .. "/random"), fs.read_file(dir .. "/out2"))
    sh('ln -s target "$1/link"', dir)
    assert.equal("EEXIST", select(3, store.copy_out(blobs, text.hash, dir .. "/link")))
    assert.is_nil(fs.lstat(dir .. "/target"))
    local _, _, c3 = store.copy_out(blobs, text.hash, dir .. "/no/such/dir")
    assert.equal("ENOENT", c3)
  end)

  it("copy_out sets the owner, a setuid mode and the time on the file it makes, and says its size", function()
    local random = assert(store.put_file(blobs, random_file(dir .. "/random", 70000)))
    local ids = require("shannot.core.sys").ids()
    -- as root another owner (the chown comes before the mode: it would
    -- clear the setuid bit); as another user, its own
    local uid, gid = ids.euid == 0 and 1234 or ids.euid, ids.euid == 0 and 4321 or ids.egid
    local ok, size = store.copy_out(blobs, random.hash, dir .. "/placed", 2541,  -- 04755
      { uid = uid, gid = gid, mtime_sec = 1000000000, mtime_nsec = 123456789 })
    assert.same({ true, 70000 }, { ok, size })
    local st = fs.lstat(dir .. "/placed")
    assert.same({ uid, gid, 2541, 1000000000, 123456789 }, { st.uid, st.gid, st.mode, st.mtime_sec, st.mtime_nsec })
    assert.equal(fs.read_file(dir .. "/random"), fs.read_file(dir .. "/placed"))
    if ids.euid ~= 0 then  -- an owner it may not give: no file left
      assert.is_nil(store.copy_out(blobs, random.hash, dir .. "/nope", 420, { uid = 0 }))
      assert.is_nil(fs.lstat(dir .. "/nope"))
    end
  end)

  it("keeps one copy of each content", function()
    local a = assert(store.put_string(blobs, TEXT))
    local b = assert(store.put_file(blobs, h.write(dir .. "/same", TEXT)))
    assert.is_true(a.new)
    assert.is_false(b.new)
    assert.equal(a.hash, b.hash)
    assert.is_true(b.compressed)
    assert.equal(a.stored, b.stored)
    local big = string.rep("b", store.DEFAULT_COMPRESS_MAX + 5)
    local c = assert(store.put_string(blobs, big))
    local d = assert(store.put_file(blobs, h.write(dir .. "/big", big)))
    assert.is_true(c.new)
    assert.is_false(d.new)
    -- a raw blob is found when a later put would compress it, and back
    local e = assert(store.put_string(blobs, TEXT .. "!", { compress_max = 0 }))
    local f = assert(store.put_string(blobs, TEXT .. "!"))
    assert.is_false(f.new)
    assert.is_false(f.compressed)
    assert.equal(e.stored, f.stored)
    assert.same(sorted({ a.hash .. ".z", c.hash, e.hash }), listing(blobs))
  end)

  it("finds the blobs of a store written before note 151 (DIR/ab/HASH), raw and compressed", function()
    -- made by this build, then moved where an older one put them
    local raw = random_file(dir .. "/raw", 5000)
    local r = assert(store.put_file(blobs, raw))
    local z = assert(store.put_string(blobs, TEXT))
    assert.is_false(r.compressed)
    assert.is_true(z.compressed)
    for _, b in ipairs({ { r.hash, false }, { z.hash, true } }) do
      assert(fs.mkdir_p(blobs .. "/" .. b[1]:sub(1, 2), 448))
      assert(fs.rename(blob_path(blobs, b[1], b[2]), old_path(blobs, b[1], b[2])))
    end
    assert.equal(fs.read_file(raw), store.read(blobs, r.hash))
    assert.equal(TEXT, store.read(blobs, z.hash))
    assert.is_true(store.has(blobs, r.hash))
    local head, _, size = assert(store.peek(blobs, z.hash, 10))
    assert.equal(TEXT:sub(1, 10), head)
    assert.equal(#TEXT, size)
    assert(store.copy_out(blobs, r.hash, dir .. "/out", 420, { verify = true }))
    assert.equal(fs.read_file(raw), fs.read_file(dir .. "/out"))
    -- found where it is: not stored again
    assert.is_false(assert(store.put_string(blobs, TEXT)).new)
    assert.is_false(assert(store.put_file(blobs, raw)).new)
    assert.same(sorted({ old_path(blobs, r.hash):sub(#blobs + 2), old_path(blobs, z.hash, true):sub(#blobs + 2) }),
      listing(blobs))
  end)

  it("drops a short blob at the new name that would hide a whole one at the old (a crash mid-write)", function()
    local data = random_file(dir .. "/data", 3000)
    local info = assert(store.put_file(blobs, data))
    assert(fs.mkdir_p(blobs .. "/" .. info.hash:sub(1, 2), 448))
    assert(fs.rename(blob_path(blobs, info.hash), old_path(blobs, info.hash)))
    h.write(blob_path(blobs, info.hash), "cut")
    local again = assert(store.put_file(blobs, data))
    assert.is_false(again.new)
    assert.is_nil(fs.lstat(blob_path(blobs, info.hash)))
    assert.equal(fs.read_file(data), store.read(blobs, info.hash))
  end)

  it("names the store's own path for a blob that is nowhere, and fails where its directory is a file", function()
    local hash = string.rep("b", 64)
    local _, msg, code = store.read(blobs, hash)
    assert.equal("ENOENT", code)
    assert.equal(blob_path(blobs, hash) .. ": No such file or directory", msg)
    h.write(blobs .. "/bb", "a file where an old store had a directory")
    _, msg, code = store.read(blobs, hash)
    assert.equal("ENOENT", code)
    assert.equal(blob_path(blobs, hash) .. ": No such file or directory", msg)
    local file = h.write(dir .. "/not-a-dir", "x")
    local has, herr, hcode = store.has(file, hash)
    assert.is_nil(has, "a store that is a file has nothing")
    assert.equal("ENOTDIR", hcode, herr)
  end)

  it("is not fooled by leftover temp files or a blob cut short", function()
    local hash = store.hash_string(TEXT)
    h.write(blobs .. "/.tmp-abcdef", TEXT:sub(1, 100))
    h.write(blob_path(blobs, hash), "") -- raw, 0 bytes: a crash before the sync
    local big = string.rep("c", store.DEFAULT_COMPRESS_MAX + 1)
    local bighash = store.hash_string(big)
    h.write(blob_path(blobs, bighash), big:sub(1, 10))
    local info = assert(store.put_string(blobs, TEXT, { compress_max = 0 }))
    assert.is_true(info.new)
    assert.equal(TEXT, store.read(blobs, hash))
    local binfo = assert(store.put_file(blobs, h.write(dir .. "/big", big)))
    assert.is_true(binfo.new)
    assert.equal(big, store.read(blobs, bighash))
    -- no temp file of ours is left behind, including when the blob was there
    assert(store.put_file(blobs, dir .. "/big"))
    assert.same(sorted({ ".tmp-abcdef", bighash, hash }), sorted(fs.readdir(blobs)))
  end)

  it("move renames a file stored raw into the store", function()
    local path = random_file(dir .. "/up", 50000)
    local ino = fs.stat(path).ino
    local info = assert(store.put_file(blobs, path, { move = true }))
    assert.is_true(info.moved)
    assert.is_true(info.new)
    assert.is_nil(fs.lstat(path))
    local st = fs.stat(blob_path(blobs, info.hash))
    assert.equal(ino, st.ino)
    assert.equal(384, st.mode)
    assert.equal(info.hash, store.hash_file(blob_path(blobs, info.hash)))
    -- a large (streamed) file too
    local large = random_file(dir .. "/large", 3000000)
    local lino = fs.stat(large).ino
    local linfo = assert(store.put_file(blobs, large, { move = true }))
    assert.is_true(linfo.moved)
    assert.equal(lino, fs.stat(blob_path(blobs, linfo.hash)).ino)
    assert.is_nil(fs.lstat(large))
  end)

  it("move leaves the file when it is compressed, already there or hard-linked", function()
    local text = h.write(dir .. "/text", TEXT)
    local t = assert(store.put_file(blobs, text, { move = true }))
    assert.is_true(t.compressed)
    assert.is_false(t.moved)
    assert.equal(TEXT, fs.read_file(text))
    local a = random_file(dir .. "/a", 40000)
    sh('cp "$1/a" "$1/a2" && ln "$1/a" "$1/a-link"', dir)
    local first = assert(store.put_file(blobs, dir .. "/a2", { move = true }))
    assert.is_true(first.moved)
    local again = assert(store.put_file(blobs, a, { move = true }))
    assert.is_false(again.new)
    assert.is_false(again.moved)
    assert.is_not_nil(fs.lstat(a))
    assert.is_true(fs.remove(blob_path(blobs, first.hash)))
    local linked = assert(store.put_file(blobs, a, { move = true }))
    assert.is_true(linked.new)
    assert.is_false(linked.moved)
    assert.are_not.equal(fs.stat(a).ino, fs.stat(blob_path(blobs, linked.hash)).ino)
  end)

  it("move replaces a short blob a crash left, keeps a whole one, and stores a tiny file raw", function()
    local a = random_file(dir .. "/a", 40000)
    local hash = store.hash_file(a)
    h.write(blob_path(blobs, hash), "short")
    local info = assert(store.put_file(blobs, a, { move = true }))
    assert.is_true(info.moved)
    assert.equal(40000, info.stored)
    assert.equal(hash, store.hash_file(blob_path(blobs, hash)))
    -- the same content again: the whole blob stays, the file is left
    local b = random_file(dir .. "/b", 40000)
    sh('cp "$1" "$2"', blob_path(blobs, hash), b)
    local again = assert(store.put_file(blobs, b, { move = true }))
    assert.is_false(again.moved)
    assert.is_false(again.new)
    assert.is_not_nil(fs.lstat(b))
    -- 100 zero bytes would deflate, but a stream's set-up costs more than
    -- the bytes it saves
    local tiny = h.write(dir .. "/tiny", string.rep("\0", 100))
    local t = assert(store.put_file(blobs, tiny, { move = true }))
    assert.is_false(t.compressed)
    assert.is_true(t.moved)
    assert.equal(string.rep("\0", 100), store.read(blobs, t.hash))
  end)

  it("move copies from another file system", function()
    if not h.need(fs.is_dir("/dev/shm") and fs.stat("/dev/shm").dev ~= fs.stat(dir).dev,
      "a /dev/shm on another file system") then return end
    local shm = assert(fs.mkdtemp("/dev/shm/shannot-store-"))
    finally(function() fs.rmtree(shm) end)
    local small = random_file(shm .. "/small", 1000)
    local large = random_file(shm .. "/large", 2000000)
    for _, path in ipairs({ small, large }) do
      local info = assert(store.put_file(blobs, path, { move = true }))
      assert.is_false(info.moved)
      assert.is_true(info.new)
      assert.equal(fs.read_file(path), fs.read_file(blob_path(blobs, info.hash)))
      -- once more: the copy finds the blob there (no second write)
      local again = assert(store.put_file(blobs, path, { move = true }))
      assert.is_false(again.new)
      assert.is_false(again.moved)
    end
  end)

  it("move falls back to a copy on EXDEV (a bind mount of the same file system)", function()
    local probe = proc.run({ "unshare", "-Urm", "true" })
    if not h.need(probe and probe.code == 0, "unprivileged user namespaces (unshare -Urm)") then return end
    assert(fs.mkdir(dir .. "/src"))
    assert(fs.mkdir(dir .. "/mnt"))
    random_file(dir .. "/src/small", 1000)
    random_file(dir .. "/src/large", 2000000)
    local script = h.write(dir .. "/move.lua", [[
      local store = require("shannot.core.store")
      local blobs, mnt = ...
      for _, name in ipairs({ "small", "large" }) do
        local info = assert(store.put_file(blobs, mnt .. "/" .. name, { move = true }))
        io.write(name, " ", tostring(info.moved), " ", tostring(info.new), " ", info.hash, "\n")
      end
    ]])
    local mount = string.format("mount --bind '%s/src' '%s/mnt' && exec \"$0\" \"$@\"", dir, dir)
    local r = h.shannot({ "lua", script, blobs, dir .. "/mnt" },
      { prefix = { "unshare", "-Urm", "sh", "-c", mount } })
    assert.equal(0, r.code, r.stderr)
    for _, name in ipairs({ "small", "large" }) do
      local path = dir .. "/src/" .. name
      local hash = store.hash_file(path)
      assert.matches(name .. " false true " .. hash, r.stdout, 1, true)
      assert.equal(fs.read_file(path), fs.read_file(blob_path(blobs, hash)))
    end
  end)

  it("refuses a corrupt blob in read and copy_out", function()
    local raw = assert(store.put_file(blobs, random_file(dir .. "/r", 5000)))
    local rpath = blob_path(blobs, raw.hash)
    local data = fs.read_file(rpath)
    h.write(rpath, data:sub(1, 99) .. string.char((data:byte(100) + 1) % 256) .. data:sub(101))
    local v, msg, code = store.read(blobs, raw.hash)
    assert.is_nil(v)
    assert.equal("EBADMSG", code)
    assert.equal(rpath .. ": blob is corrupt (hash mismatch)", msg)
    local ok, msg2, code2 = store.copy_out(blobs, raw.hash, dir .. "/out")
    assert.is_nil(ok)
    assert.equal("EBADMSG", code2)
    assert.equal(msg, msg2)
    assert.is_nil(fs.lstat(dir .. "/out"))
    -- compressed: another content's zlib stream, a truncated one, garbage
    local z = assert(store.put_string(blobs, TEXT))
    local other = assert(store.put_string(blobs, TEXT .. TEXT))
    local zpath = blob_path(blobs, z.hash, true)
    local other_z = fs.read_file(blob_path(blobs, other.hash, true))
    for _, bytes in ipairs({ other_z, other_z:sub(1, 20), "not zlib at all", other_z .. "tail" }) do
      h.write(zpath, bytes)
      local v3, msg3, code3 = store.read(blobs, z.hash)
      assert.is_nil(v3)
      assert.equal("EBADMSG", code3)
      assert.matches(zpath .. ": blob is corrupt (", msg3, 1, true)
      assert.is_nil(store.copy_out(blobs, z.hash, dir .. "/out"))
      assert.is_nil(fs.lstat(dir .. "/out"))
    end
  end)

  it("read refuses content larger than max", function()
    local raw = assert(store.put_file(blobs, random_file(dir .. "/r", 5000)))
    local z = assert(store.put_string(blobs, string.rep("z", 1000000)))
    assert.equal(5000, #store.read(blobs, raw.hash, 5000))
    assert.equal(1000000, #store.read(blobs, z.hash, 1000000))
    for _, hash in ipairs({ raw.hash, z.hash }) do
      local v, msg, code = store.read(blobs, hash, 4999)
      assert.is_nil(v)
      assert.equal("EFBIG", code)
      assert.matches(hash, msg, 1, true)
    end
    assert.equal("EFBIG", select(3, store.read(blobs, z.hash, 0)))
  end)

  it("reports a missing blob as ENOENT", function()
    local v, msg, code = store.read(blobs, EMPTY)
    assert.is_nil(v)
    assert.equal("ENOENT", code)
    assert.matches(EMPTY, msg)
    local _, _, c2 = store.copy_out(blobs, EMPTY, dir .. "/out")
    assert.equal("ENOENT", c2)
    assert.is_nil(fs.lstat(dir .. "/out"))
    assert.is_false(store.has(blobs, EMPTY))
    assert.is_false(store.has(dir .. "/none", EMPTY))
    local long = dir .. "/" .. string.rep("d", 4100)
    assert.equal("ENAMETOOLONG", select(3, store.read(long, EMPTY)))
    assert.equal("ENAMETOOLONG", select(3, store.has(long, EMPTY)))
    assert.equal("ENAMETOOLONG", select(3, store.put_string(long, "x")))
  end)

  it("raises on misuse", function()
    for _, bad in ipairs({ "abc", EMPTY:upper(), EMPTY .. "0", "../" .. EMPTY:sub(4), 42 }) do
      assert.has_error(function() store.read(blobs, bad) end)
      assert.has_error(function() store.has(blobs, bad) end)
      assert.has_error(function() store.copy_out(blobs, bad, dir .. "/out") end)
    end
    assert.has_error(function() store.read(blobs) end)
    assert.has_error(function() store.put_string(blobs) end)
    assert.has_error(function() store.put_file(nil, "x") end)
    assert.has_error(function() store.put_string(blobs, "x", { compress_max = -1 }) end)
    assert.has_error(function() store.put_string(blobs, "x", { compress_max = 1.5 }) end)
    assert.has_error(function() store.put_string(blobs, "x", 5) end)
    assert.has_error(function() store.read(blobs, EMPTY, -1) end)
    assert.has_error(function() store.copy_out(blobs, EMPTY, dir .. "/out", 65536) end)
    assert.has_error(function() store.hash_file() end)
  end)
end)

-- Peak RSS (VmHWM) in KiB; reset_peak() starts a new peak where the kernel
-- allows it (clear_refs "5"), so earlier specs do not hide growth.
local function peak_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return assert(tonumber(s:match("VmHWM:%s*(%d+)")))
end

local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if f then
    f:write("5")
    f:close()
  end
end

local function peak_growth_kb(f)
  collectgarbage()
  reset_peak()
  local before = peak_kb()
  f()
  return peak_kb() - before
end

describe("store memory", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(h.cleanup)

  it("puts, copies out and hashes a 512 MiB file in bounded memory", function()
    -- ASan's shadow memory and quarantine alone take ~30 MiB
    local limit = (ASAN and 64 or 32) * 1024
    local big = dir .. "/big"
    sh('truncate -s 512M "$1" && printf head | dd of="$1" conv=notrunc status=none && '
      .. 'printf middle | dd of="$1" bs=1 seek=300000000 conv=notrunc status=none && '
      .. 'printf tail | dd of="$1" bs=1 seek=536870908 conv=notrunc status=none', big)
    local blobs = dir .. "/blobs"
    assert(fs.mkdir(blobs, 448))
    local hex, size
    local grew = peak_growth_kb(function() hex, size = assert(store.hash_file(big)) end)
    assert.is_true(grew < limit, "hash_file: peak RSS grew " .. grew .. " KiB")
    assert.equal(512 * 1024 * 1024, size)
    local info
    grew = peak_growth_kb(function() info = assert(store.put_file(blobs, big)) end)
    assert.is_true(grew < limit, "put_file: peak RSS grew " .. grew .. " KiB")
    assert.equal(hex, info.hash)
    assert.is_false(info.compressed)
    assert.equal(size, fs.stat(blob_path(blobs, hex)).size)
    assert.is_not_nil(fs.lstat(big))
    grew = peak_growth_kb(function() assert(store.copy_out(blobs, hex, dir .. "/out")) end)
    assert.is_true(grew < limit, "copy_out: peak RSS grew " .. grew .. " KiB")
    assert.equal(size, fs.stat(dir .. "/out").size)
    assert.equal(hex, store.hash_file(dir .. "/out"))
    assert.equal("EFBIG", select(3, store.read(blobs, hex)))
  end)
end)

-- SHA-256: sha256.c's for a process's first OWN_MAX (256 KiB) bytes, and
-- for anything that cannot wait for libcrypto; libcrypto's, loaded only
-- then, after.  Both must give coreutils' sha256sum's digests.
describe("store hashing", function()
  after_each(h.cleanup)

  it("gives sha256sum's digests with either implementation, libcrypto loaded only past 256 KiB", function()
    local dir = h.tmpdir()
    -- every length around the 64-byte blocks and the 56-byte padding edge
    local lengths = {}
    for n = 0, 200 do lengths[#lengths + 1] = n end
    for _, n in ipairs({ 4095, 4096, 4097, 65535, 65536, 100000 }) do lengths[#lengths + 1] = n end
    local names = {}
    for _, n in ipairs(lengths) do names[#names + 1] = random_file(dir .. "/f" .. n, n) end
    local big = random_file(dir .. "/big", 1024 * 1024)
    local script = h.write(dir .. "/hash.lua", [[
      local store = require("shannot.core.store")
      local function loaded()
        return io.open("/proc/self/maps"):read("a"):find("libcrypto", 1, true) ~= nil
      end
      local out = {}
      for i = 1, #arg - 1 do out[#out + 1] = assert(store.hash_file(arg[i])) end
      out[#out + 1] = loaded() and "loaded" or "not loaded"
      out[#out + 1] = assert(store.hash_file(arg[#arg]))
      out[#out + 1] = loaded() and "loaded" or "not loaded"
      -- (and, libcrypto's now, every small one again)
      for i = 1, #arg - 1 do out[#out + 1] = assert(store.hash_file(arg[i])) end
      io.write(table.concat(out, "\n"), "\n")
    ]])
    local args = { "lua", script }
    table.move(names, 1, #names, 3, args)
    args[#args + 1] = big
    local r = h.shannot(args)
    assert.equal(0, r.code, r.stderr)
    local got = {}
    for line in r.stdout:gmatch("[^\n]+") do got[#got + 1] = line end
    local want = {}
    for _, f in ipairs(names) do want[#want + 1] = sha256sum(f) end
    want[#want + 1] = "not loaded"
    want[#want + 1] = sha256sum(big)
    want[#want + 1] = "loaded"
    for _, f in ipairs(names) do want[#want + 1] = sha256sum(f) end
    assert.same(want, got)
  end)
end)
