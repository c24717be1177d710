-- shannot.core.ssh through shannot.ssh, against a real OpenSSH sshd on
-- 127.0.0.1 (spec/support/sshd.lua): exec (codes, streams, stdin, stdout
-- to an fd in flat memory, truncation, timeout, signals, reuse), host key
-- checking (unknown, accept_new, changed), authentication, SFTP, handle
-- lifetimes and the ELIBACC path.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local ssh = require("shannot.ssh")
local sys = require("shannot.core.sys")
local h = require("support.h")
local sshd = require("support.sshd")

local ASAN = (os.getenv("SHANNOT_BIN") or ""):find("asan") ~= nil

local srv, start_err

local function server()
  if not h.need(sshd.available(), "OpenSSH (openssh-server)") then return nil end
  assert(srv, start_err)
  return srv
end

-- connect(overrides) -> ssh.connect's results, with the spec server's
-- host, port, user, key and known_hosts, and no ssh config file.
local function connect(overrides)
  local o = {
    host = srv.host, port = srv.port, user = srv.user, identity = srv.key,
    known_hosts = srv.known_hosts, config = false, timeout = 10,
  }
  for k, v in pairs(overrides or {}) do o[k] = v end
  return ssh.connect(o)
end

local function sh(script, ...)
  local r = assert(proc.run({ "sh", "-c", script, "sh", ... }))
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

-- Peak RSS (VmHWM) growth in KiB while f runs (as store_spec does).
local function peak_growth_kb(f)
  local function peak()
    local file = assert(io.open("/proc/self/status"))
    local s = file:read("a")
    file:close()
    return assert(tonumber(s:match("VmHWM:%s*(%d+)")))
  end
  collectgarbage()
  local reset = io.open("/proc/self/clear_refs", "w")
  if reset then
    reset:write("5")
    reset:close()
  end
  local before = peak()
  f()
  return peak() - before
end

describe("shannot.ssh", function()
  lazy_setup(function()
    if sshd.available() then
      local ok, s = pcall(sshd.start)
      if ok then srv = s else start_err = s end
    end
  end)

  lazy_teardown(function()
    if srv then srv.stop() end
    h.cleanup()
  end)

  describe("ssh exec", function()
    it("runs a command: exit code and both streams", function()
      if not server() then return end
      local t0 = sys.monotonic()
      local s <close> = assert(connect())
      print(string.format("\nssh connect (handshake, host key, auth): %.1f ms", (sys.monotonic() - t0) * 1000))
      local r = assert(s:exec("echo hi; echo err >&2; exit 3"))
      assert.equal(3, r.code)
      assert.equal("hi\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.equal(3, r.stdout_bytes)
      assert.equal(4, r.stderr_bytes)
      assert.equal(0, r.stdout_dropped)
      assert.is_false(r.stdout_truncated)
      assert.is_false(r.timed_out)
      assert.is_nil(r.signal)
      assert.is_nil(r.interrupted)
      assert.is_true(r.duration >= 0 and r.duration < 10)
      local key = s:host_key()
      assert.equal(sshd.fingerprint(srv.host_key_pub), key.fingerprint)
      assert.equal("ssh-ed25519", key.key_type)
      assert.is_false(key.added)
    end)

    it("sends stdin and then EOF", function()
      if not server() then return end
      local s <close> = assert(connect())
      -- 3 MB: more than the channel window, so the writes wait for it
      local data = {}
      for i = 1, 300000 do data[i] = string.format("%9d\n", i) end
      data = table.concat(data)
      local r = assert(s:exec("cat", { stdin = data, max_capture = 8 * 1024 * 1024 }))
      assert.equal(0, r.code)
      assert.equal(#data, r.stdout_bytes)
      assert.is_true(r.stdout == data)
      assert.equal("", assert(s:exec("cat")).stdout)  -- no stdin: EOF at once
      assert.equal("x", assert(s:exec("cat", { stdin = "x" })).stdout)
    end)

    it("streams stdout to an fd: 50 MB whole, in flat memory", function()
      if not server() then return end
      local s <close> = assert(connect())
      local tmp = h.tmpdir()
      finally(function() fs.rmtree(tmp) end)
      local path = tmp .. "/out"
      local f <close> = assert(fs.open(path, "a"))
      local size = 50 * 1024 * 1024
      local r
      local grew = peak_growth_kb(function()
        r = assert(s:exec("head -c " .. size .. " /dev/urandom", { stdout_fd = f:fd(), max_capture = 4096 }))
      end)
      assert.equal(0, r.code, r.stderr)
      assert.equal(size, r.stdout_bytes)
      assert.is_nil(r.stdout)
      assert.equal(size, fs.stat(path).size)
      print(string.format("\nssh exec of 50 MB to stdout_fd: peak RSS grew %d KiB", grew))
      -- Under ASan the quarantine keeps up to 256 MiB of freed memory, and
      -- libssh allocates per packet: only the plain build can tell.
      if not ASAN then assert.is_true(grew < 32 * 1024, "peak RSS grew " .. grew .. " KiB") end
      -- a reader that went away fails the exec, and the command is ended
      local rd, wr = assert(fs.pipe())
      rd:close()
      local ok, msg, code = s:exec("head -c 1000000 /dev/zero", { stdout_fd = wr:fd() })
      wr:close()
      assert.is_nil(ok)
      assert.equal("EPIPE", code, msg)
      assert.equal(0, assert(s:exec("true")).code)  -- the session still works
    end)

    it("copies both streams to fds as they come, without terminal strings, and keeps them whole", function()
      if not server() then return end
      local s <close> = assert(connect())
      local tmp = h.tmpdir()
      local out <close> = assert(fs.open(tmp .. "/out", "a"))
      local err <close> = assert(fs.open(tmp .. "/err", "a"))
      -- an OSC 52 clipboard string, split over two writes; colours pass
      local cmd = [[printf 'a\033]52;c;'; sleep 0.1; printf 'aGk=\007b\033[1mc\n'; ]] ..
        [[head -c 200000 /dev/zero | tr '\0' x; echo e >&2]]
      local r = assert(s:exec(cmd, { tee_stdout = out:fd(), tee_stderr = err:fd(), tee_no_strings = true,
        max_capture = 1024 * 1024 }))
      assert.equal(0, r.code, r.stderr)
      assert.equal("a\27]52;c;aGk=\7b\27[1mc\n" .. string.rep("x", 200000), r.stdout)  -- kept as it came
      assert.equal("ab\27[1mc\n" .. string.rep("x", 200000), fs.read_file(tmp .. "/out"))
      assert.equal("e\n", fs.read_file(tmp .. "/err"))
      assert.has_error(function() s:exec("true", { tee_stdout = 1.5 }) end)
    end)

    it("keeps the head and the tail of a large output", function()
      if not server() then return end
      local s <close> = assert(connect())
      local r = assert(s:exec("seq 1 100000", { max_capture = 1000 }))
      local full = sh("seq 1 100000")
      assert.equal(#full, r.stdout_bytes)
      assert.is_true(r.stdout_truncated)
      assert.equal(#full - 1000, r.stdout_dropped)
      assert.equal(500, r.stdout_dropped_at)
      assert.equal(full:sub(1, 500) .. full:sub(-500), r.stdout)
    end)

    it("stops a command at its timeout", function()
      if not server() then return end
      local s <close> = assert(connect())
      local r = assert(s:exec("echo started; sleep 5", { timeout = 0.5 }))
      assert.is_true(r.timed_out)
      assert.is_nil(r.code)
      assert.equal("started\n", r.stdout)
      assert.is_true(r.duration >= 0.5 and r.duration < 4, tostring(r.duration))
      assert.equal(0, assert(s:exec("true")).code)
    end)

    it("stops waiting when shannot is interrupted (SIGINT)", function()
      if not server() then return end
      local dir = h.tmpdir()
      local script = h.write(dir .. "/interrupt.lua", [[
        local port, key, kh, marker = ...
        local s = assert(require("shannot.ssh").connect({ host = "127.0.0.1", port = tonumber(port),
          identity = key, known_hosts = kh, config = false }))
        s:exec("touch '" .. marker .. "'; sleep 5")
        io.stdout:write("exec returned normally\n")
      ]])
      local p <close> = assert(proc.spawn({ h.BIN, "lua", script, tostring(srv.port), srv.key, srv.known_hosts,
        dir .. "/running" }, { env = h.env(), stdin = "null", stdout = "pipe", stderr = "pipe" }))
      h.eventually(function() return fs.lstat(dir .. "/running") ~= nil end, "the remote command")
      assert(p:kill("INT"))
      local r = assert(p:communicate({ timeout = 10 }))
      assert.is_false(r.timed_out)
      assert.is_true(r.duration < 3, tostring(r.duration))
      assert.equal("", r.stdout)
      assert.truthy(r.stderr:find("interrupted", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
    end)

    it("reports an exit by signal as proc does: number and name", function()
      if not server() then return end
      local s <close> = assert(connect())
      local r = assert(s:exec("kill -TERM $$"))
      assert.equal(15, r.signal)
      assert.equal("TERM", r.signal_name)
      assert.is_nil(r.code)
      assert.is_false(r.timed_out)
    end)

    it("returns a finished command in the shape proc.run does (STYLE 35)", function()
      if not server() then return end
      local s <close> = assert(connect())
      local function shape(r)
        local keys = {}
        for k, v in pairs(r) do keys[#keys + 1] = k .. ":" .. (math.type(v) or type(v)) end
        table.sort(keys)
        return keys
      end
      for _, script in ipairs({ "echo out; echo err >&2; exit 3", "kill -TERM $$" }) do
        local here = assert(proc.run({ "/bin/sh", "-c", script }))
        local there = assert(s:exec(script))
        -- what only a local process can tell (its peak memory, bytes seen)
        here.maxrss_kb, here.stdout_bytes, here.stderr_bytes = nil, nil, nil
        there.stdout_bytes, there.stderr_bytes = nil, nil
        assert.same(shape(here), shape(there))
        assert.same({ here.code, here.signal, here.signal_name, here.stdout, here.stderr },
          { there.code, there.signal, there.signal_name, there.stdout, there.stderr })
      end
    end)

    it("reports a lost connection with code SSH", function()
      if not server() then return end
      local s <close> = assert(connect())
      -- the command's parent is the sshd process that holds the connection
      local ok, msg, code = s:exec("kill -KILL $PPID; sleep 5", { timeout = 10 })
      assert.is_nil(ok)
      assert.equal("SSH", code, msg)
      assert.equal("SSH", select(3, s:exec("true")))
      assert.equal("SSH", select(3, s:sftp()))
    end)

    it("reuses one connection for many commands", function()
      if not server() then return end
      local s <close> = assert(connect())
      local n = 200
      local t0 = sys.monotonic()
      for i = 1, n do
        local r = assert(s:exec("echo " .. i))
        assert.equal(i .. "\n", r.stdout)
      end
      local per = (sys.monotonic() - t0) / n
      print(string.format("\nssh exec on a reused session: %.2f ms per command (%d)", per * 1000, n))
      assert.is_true(per < 0.1, "per exec: " .. per .. " s")
    end)

    -- sshd sends a hostkeys notice right after the login and holds the
    -- first channel's confirmation until that is acknowledged, which Linux
    -- delays up to 40 ms unless the client asks for quick ACKs: the first
    -- command (or SFTP) of a connection then took 40 ms longer than the next.
    it("opens the first channel of a connection as fast as the next, SFTP too", function()
      if not server() then return end
      -- first(s) opens the connection's first channel; the least of 9
      -- (load only adds): the stall made every first one slow
      local function extra(first)
        local least = math.huge
        for _ = 1, 9 do
          local s <close> = assert(connect())
          local t0 = sys.monotonic()
          assert(first(s))
          local t1 = sys.monotonic()
          assert(s:exec("true"))
          least = math.min(least, (t1 - t0) - (sys.monotonic() - t1))
        end
        return least
      end
      local exec = extra(function(s) return s:exec("true") end)
      local sftp = extra(function(s) return s:sftp() end)
      print(string.format("\nssh first channel of a connection: %.2f ms (exec), %.2f ms (sftp) more than an exec " ..
        "after it (least of 9)", exec * 1000, sftp * 1000))
      assert.is_true(exec < 0.02, "the first command took " .. exec .. " s longer")
      assert.is_true(sftp < 0.02, "sftp as the first channel took " .. sftp .. " s longer")
    end)
  end)

  describe("ssh host keys and authentication", function()
    it("refuses an unknown host key, with its SHA256 fingerprint", function()
      if not server() then return end
      local dir = h.tmpdir()
      for _, kh in ipairs({ h.write(dir .. "/empty", ""), dir .. "/absent" }) do
        local s, msg, code, info = connect({ known_hosts = kh })
        assert.is_nil(s)
        assert.equal("HOSTKEY_UNKNOWN", code, msg)
        assert.equal(sshd.fingerprint(srv.host_key_pub), info.fingerprint)
        assert.equal("ssh-ed25519", info.key_type)
        assert.is_nil(info.old_fingerprint)
        assert.truthy(msg:find(info.fingerprint, 1, true))
      end
      assert.is_nil(fs.lstat(dir .. "/absent"))
    end)

    it("adds an unknown host key with accept_new; the next connect needs it not", function()
      if not server() then return end
      local kh = h.tmpdir() .. "/ssh/known_hosts"  -- neither exists yet
      local s = assert(connect({ known_hosts = kh, accept_new = true }))
      assert.is_true(s:host_key().added)
      s:close()
      local line = assert(fs.read_file(kh))
      assert.truthy(line:find(string.format("[%s]:%d ssh-ed25519 ", srv.host, srv.port), 1, true), line)
      local again <close> = assert(connect({ known_hosts = kh }))
      assert.is_false(again:host_key().added)
      assert.equal(0, assert(again:exec("true")).code)
      assert.equal(line, fs.read_file(kh))
    end)

    it("refuses a changed host key, even with accept_new, naming both keys", function()
      if not server() then return end
      local other = sshd.start()
      finally(other.stop)
      -- known_hosts records the first server's key for the second's port
      local kh = h.write(h.tmpdir() .. "/known_hosts", sshd.known_hosts_line(other.port, srv.host_key_pub))
      for _, accept in ipairs({ false, true }) do
        local s, msg, code, info = connect({ port = other.port, known_hosts = kh, identity = other.key,
          accept_new = accept })
        assert.is_nil(s)
        assert.equal("HOSTKEY_CHANGED", code, msg)
        assert.equal(sshd.fingerprint(other.host_key_pub), info.fingerprint)
        assert.equal(sshd.fingerprint(srv.host_key_pub), info.old_fingerprint)
      end
      assert.equal(sshd.known_hosts_line(other.port, srv.host_key_pub), fs.read_file(kh))
    end)

    it("reads an ssh config file: HostName, Port, User, IdentityFile", function()
      if not server() then return end
      local cfg = h.write(h.tmpdir() .. "/config", string.format(
        "Host spec-alias\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n",
        srv.host, srv.port, srv.user, srv.key))
      local s <close> = assert(ssh.connect({ host = "spec-alias", config = cfg, known_hosts = srv.known_hosts,
        timeout = 10 }))
      assert.equal("ok\n", assert(s:exec("echo ok")).stdout)
    end)

    it("fails authentication with a key the server does not know", function()
      if not server() then return end
      local wrong = sshd.keygen(h.tmpdir() .. "/wrong")
      local s, msg, code, info = connect({ identity = wrong })
      assert.is_nil(s)
      assert.equal("AUTH", code, msg)
      assert.same({ "publickey" }, info.methods)
    end)

    it("reports a missing or unreadable identity, and a refused connection", function()
      if not server() then return end
      local dir = h.tmpdir()
      local _, msg, code = connect({ identity = dir .. "/none" })
      assert.equal("ENOENT", code, msg)
      _, msg, code = connect({ identity = h.write(dir .. "/garbage", "not a key\n") })
      assert.equal("IDENTITY", code, msg)
      _, msg, code = connect({ port = 1 })
      assert.equal("CONNECT", code, msg)
    end)

    it("raises on misuse", function()
      assert.has_error(function() ssh.connect() end)
      assert.has_error(function() ssh.connect({}) end)
      assert.has_error(function() ssh.connect({ host = "h", port = 70000 }) end)
      assert.has_error(function() ssh.connect({ host = "h", config = 1 }) end)
    end)
  end)

  describe("ssh handles", function()
    it("closes idempotently; a closed handle raises", function()
      if not server() then return end
      local s = assert(connect())
      local f = assert(s:sftp())
      assert.equal(f, s:sftp())
      assert.has_error(function() s:exec() end)
      assert.has_error(function() s:exec("true", { max_capture = -1 }) end)
      assert.has_error(function() s:exec("cat", { stdin = 5 }) end)
      assert.has_error(function() s:exec("cat", { stdout_fd = 1.5 }) end)
      s:close()
      s:close()
      assert.has_error(function() s:exec("true") end, "attempt to use a closed Session")
      assert.has_error(function() f:stat("/") end, "attempt to use a closed Sftp")
      f:close()
      do
        local scoped <close> = assert(connect())
        local g <close> = assert(scoped:sftp())
        assert.is_not_nil(g:stat("/"))
      end
      local t = assert(connect())
      local g = assert(t:sftp())
      g:close()
      local g2 = assert(t:sftp())
      assert.are_not.equal(g, g2)
      assert.is_not_nil(g2:stat("/"))
      t = nil  -- luacheck: ignore
      g2 = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)

    it("returns ELIBACC when libssh cannot be loaded", function()
      if not server() then return end
      local bwrap = fs.which("bwrap", os.getenv("PATH"))
      local probe = bwrap and proc.run({ bwrap, "--dev-bind", "/", "/", "true" })
      if not h.need(probe and probe.code == 0, "bwrap with mount namespaces") then return end
      local lib = assert(sh("/sbin/ldconfig -p"):match("libssh%.so%.4 %([^)]*x86%-64[^)]*%) => (%S+)")
        or sh("/sbin/ldconfig -p"):match("libssh%.so%.4 [^\n]*=> (%S+)"))
      local script = h.write(h.tmpdir() .. "/elibacc.lua", [[
        local s, msg, code = require("shannot.ssh").connect({ host = "127.0.0.1" })
        io.write(tostring(s), "|", tostring(code), "|", tostring(msg))
      ]])
      local r = assert(proc.run({ bwrap, "--dev-bind", "/", "/", "--ro-bind", "/dev/null", assert(fs.realpath(lib)),
        h.BIN, "lua", script }, { env = h.env() }))
      assert.equal(0, r.code, r.stderr)
      local s, code, msg = r.stdout:match("^(.-)|(.-)|(.*)$")
      assert.equal("nil", s)
      assert.equal("ELIBACC", code)
      assert.truthy(msg:find("^libssh: "), msg)
    end)
  end)

  describe("sftp", function()
    local s, f, dir
    before_each(function()
      if not sshd.available() or not srv then return end
      s = assert(connect())
      f = assert(s:sftp())
      dir = h.tmpdir()
    end)
    after_each(function()
      if s then s:close() end
    end)

    it("puts and gets a 20 MB file in fixed chunks", function()
      if not server() then return end
      finally(function() fs.rmtree(dir) end)
      local src = dir .. "/src"
      sh('head -c 20971520 /dev/urandom > "$1"', src)
      assert.equal(20971520, f:put(src, dir .. "/remote", 416))  -- 0640
      local st = assert(f:stat(dir .. "/remote"))
      assert.equal("file", st.type)
      assert.equal(20971520, st.size)
      assert.equal(416, st.mode)
      assert.equal(20971520, f:get(dir .. "/remote", dir .. "/back"))
      sh('cmp "$1" "$2"', src, dir .. "/back")
      assert.equal(384, fs.stat(dir .. "/back").mode)  -- 0600
      -- neither overwrites
      local _, msg, code = f:put(src, dir .. "/remote")
      assert.equal("EEXIST", code, msg)
      _, msg, code = f:get(dir .. "/remote", dir .. "/back")
      assert.equal("EEXIST", code, msg)
      -- a failed get leaves no local file; a failed put no remote one
      _, msg, code = f:get(dir .. "/absent", dir .. "/nothing")
      assert.equal("ENOENT", code, msg)
      assert.is_nil(fs.lstat(dir .. "/nothing"))
      _, msg, code = f:put(dir .. "/absent", dir .. "/nothing")
      assert.equal("ENOENT", code, msg)
      assert.is_nil(fs.lstat(dir .. "/nothing"))
    end)

    it("tells how far a transfer is, and a failing teller ends nothing", function()
      if not server() then return end
      finally(function() fs.rmtree(dir) end)
      local src = dir .. "/src"
      sh('head -c 8388608 /dev/urandom > "$1"', src)
      local function teller()
        local seen = {}
        return seen, function(n)
          assert.is_true(n > (seen[#seen] or 0), "the count must rise")
          seen[#seen + 1] = n
        end
      end
      local puts, on_put = teller()
      assert.equal(8388608, f:put(src, dir .. "/remote", 384, on_put))
      assert.equal(8388608, puts[#puts])  -- the last call says all of it
      local gets, on_get = teller()
      assert.equal(8388608, f:get(dir .. "/remote", dir .. "/back", on_get))
      assert.equal(8388608, gets[#gets])
      local streamed, on_stream = teller()
      local out <close> = assert(fs.open(dir .. "/stream", "a"))
      local r = assert(s:exec('cat "' .. src .. '"', { stdout_fd = out:fd(), on_stdout_bytes = on_stream }))
      assert.equal(0, r.code)
      assert.equal(8388608, streamed[#streamed])
      -- a display that fails is not the transfer's failure
      local function broken() error("the terminal went away") end
      assert.equal(8388608, f:put(src, dir .. "/again", 384, broken))
      sh('cmp "$1" "$2"', src, dir .. "/again")
    end)

    it("stats, links, makes, renames, removes and lists", function()
      if not server() then return end
      h.write(dir .. "/a", "A")
      h.write(dir .. "/b", "BB")
      assert.is_true(f:symlink("a", dir .. "/link"))
      assert.equal("a", f:readlink(dir .. "/link"))
      assert.equal("link", f:lstat(dir .. "/link").type)
      assert.equal("file", f:stat(dir .. "/link").type)
      assert.equal(1, f:stat(dir .. "/link").size)
      assert.is_true(f:mkdir(dir .. "/d", 448))
      local st = f:lstat(dir .. "/d")
      assert.equal("dir", st.type)
      assert.equal(448, st.mode)
      assert.equal(fs.stat(dir .. "/d").uid, st.uid)
      assert.equal(math.floor(fs.stat(dir .. "/d").mtime), math.floor(st.mtime))
      local _, msg, code = f:mkdir(dir .. "/d")
      assert.equal("EEXIST", code, msg)
      assert.is_true(f:rename(dir .. "/a", dir .. "/b"))  -- replaces b
      assert.equal("A", fs.read_file(dir .. "/b"))
      assert.is_nil(fs.lstat(dir .. "/a"))
      assert.equal("A", f:read(dir .. "/b"))
      assert.is_true(f:chmod(dir .. "/b", 384))
      assert.equal(384, fs.stat(dir .. "/b").mode)
      local names = assert(f:readdir(dir))
      table.sort(names)
      assert.same({ "b", "d", "link" }, names)
      assert.is_true(f:unlink(dir .. "/link"))
      assert.is_true(f:rmdir(dir .. "/d"))
      -- exec channels and the SFTP channel share the connection
      assert.equal("b\n", assert(s:exec("ls '" .. dir .. "'")).stdout)
      assert.same({ "b" }, f:readdir(dir))
      assert.equal("ENAMETOOLONG", select(3, f:rename(dir .. "/" .. string.rep("x", 5000), dir .. "/y")))
    end)

    it("chowns as root", function()
      if not server() then return end
      if not h.need(sys.ids().euid == 0, "root (chown)") then return end
      h.write(dir .. "/owned", "x")
      assert.is_true(f:chown(dir .. "/owned", 1234, 5678))
      local st = fs.stat(dir .. "/owned")
      assert.equal(1234, st.uid)
      assert.equal(5678, st.gid)
      assert.equal(1234, f:lstat(dir .. "/owned").uid)
    end)

    it("maps SFTP status codes to errno names", function()
      if not server() then return end
      local absent = dir .. "/absent"
      for _, call in ipairs({
        { "stat", absent }, { "lstat", absent }, { "readlink", absent }, { "rmdir", absent },
        { "unlink", absent }, { "rename", absent, dir .. "/x" }, { "chmod", absent, 420 },
        { "chown", absent, 0, 0 }, { "readdir", absent }, { "read", absent },
        { "mkdir", absent .. "/sub" },
      }) do
        local ok, msg, code = f[call[1]](f, table.unpack(call, 2))
        assert.is_nil(ok, call[1])
        assert.equal("ENOENT", code, call[1] .. ": " .. tostring(msg))
        assert.truthy(msg:find(absent, 1, true), msg)
      end
      h.write(dir .. "/big", string.rep("x", 100))
      local _, msg, code = f:read(dir .. "/big", 99)
      assert.equal("EFBIG", code, msg)
      assert.equal(100, #f:read(dir .. "/big", 100))
      _, msg, code = f:symlink("x", dir .. "/big")
      assert.equal("EEXIST", code, msg)
    end)
  end)
end)
