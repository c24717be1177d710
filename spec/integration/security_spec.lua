-- Issue 11: what a sandboxed script, a hostile file or a hostile client
-- must never reach.  Each spec tries the escape for real, against real
-- bwrap (and a real sshd and MCP server where they are the way in).
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")
local cap = require("support.cap")
local sshd = require("support.sshd")

local function run(args, opts)
  local argv = { "run" }
  table.move(args, 1, #args, 2, argv)
  return h.shannot(argv, opts)
end

-- One MCP tools/call over stdio -> the tool's text result.
local function mcp_call(home, tool, arguments, env)
  local lines = {
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
      '"capabilities":{},"clientInfo":{"name":"spec","version":"0"}}}',
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    json.encode({ jsonrpc = "2.0", id = 2, method = "tools/call", params = { name = tool, arguments = arguments } }),
  }
  local r = h.shannot({ "mcp" }, { home = home, env = env, input = table.concat(lines, "\n") .. "\n" })
  assert.equal(0, r.code, r.stderr)
  for line in r.stdout:gmatch("[^\n]+") do
    local msg = assert(json.decode(line))
    if msg.id == 2 then
      local out = {}
      for _, c in ipairs(msg.result.content) do out[#out + 1] = c.text end
      return table.concat(out, "\n"), msg.result
    end
  end
  error("no answer to the tool call: " .. r.stdout .. r.stderr)
end

describe("security (issue 11)", function()
  local home
  before_each(function() home = h.home() end)
  after_each(function()
    h.cleanup()
    cap.cleanup()
  end)

  describe("environment", function()
    local secret = "hunter2-" .. math.random(1e9)
    local env = { SHANNOT_SPEC_SECRET = secret }

    it("shows nothing of the host's as /proc/1/environ, capturing or not", function()
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--profile", prof, "--json", "--", "sh", "-c",
          "tr '\\0' '\\n' < /proc/1/environ; echo ---; env" }, { home = home, env = env })
        assert.equal(0, r.code, r.stderr)
        local out = json.decode(r.stdout).stdout
        assert.falsy(out:find(secret, 1, true), prof .. ": " .. out)
        assert.equal("---", out:match("^([^\n]*)"), prof .. ": pid 1 has an environment: " .. out)
      end
    end)

    it("leaks nothing through MCP run_command either", function()
      local out = mcp_call(home, "run_command", { argv = { "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; env" } }, env)
      assert.falsy(out:find(secret, 1, true), out)
      assert.truthy(out:find("PATH=", 1, true), out)
    end)

    it("shows nothing of the SSH session's on a remote host", function()
      if not h.need(sshd.available(), "sshd") then return end
      if not cap.ROOT then return pending("the spec sshd runs as root") end
      local server = sshd.start()
      finally(server.stop)
      assert(fs.mkdir_p(home .. "/.ssh"))
      local target = server.user .. "@127.0.0.1:" .. server.port
      local a = h.shannot({ "remote", "add", "box", target, "--key", server.key }, { home = home })
      assert.equal(0, a.code, a.stderr)
      local r = run({ "--target", "box", "--accept-new", "--profile", "readonly", "--json", "--", "sh", "-c",
        "tr '\\0' '\\n' < /proc/1/environ; echo ---; env" }, { home = home })
      assert.equal(0, r.code, r.stderr)
      local out = json.decode(r.stdout).stdout
      assert.equal("---", out:match("^([^\n]*)"), "pid 1 has an environment: " .. out)
      assert.falsy(out:find("SSH_CONNECTION", 1, true), out)
    end)
  end)

  describe("the deferred-command channel", function()
    local function sessions()
      local r = h.shannot({ "sessions", "--json" }, { home = home })
      return #json.decode(r.stdout)
    end

    it("records deferred calls when the session store lies under a capture path", function()
      local dir = h.tmpdir()
      local data_home = dir .. "/home"
      assert(fs.mkdir_p(data_home .. "/data"))
      local prof = cap.profile_file(dir, dir)
      local r = run({ "--profile", prof, "--json", "-c", "systemctl restart 'my unit'; /usr/bin/systemctl stop x" },
        { home = data_home })
      assert.equal(0, r.code, r.stderr)
      local id = json.decode(r.stdout).session.id
      local s = json.decode(h.shannot({ "show", id, "--json" }, { home = data_home }).stdout)
      local ops = {}
      for _, op in ipairs(s.operations) do ops[#ops + 1] = op.kind .. " " .. (op.path or table.concat(op.argv, " ")) end
      assert.same({ "exec systemctl restart my unit", "exec /usr/bin/systemctl stop x" }, ops)
    end)

    it("refuses a capture whose channel holds anything but a listed deferred command", function()
      local forged = {
        { [[printf 'shannot-deferred\0/\0rm\0002\0-rf\0/\0']], 'calls "rm", which is not a deferred command' },
        { [[printf 'shannot-deferred\0/\0/tmp/evil/systemctl\0001\0start\0']], "outside the sandbox's PATH" },
        { [[printf 'shannot-deferred\0relative\0systemctl\0000\0']], "has a relative working directory" },
        { [[printf 'garbage\0']], "has no header" },
        { [[printf 'shannot-deferred\0/\0systemctl\0009\0x\0']], "is incomplete" },
        { [[printf 'shannot-deferred\0/\0systemctl']], "an unterminated record" },
        { [[head -c 17000000 /dev/zero | tr '\0' x]], "larger than 16777216 bytes" },
      }
      for _, case in ipairs(forged) do
        local r = run({ "-c", "echo x > /etc/shannot-spec-forged; " .. case[1] .. " >> /run/shannot/deferred" },
          { home = home })
        assert.equal(3, r.code, case[1] .. "\n" .. r.stderr)
        assert.matches("shannot: the deferred%-command channel is malformed %(.-" .. case[2]:gsub("%p", "%%%0"),
          r.stderr)
        assert.equal(0, sessions(), "a session was kept")
      end
      assert.same({}, fs.readdir(home .. "/data/shannot/staging") or {})
    end)

    it("accepts a listed deferred command written directly, for review like any other", function()
      local r = run({ "--json", "-c",
        [[printf 'shannot-deferred\0/srv\0systemctl\0002\0restart\0web\0' >> /run/shannot/deferred]] },
        { home = home })
      assert.equal(0, r.code, r.stderr)
      local id = json.decode(r.stdout).session.id
      local op = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout).operations[1]
      assert.same({ "systemctl", "restart", "web" }, op.argv)
      assert.equal("review", op.decision)
    end)
  end)

  describe("mode changes at execute and rollback", function()
    local proc = require("shannot.proc")
    local N = 400

    local function swapper()
      local bin = h.tmpdir() .. "/swapper"
      local r = assert(proc.run({ "cc", "-std=c11", "-O2", "-o", bin, h.ROOT .. "/spec/support/c/swapper.c" }))
      assert.equal(0, r.code, r.stderr)
      return bin
    end

    -- One round: a fresh bed, execute and rollback each under attack.
    -- server: the spec sshd to capture and execute on, or nil (locally)
    local function round(bin, server, n)
      local N = n or N  -- luacheck: ignore 431
      local e = cap.env(nil, { short = true })  -- in /tmp: the attacker can reach it
      local target = server and "box"
      if server then
        assert(fs.mkdir_p(e.home .. "/.ssh"))
        local a = h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port,
          "--key", server.key }, { home = e.home })
        assert.equal(0, a.code, a.stderr)
      end
      local shared, victims = e.host .. "/shared", e.dir .. "/victims"
      assert(fs.mkdir_p(shared))
      assert(fs.mkdir_p(victims))
      assert(fs.chmod(e.dir, 493))
      for i = 1, N do
        h.write(victims .. "/v" .. i, "secret\n")
        assert(fs.chmod(victims .. "/v" .. i, 384))
        h.write(shared .. "/f" .. i, "mine\n")
        assert(fs.chmod(shared .. "/f" .. i, 420))
        assert(fs.symlink(victims .. "/v" .. i, shared .. "/l" .. i))
        assert(fs.lchown(shared .. "/l" .. i, 4242, 4242))
      end
      assert(fs.lchown(shared, 4242, 4242))  -- the attacker may rename in here
      local before = {}
      for i = 1, N do before[i] = fs.lstat(victims .. "/v" .. i).mode end
      local s
      if target then
        local r = h.shannot({ "run", "--target", target, "--accept-new", "--json", "--profile", e.profile, "-c",
          "cd " .. e.host .. " && chmod 640 shared/f*" }, { home = e.home })
        assert.equal(0, r.code, r.stderr)
        s = e:show(json.decode(r.stdout).session.id)
      else
        s = select(3, e:run("chmod 640 shared/f*"))
      end
      assert.equal(N, #s.operations)
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      for _, step in ipairs({ { { "execute", s.id }, "640" }, { { "rollback", s.id, "--force" }, "644" } }) do
        local attacker = assert(proc.spawn({ "setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--",
          bin, shared, tostring(N), step[2], "30" }, { stdout = "pipe", stderr = "pipe" }))
        local r = h.shannot(step[1], { home = e.home })
        attacker:kill("TERM")
        local swaps = attacker:communicate({ timeout = 5 }).stdout
        assert.truthy(tonumber(swaps:match("^(%d+) swaps")) > 100, "the attack did not run: " .. swaps)
        local after = {}
        for i = 1, N do after[i] = fs.lstat(victims .. "/v" .. i).mode end
        assert.same(before, after, step[1][1] .. " changed a symlink's target: " .. r.stdout .. r.stderr)
      end
      cap.cleanup()
    end

    it("never follow a name another user swaps for a symlink (renameat2 RENAME_EXCHANGE)", function()
      if not h.need(cap.ROOT, "root (an attacker of another uid)") then return end
      local bin = swapper()
      for _ = 1, 3 do round(bin) end
    end)

    it("never follow one on a remote host either (chmod through an O_PATH descriptor there)", function()
      if not h.need(cap.ROOT, "root (an attacker of another uid)") then return end
      if not h.need(sshd.available(), "sshd") then return end
      local bin = swapper()
      local server = sshd.start()
      finally(server.stop)
      round(bin, server, 60)
    end)
  end)

  describe("the checkpoint of a tree another user owns", function()
    local proc = require("shannot.proc")

    local function xchg()
      local bin = h.tmpdir() .. "/xchg"
      local r = assert(proc.run({ "cc", "-std=c11", "-O2", "-o", bin, h.ROOT .. "/spec/support/c/xchg.c" }))
      assert.equal(0, r.code, r.stderr)
      return bin
    end

    -- One round: another user swaps a directory of the tree being removed
    -- with a symlink to root's place while root executes, then root rolls
    -- back; server: on the spec sshd (a remote target) instead of locally.
    local function round(bin, n, server)
      local e = cap.env(nil, { short = true })
      assert(fs.chmod(e.dir, 493))
      local secret, tree = e.dir .. "/rootonly", e.host .. "/tree"
      assert(fs.mkdir_p(secret))
      h.write(secret .. "/secret.txt", "TOPSECRET-ROOT\n")
      assert(fs.chmod(secret, 448))
      assert(fs.mkdir_p(tree .. "/sub"))
      for i = 1, 50 do h.write(tree .. "/sub/f" .. i, "x\n") end
      assert(fs.symlink(secret, tree .. "/zlink"))
      assert(proc.run({ "chown", "-hR", "4242:4242", tree }))
      local s
      if server then
        assert(fs.mkdir_p(e.home .. "/.ssh"))
        assert.equal(0, h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port, "--key",
          server.key }, { home = e.home }).code)
        local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
          "rm -rf " .. tree }, { home = e.home })
        assert.equal(0, r.code, r.stderr)
        s = json.decode(r.stdout).session
      else
        s = select(3, e:run("rm -rf tree"))
      end
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      local attacker = assert(proc.spawn({ "setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--",
        bin, tree .. "/sub", tree .. "/zlink", "30" }, { stdout = "pipe", stderr = "pipe" }))
      local x = h.shannot({ "execute", s.id }, { home = e.home })
      attacker:kill("TERM")
      attacker:communicate({ timeout = 5 })
      local rb = h.shannot({ "rollback", s.id, "--force" }, { home = e.home })
      local said = x.stdout .. x.stderr .. rb.stdout .. rb.stderr
      assert.falsy(said:find("secret.txt", 1, true), "round " .. n .. ": the walk went into root's place: " .. said)
      assert.are_not.equal(70, x.code, said)
      assert.are_not.equal(70, rb.code, said)
      -- the secret's content (restored), or its name (in the checkpoint:
      -- its blobs are compressed)
      local found = assert(proc.run({ "grep", "-rlE", "TOPSECRET|secret\\.txt", e.host,
        e.home .. "/data/shannot/sessions" }))
      assert.equal("", found.stdout, "round " .. n .. ": root's secret reached " .. found.stdout)
      cap.cleanup()
    end

    it("never follows a directory swapped for a symlink into a root-only place (10 rounds)", function()
      if not h.need(cap.ROOT, "root (an attacker of another uid)") then return end
      local bin = xchg()
      for n = 1, 10 do round(bin, n) end
    end)

    it("nor on a remote host (10 rounds)", function()
      if not h.need(cap.ROOT, "root (an attacker of another uid)") then return end
      if not h.need(sshd.available(), "sshd") then return end
      local bin = xchg()
      local server = sshd.start()
      finally(server.stop)
      for n = 1, 10 do round(bin, n, server) end
    end)
  end)

  describe("a remote execute in a directory another user owns", function()
    it("never writes through a parent swapped for a symlink", function()
      if not h.need(cap.ROOT, "root (an attacker of another uid)") then return end
      if not h.need(sshd.available(), "sshd") then return end
      local proc = require("shannot.proc")
      local bin = h.tmpdir() .. "/xchg"
      local cc = assert(proc.run({ "cc", "-std=c11", "-O2", "-o", bin, h.ROOT .. "/spec/support/c/xchg.c" }))
      assert.equal(0, cc.code, cc.stderr)
      local server = sshd.start()
      finally(server.stop)
      for round = 1, 3 do
        local e = cap.env(nil, { short = true })
        assert(fs.chmod(e.dir, 493))
        assert(fs.mkdir_p(e.home .. "/.ssh"))
        assert.equal(0, h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port, "--key",
          server.key }, { home = e.home }).code)
        local outside, nbd, go = e.dir .. "/rootonly", e.host .. "/nbd", e.dir .. "/go"
        assert(fs.mkdir_p(outside))
        assert(fs.chmod(outside, 448))
        assert(fs.mkdir_p(nbd .. "/sub"))
        for i = 1, 40 do h.write(nbd .. "/sub/f" .. i, "old\n") end
        assert(fs.symlink(outside, nbd .. "/link"))
        assert(proc.run({ "chown", "-hR", "4242:4242", nbd }))
        local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
          "for i in $(seq 40); do echo new$i > " .. nbd .. "/sub/f$i; done" }, { home = e.home })
        assert.equal(0, r.code, r.stderr)
        local id = json.decode(r.stdout).session.id
        assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = e.home }).code)
        -- the attacker swaps once told the writes have begun (drift check and checkpoint are over)
        local attacker = assert(proc.spawn({ "setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--",
          bin, nbd .. "/sub", nbd .. "/link", "60", go }, { stdout = "pipe", stderr = "pipe" }))
        local x = h.spawn({ "execute", id }, { home = e.home })
        h.eventually(function() return fs.read_file(nbd .. "/sub/f1") == "new1\n" end, "the first write")
        h.write(go, "")
        local xr = x:communicate({ timeout = 120 })
        x:close()
        attacker:kill("TERM")
        local swaps = attacker:communicate({ timeout = 5 }).stdout
        assert.same({}, fs.readdir(outside), "round " .. round .. ": root's writes landed in " .. outside ..
          " (" .. swaps .. "): " .. xr.stdout .. xr.stderr)
        cap.cleanup()
      end
    end)
  end)

  describe("the system call filter", function()
    local proc = require("shannot.proc")

    -- Directories of the host every sandbox sees: the checkout's (or one
    -- under /var/lib), and as root also one under /var/lib (captured by
    -- the system profile)
    local function host_places()
      local places = { h.visible_dir() }
      if cap.ROOT then
        local var = h.track(assert(fs.mkdtemp("/var/lib/shannot-spec-")))
        places[#places + 1] = var
      end
      return places
    end
    local WANT = {
      add_key = "EPERM", keyctl = "EPERM", request_key = "EPERM", bpf = "EPERM", userfaultfd = "EPERM",
      perf_event_open = "EPERM", kexec_load = "EPERM", open_by_handle_at = "EPERM", unshare = "EPERM",
      setns = "EPERM", mount = "EPERM", io_uring_setup = "EPERM", socket_unix = "EACCES",
      socket_unix_high_bits = "EACCES", clone3 = "ENOSYS", clone_newuser = "EPERM", ptrace_attach = "EPERM",
      tiocsti = "EPERM", tiocsti_high_bits = "EPERM", socketpair_unix = "ok", socket_inet = "ok",
      socket_vsock = "EACCES",
    }

    local function probe_bin()
      local dir = h.visible_dir()
      if not h.need(dir, "a directory sandboxes see (root, with the checkout under /tmp)") then return nil end
      local bin = dir .. "/syscalls"
      local r = assert(proc.run({ "cc", "-std=c11", "-o", bin, h.ROOT .. "/spec/support/c/syscalls.c" }))
      assert.equal(0, r.code, r.stderr)
      return bin
    end

    local function parse(out)
      local got = {}
      for k, v in out:gmatch("([%w_]+)=(%a+)") do got[k] = v end
      return got
    end

    it("refuses Docker's list, AF_UNIX sockets, the keyring, io_uring and TIOCSTI in every profile", function()
      local bin = probe_bin()
      if not bin then return end
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--profile", prof, "--json", "--", bin }, { home = home })
        assert.equal(0, r.code, r.stderr)
        assert.same(WANT, parse(json.decode(r.stdout).stdout), prof)
      end
      local text = mcp_call(home, "run_command", { argv = { bin } })
      assert.same(WANT, parse((text:gsub("\\n", "\n"))))  -- the output, JSON-escaped in the text
    end)

    it("lets a profile's own filter add refusals, never lift the default ones", function()
      local bin = probe_bin()
      if not bin then return end
      local sc = require("shannot.core.seccomp")
      local dir = h.tmpdir()
      local allow_all = assert(sc.compile({}))
      local deny_inet = assert(sc.compile({ { "socket", errno = 1, args = { { 0, "masked_eq", 0xffffffff, 2 } } } }))
      h.write(dir .. "/allow.bpf", allow_all)
      h.write(dir .. "/inet.bpf", deny_inet)
      for name, want_inet in pairs({ allow = "ok", inet = "EPERM" }) do
        local prof = { name = name, seccomp_profile = dir .. "/" .. name .. ".bpf" }
        h.write(dir .. "/" .. name .. ".json", json.encode(prof))
        local r = run({ "--profile", dir .. "/" .. name .. ".json", "--json", "--", bin }, { home = home })
        assert.equal(0, r.code, r.stderr)
        local got = parse(json.decode(r.stdout).stdout)
        assert.equal("EACCES", got.socket_unix, name)
        assert.equal("EPERM", got.keyctl, name)
        assert.equal(want_inet, got.socket_inet, name)
      end
    end)

    it("refuses them on a remote host too", function()
      if not h.need(sshd.available(), "sshd") then return end
      if not cap.ROOT then return pending("the spec sshd runs as root") end
      local bin = probe_bin()
      if not bin then return end
      local server = sshd.start()
      finally(server.stop)
      local target = server.user .. "@127.0.0.1:" .. server.port
      assert.equal(0, h.shannot({ "remote", "add", "box", target, "--key", server.key }, { home = home }).code)
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--target", "box", "--accept-new", "--profile", prof, "--json", "--", bin }, { home = home })
        assert.equal(0, r.code, r.stderr)
        assert.same(WANT, parse(json.decode(r.stdout).stdout), prof)
      end
      -- and a plain remote sandbox keeps no capability, as locally
      local c = run({ "--target", "box", "--profile", "readonly", "--json", "--", "grep", "CapEff",
        "/proc/self/status" }, { home = home })
      assert.matches("CapEff:%s+0000000000000000", json.decode(c.stdout).stdout)
    end)

    it("lets no sandbox write into a host FIFO, wherever it lies (Landlock)", function()
      local places = host_places()
      if not h.need(#places > 0, "a directory sandboxes see") then return end
      local remote_home
      if cap.ROOT and sshd.available() then
        local server = sshd.start()
        finally(server.stop)
        remote_home = h.home()
        assert(fs.mkdir_p(remote_home .. "/.ssh"))
        assert.equal(0, h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port, "--key",
          server.key }, { home = remote_home }).code)
        local first = run({ "--target", "box", "--accept-new", "--profile", "readonly", "--", "true" },
          { home = remote_home })
        assert.equal(0, first.code, first.stderr)
      end
      local write = 'timeout 3 sh -c \'echo escaped > "$1"\' sh "$1" && echo WROTE'
      for _, dir in ipairs(places) do
        local fifo, got = dir .. "/fifo", dir .. "/received"
        local made = assert(proc.run({ "mkfifo", fifo }))
        assert.equal(0, made.code, made.stderr)
        local reader = assert(proc.spawn({ "sh", "-c", 'exec cat "$1" > "$2"', "sh", fifo, got },
          { stdout = "null", stderr = "null" }))
        for _, prof in ipairs({ "readonly", "system" }) do
          local r = run({ "--profile", prof, "--json", "--", "sh", "-c", write, "sh", fifo }, { home = home })
          local out = json.decode(r.stdout)
          assert.falsy(out.stdout:find("WROTE", 1, true), prof .. ": " .. out.stderr)
        end
        local text = mcp_call(home, "run_command", { argv = { "sh", "-c", write, "sh", fifo } })
        assert.falsy(text:find("WROTE", 1, true), text)
        if remote_home then  -- and over SSH, where shannot-enter is uploaded for the run
          for _, prof in ipairs({ "readonly", "system" }) do
            local r = run({ "--target", "box", "--profile", prof, "--json", "--", "sh", "-c", write, "sh", fifo },
              { home = remote_home })
            local out = json.decode(r.stdout)
            assert.falsy(out.stdout:find("WROTE", 1, true), "remote " .. prof .. ": " .. out.stderr)
            assert.falsy(r.stderr:find("no Landlock", 1, true), r.stderr)
          end
        end
        -- the FIFO is real: the host's own write reaches the reader
        assert.equal(0, assert(proc.run({ "sh", "-c", 'echo host > "$1"', "sh", fifo })).code)
        reader:communicate({ timeout = 5 })
        assert.equal("host\n", fs.read_file(got))
      end
    end)

    it("still lets the command reopen its own stdout and stderr", function()
      local log = h.tmpdir() .. "/log"
      local r = h.shannot({ "run", "--profile", "readonly", "--", "sh", "-c",
        'echo out > /dev/stdout; echo err > /dev/stderr; echo "$?"' }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("out\n0\n", r.stdout)
      assert.equal("err\n", r.stderr)
      local to_file = '"$1" run --profile readonly -- sh -c "echo to-file > /dev/stdout" > "$2"'
      local env = h.env({ HOME = home, XDG_DATA_HOME = home .. "/data", XDG_CONFIG_HOME = home .. "/config" })
      local f = assert(proc.run({ "sh", "-c", to_file, "sh", h.BIN, log }, { env = env }))
      assert.equal(0, f.code, f.stderr)
      assert.equal("to-file\n", fs.read_file(log))
    end)

    -- nc listening on each path (stream, or datagram with dgram = true),
    -- what each receives in PATH.got
    local function listen_on(socks, dgram)
      local listeners = {}
      for _, sock in ipairs(socks) do
        local flags = dgram and "-lkuU" or "-lkU"
        listeners[#listeners + 1] = assert(proc.spawn({ "sh", "-c", 'exec nc ' .. flags .. ' "$1" > "$1.got"',
          "sh", sock }, { stdout = "null", stderr = "null" }))
        h.eventually(function() return fs.lstat(sock) ~= nil end, "the listener's socket")
      end
      finally(function()
        for _, l in ipairs(listeners) do l:kill("TERM"); l:communicate({ timeout = 5 }) end
      end)
    end

    local function sockets_bin(dir)
      local bin = dir .. "/sockets"
      local r = assert(proc.run({ "cc", "-std=c11", "-pthread", "-o", bin, h.ROOT .. "/spec/support/c/sockets.c" }))
      assert.equal(0, r.code, r.stderr)
      return bin
    end

    it("reaches exactly the host sockets a profile's unix_sockets lists, no other", function()
      if not h.need(fs.which("nc", os.getenv("PATH")), "nc (netcat-openbsd)") then return end
      local dir = h.visible_dir()
      if not h.need(dir, "a directory sandboxes see") then return end
      local ok_sock, no_sock = dir .. "/ok.sock", dir .. "/no.sock"
      listen_on({ ok_sock, no_sock })
      local bin = sockets_bin(dir)
      h.write(dir .. "/p.json", json.encode({ name = "sockets", unix_sockets = { ok_sock } }))
      local code = 'echo allowed | nc -N -U "$1"; echo "ok=$?"; echo other | nc -N -U "$2"; echo "no=$?"; ' ..
        'nc -N -U -u "$2" < /dev/null; echo "dgram=$?"'
      local r = run({ "--profile", dir .. "/p.json", "--", "sh", "-c", code, "sh", ok_sock, no_sock }, { home = home })
      assert.matches("ok=0\n", r.stdout)
      assert.matches("no=1\n", r.stdout)
      assert.matches("Permission denied", r.stderr)
      h.eventually(function() return fs.read_file(ok_sock .. ".got") == "allowed\n" end, "the allowed line")
      -- The ways round it: from a thread, swapping the descriptor under the
      -- check, datagrams (a socket or a socket pair sending to the path)
      code = '"$1" conn "$2"; "$1" tconn "$2"; "$1" tconn "$3"; "$1" swap "$3" 3000; ' ..
        '"$1" dgram "$3"; "$1" pairsend "$3"'
      r = run({ "--profile", dir .. "/p.json", "--", "sh", "-c", code, "sh", bin, ok_sock, no_sock }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("conn=ok\ntconn=ok\ntconn=EACCES\nswap=refused\ndgram=EACCES\npairsend=EACCES\n", r.stdout)
      h.eventually(function() return fs.read_file(ok_sock .. ".got") == "allowed\nconn\ntconn\n" end, "the lines")
      assert.equal("", fs.read_file(no_sock .. ".got"))
      -- a remote sandbox has no shannot beside it to answer for it: refused
      local remote = run({ "--target", "root@127.0.0.1:1", "--profile", dir .. "/p.json", "--", "true" },
        { home = home })
      assert.equal(2, remote.code, remote.stderr)
      assert.matches("unix_sockets needs shannot beside the sandbox", remote.stderr)
      -- nor with the host's network, where shannot would connect for it
      h.write(dir .. "/net.json", json.encode({ name = "net", unix_sockets = { ok_sock }, network_isolation = false }))
      local net = run({ "--profile", dir .. "/net.json", "--", "true" }, { home = home })
      assert.equal(2, net.code, net.stderr)
      assert.matches('"unix_sockets" needs "network_isolation": true', net.stderr)
    end)

    it("allows no socket where the sandbox could put another in its place (a writable bind)", function()
      -- a symlink (red team W11) or a socket renamed onto the allowed name
      -- (third red team) in a writable directory would be any socket
      local dir = h.visible_dir()
      if not h.need(dir, "a directory sandboxes see") then return end
      local rw = dir .. "/rw"
      assert(fs.mkdir_p(rw))
      h.write(dir .. "/rw.json", json.encode({ name = "rw", unix_sockets = { rw .. "/sub/app.sock" },
        binds = { { source = "/", target = "/" }, { source = rw, target = rw, read_only = false } } }))
      local r = run({ "--profile", dir .. "/rw.json", "--", "true" }, { home = home })
      assert.equal(2, r.code, r.stderr)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("unix_sockets: .-/rw/sub/app%.sock lies in the writable bind .-/rw, where the sandbox", r.stderr)
    end)

    it("sends no datagram to a host socket, not even from a socket pair", function()
      if not h.need(fs.which("nc", os.getenv("PATH")), "nc (netcat-openbsd)") then return end
      local dir = h.visible_dir()
      if not h.need(dir, "a directory sandboxes see") then return end
      local sock = dir .. "/d.sock"
      listen_on({ sock }, true)
      local bin = sockets_bin(dir)
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--profile", prof, "--", "sh", "-c", '"$1" pairsend "$2"; "$1" dgram "$2"', "sh", bin, sock },
          { home = home })
        assert.equal("pairsend=EACCES\ndgram=EACCES\n", r.stdout, prof .. ": " .. r.stderr)
      end
      assert.equal(0, assert(proc.run({ "sh", "-c", 'echo host | nc -N -u -U -w1 "$1"', "sh", sock })).code)
      h.eventually(function() return fs.read_file(sock .. ".got") == "host\n" end, "the host's own datagram")
    end)

    it("lets no sandbox reach a host unix socket, wherever it lies", function()
      if not h.need(fs.which("nc", os.getenv("PATH")), "nc (netcat-openbsd)") then return end
      local places = host_places()
      for _, dir in ipairs(places) do
        local sock, got = dir .. "/s.sock", dir .. "/received"
        local listener = assert(proc.spawn({ "sh", "-c", 'exec nc -lkU "$1" > "$2"', "sh", sock, got },
          { stdout = "null", stderr = "null" }))
        h.eventually(function() return fs.lstat(sock) ~= nil end, "the listener's socket")
        for _, prof in ipairs({ "readonly", "system" }) do
          local r = run({ "--profile", prof, "--", "sh", "-c", 'echo escaped | nc -N -U "$1"', "sh", sock },
            { home = home })
          assert.equal(1, r.code, prof .. ": " .. r.stderr)
        end
        mcp_call(home, "run_command", { argv = { "sh", "-c", 'echo escaped | nc -N -U "$1"', "sh", sock } })
        -- the host itself can connect: the socket is real
        assert.equal(0, assert(proc.run({ "sh", "-c", 'echo host | nc -N -U "$1"', "sh", sock })).code)
        h.eventually(function() return fs.read_file(got) == "host\n" end, "the host's own line")
        listener:kill("TERM")
        listener:communicate({ timeout = 5 })
        assert.equal("host\n", fs.read_file(got))
      end
    end)
  end)

  describe("the review", function()
    it("shows a write's owner and mode change, and rates handing a root file to another uid as danger", function()
      local e = cap.env()
      e:sh('echo secret > "$1/rootonly"; chmod 600 "$1/rootonly"')
      local _, _, s = e:run("echo changed > rootonly; chown 65534:65534 rootonly; chmod 644 rootonly")
      local op = cap.op_at(s, "/rootonly")
      assert.equal("write", op.kind)
      assert.equal("danger", op.danger)
      assert.matches("hands a root%-owned file to uid 65534", op.reason)
      local shown = e:show(s.id, {})
      assert.matches("modified, 7 B %-> 8 B, 0644, mode 0600 %-> 0644, owner 0:0 %-> 65534:65534", shown)
    end)

    it("denies a wrapped dangerous command and rates a directory replaced by a file as danger", function()
      local e = cap.env({ defer = { "timeout", "busybox" } })
      e:sh('mkdir "$1/d" "$1/e"; echo k > "$1/d/k"; echo k > "$1/e/k"')
      local _, _, s = e:run("timeout 5 rm -rf /; busybox rm -rf --no-pres /; rm -r d e && echo x > d && ln -s d e")
      local by = {}
      for _, op in ipairs(s.operations) do
        by[op.kind == "exec" and op.argv[1] or op.path:sub(#e.host + 2)] = op
      end
      assert.equal("deny", by.timeout.decision)
      assert.matches('always_deny "rm %-r /"', by.timeout.reason)
      assert.equal("deny", by.busybox.decision)
      assert.equal("danger", by.d.danger)
      assert.equal("danger", by.e.danger)
      assert.matches("replaces a whole directory", by.e.reason)
    end)

    it("denies a deny-listed command given a path relative to where it was recorded", function()
      local e = cap.env({ defer = { "rm", "strace" } })
      e:sh('mkdir "$1/d1" "$1/d2"')
      assert(fs.mkdir_p(e.home .. "/config/shannot"))
      h.write(e.home .. "/config/shannot/config.toml", '[profile]\nalways_deny = ["rm -r ' .. e.host .. '/d*"]\n' ..
        'auto_approve = ["true"]\n')
      local _, _, s = e:run("cd " .. e.host .. " && rm -rf d1; strace -o '|rm -rf " .. e.host .. "/d2' true")
      assert.equal(2, #s.operations)
      for _, op in ipairs(s.operations) do
        assert.equal("deny", op.decision, table.concat(op.argv, " ") .. ": " .. tostring(op.reason))
      end
      assert.equal(0, h.shannot({ "approve", s.id, "--yes", "--execute" }, { home = e.home }).code)
      assert.truthy(fs.lstat(e.host .. "/d1"))
      assert.truthy(fs.lstat(e.host .. "/d2"))
    end)

    it("denies a deny-listed command run through runuser, chrt, setpriv, flock -c or script -c", function()
      local wrappers = { "runuser", "chrt", "setpriv", "flock", "script", "taskset" }
      local e = cap.env({ defer = wrappers })
      local victim = e.host .. "/d"
      e:sh('mkdir "$1/d"; echo k > "$1/d/k"')
      assert(fs.mkdir_p(e.home .. "/config/shannot"))
      h.write(e.home .. "/config/shannot/config.toml", '[profile]\nalways_deny = ["rm -r ' .. e.host .. '/d*"]\n')
      local rm = "rm -rf " .. victim
      local _, _, s = e:run("runuser -u root -- " .. rm .. "; chrt 1 " .. rm .. "; setpriv --reuid=0 " .. rm ..
        "; flock /tmp/l -c '" .. rm .. "'; script -qc '" .. rm .. "' /dev/null; taskset -c 0 " .. rm ..
        "; touch " .. e.host .. "/marker")
      local denied = {}
      for _, op in ipairs(s.operations) do
        if op.kind == "exec" then
          assert.equal("deny", op.decision, table.concat(op.argv, " ") .. ": " .. tostring(op.reason))
          denied[#denied + 1] = op.argv[1]
        end
      end
      assert.same(wrappers, denied)
      local r = h.shannot({ "approve", s.id, "--yes", "--execute" }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("k\n", fs.read_file(victim .. "/k"))  -- nothing ran
      assert.truthy(fs.lstat(e.host .. "/marker"))  -- the rest did
    end)
  end)

  describe("what shannot prints after a script's output", function()
    it("cannot be hidden or disguised by the script's escape sequences", function()
      local tmux = require("support.tmux")
      if not tmux.available() then return end
      local e = cap.env()
      local code = "H=" .. e.host .. "; printf 'partial\\033[8m\\033[30;40m\\033[?25l'; echo x > $H/f"
      local t = tmux.start(e.home, { "run", "--profile", e.profile, "-c", code })
      finally(function() t:kill() end)
      local screen = t:wait("shannot-exit=0")
      assert.matches("partial\nshannot: captured 1 operation", screen)  -- on a line of its own
      local raw = t:run({ "capture-pane", "-e", "-p", "-t", "main" })
      local before = raw:sub(1, raw:find("shannot: captured", 1, true) - 1)
      local last_hide = select(2, before:find(".*\27%[[%d;]*8m")) or 0
      local last_reset = select(2, before:find(".*\27%[0?m")) or -1
      assert.truthy(last_hide == 0 or last_reset > last_hide, "the summary is concealed: " .. raw:sub(1, 300))
      assert.equal("on", t:run({ "display", "-p", "-t", "main", "#{?cursor_flag,on,off}" }):gsub("\n", ""))
    end)

    it("sets no clipboard or title on the reviewer's terminal while passing the output through", function()
      local e = cap.env()
      local r = h.shannot({ "run", "--profile", e.profile, "-c",
        "printf 'a\\033]52;c;ZWNobyBwd25lZA==\\007b\\033]0;title\\033\\\\c\\033[31mred\\033[0m\\n'; " ..
        "echo x > " .. e.host .. "/f" }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("abc\27[31mred\27[0m\n", r.stdout)
      local s = json.decode(h.shannot({ "sessions", "--json" }, { home = e.home }).stdout)[1]
      local kept = fs.read_file(e.home .. "/data/shannot/sessions/" .. s.id .. "/stdout")
      assert.matches("\27%]52;c;", kept)  -- the session keeps the output as it was
    end)

    it("sets no clipboard or title either from a run whose profile captures nothing", function()
      local own = h.tmpdir()
      local r = h.shannot({ "run", "--profile", "readonly", "-c",
        "printf 'a\\033]52;c;ZWNobyBwd25lZA==\\007b\\033]0;title\\033\\\\c\\n'; " ..
        -- C1 openers, UTF-8 encoded and raw (third red team); a quote mark's own 0x9d byte stays
        "printf 'd\\302\\2350;t\\302\\234e\\342\\200\\235f\\235x\\007g\\n'" }, { home = own })
      assert.equal(0, r.code, r.stderr)
      assert.equal("abc\nde\u{201d}fg\n", r.stdout)
    end)

    it("keeps a file name's newline and escapes out of show --diff's lines", function()
      local e = cap.env()
      local _, _, s = e:run("printf 'a\\n' > \"$(printf 'x\\n+++ b-etc-shadow\\033[2J')\"")
      local out = e:show(s.id, { "--diff" })
      assert.falsy(out:find("\n+++ b-etc-shadow", 1, true), out)
      assert.falsy(out:find("\27", 1, true), out)
      assert.truthy(out:find("x\\n+++ b-etc-shadow\\x1b[2J", 1, true), out)
    end)

    it("shows blanks that pass for a space and stacked marks in a file name escaped", function()
      local e = cap.env()
      local _, _, s = e:run("echo x > \"$(printf 'braille\\342\\240\\200x nbsp\\302\\240x mark\\314\\201x')\"")
      local out = e:show(s.id, {})
      assert.truthy(out:find("braille\\u{2800}x nbsp\\u{a0}x mark\\u{301}x", 1, true), out)
    end)

    it("shows a text with a stray NUL as text, a binary as hex, a huge file's first and last lines", function()
      local e = cap.env()
      local _, _, s = e:run("printf 'hello\\000world\\n' > nul.txt; head -c 3000 /bin/sh > bin; " ..
        "seq 1 1200000 > huge.txt; cp /bin/true " .. e.host .. "/tool")
      local out = e:show(s.id, { "--diff" })
      assert.truthy(out:find("+hello\\x00world", 1, true), out)
      assert.matches("00000000  7f 45 4c 46 ", out)
      assert.matches("new file too large to diff, [%d.]+ MiB; its first and last lines:%)\n1\n2\n3\n", out)
      assert.matches("\n1199999\n1200000\n", out)
      local tool = cap.op_at(s, "/tool")
      assert.equal("binary", tool.new.content)
      assert.equal("danger", tool.danger)
      assert.matches("cannot be reviewed as text %(binary%) and it is executable", tool.reason)
      assert.equal("text", cap.op_at(s, "/nul.txt").new.content)
    end)
  end)

  describe("resources", function()
    local function limited(text)
      h.write(home .. "/config/shannot/config.toml", "[limits]\n" .. text .. "\n")
    end
    local FORKS = "for i in $(seq 300); do sleep 5 & done; echo forked $(jobs -p | wc -l); kill $(jobs -p)"

    it("bound the processes and the memory of every sandbox", function()
      limited('processes = 40\nmemory = "64M"')
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--profile", prof, "--", "sh", "-c", FORKS }, { home = home })
        assert.matches("Cannot fork", r.stderr, prof)
        assert.matches("shannot: the sandbox ran into its processes limit %(%[limits%] processes = 40%)", r.stderr)
        local m = run({ "--profile", prof, "--", "sh", "-c", "head -c 300000000 /dev/zero | sort > /dev/null" },
          { home = home })
        assert.are_not.equal(0, m.code, prof)
        assert.matches("its memory limit %(%[limits%] memory = 64%.0 MiB%)", m.stderr, prof)
      end
      -- and as another user than root, where no cgroup is ours: rlimits
      if cap.ROOT then
        local theirs = h.home()
        h.write(theirs .. "/config/shannot/config.toml", "[limits]\nprocesses = 40\n")
        assert(require("shannot.proc").run({ "chown", "-R", "nobody:nogroup", theirs }))
        assert(fs.chmod(theirs:match("^(.*)/[^/]+$"), 493))
        local u = run({ "--profile", "readonly", "--", "sh", "-c", FORKS }, { home = theirs,
          prefix = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--" } })
        assert.matches("Cannot fork", u.stderr)
      end
    end)

    it("refuse a capture whose files are larger than it may keep, however sparse", function()
      limited('staging = "20M"')
      local e = cap.env()
      local r = h.shannot({ "run", "--profile", e.profile, "-c", "truncate -s 1T " .. e.host .. "/sparse" },
        { home = home, timeout = 60 })
      assert.equal(3, r.code, r.stderr)
      assert.matches("the run wrote more than 20971520 bytes of files %(.-sparse is 1099511627776 bytes%)", r.stderr)
      assert.same({}, fs.readdir(home .. "/data/shannot/staging") or {})
    end)

    it("stop a capture that writes more than it may into staging, and keep nothing", function()
      limited('staging = "20M"')
      local e = cap.env()
      local r = h.shannot({ "run", "--profile", e.profile, "-c",
        "head -c 100000000 /dev/zero > " .. e.host .. "/big; echo done" }, { home = home })
      assert.equal(3, r.code, r.stderr)
      assert.matches("shannot: the run wrote more than 20%.0 MiB into staging", r.stderr)
      assert.equal("[]\n", h.shannot({ "sessions", "--json" }, { home = home }).stdout)
      assert.same({}, fs.readdir(home .. "/data/shannot/staging") or {})
      assert.is_nil(fs.lstat(e.host .. "/big"))
    end)

    it("let a project file lower a limit, never raise it", function()
      limited("processes = 100")
      local dir = h.tmpdir()
      assert(fs.mkdir_p(dir .. "/.shannot"))
      h.write(dir .. "/.shannot/config.toml", '[limits]\nprocesses = 5000\nmemory = "1G"\n')
      local doc = json.decode(h.shannot({ "config", "show", "--json" }, { home = home, cwd = dir }).stdout)
      assert.equal(100, doc.config.limits.processes)
      assert.equal(1024 * 1024 * 1024, doc.config.limits.memory)
    end)

    it("run at most [limits] mcp_sandboxes sandboxes for MCP at once", function()
      limited("mcp_sandboxes = 1")
      local call = function(n)
        return json.encode({ jsonrpc = "2.0", id = n, method = "tools/call",
          params = { name = "run_command", arguments = { argv = { "sleep", "2" } } } })
      end
      local lines = {
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
          '"capabilities":{},"clientInfo":{"name":"spec","version":"0"}}}', call(2), call(3),
      }
      local r = h.shannot({ "mcp" }, { home = home, input = table.concat(lines, "\n") .. "\n" })
      local answers = {}
      for line in r.stdout:gmatch("[^\n]+") do
        local msg = json.decode(line)
        answers[msg.id] = msg
      end
      assert.is_not_true(answers[2].result.isError)
      assert.is_true(answers[3].result.isError)
      assert.matches("1 sandbox is running already", answers[3].result.content[1].text)
    end)

    -- cd step by step: the full path grows longer than PATH_MAX
    local DEEP = "cd \"$H\"; i=0; while [ $i -lt 1200 ]; do mkdir abcdefgh && cd -P abcdefgh || exit 9; " ..
      "i=$((i+1)); done; echo x > f"

    it("removes a staging tree deeper than PATH_MAX, at the end of a run and by prune", function()
      local e = cap.env()
      local r = h.shannot({ "run", "--profile", e.profile, "-c", "H=" .. e.host .. "; " .. DEEP }, { home = e.home })
      assert.equal(3, r.code, r.stderr)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("the run made a path longer than 4095 bytes %(.-%.%.%..-%): it can be neither", r.stderr)
      assert.equal("", table.concat(fs.readdir(e.home .. "/data/shannot/staging") or {}, " "), r.stderr)
      -- a killed run's staging, left behind: prune removes it whatever its depth
      local stale = e.home .. "/data/shannot/staging/20260101-000000-deadbeef"
      assert(fs.mkdir_p(stale .. "/upper/1"))
      h.write(stale .. "/pid", "999999999\n")
      local mk = assert(require("shannot.proc").run({ "sh", "-c", "H=$1; " .. DEEP, "sh", stale .. "/upper/1" }))
      assert.equal(0, mk.code, mk.stderr)
      local p = h.shannot({ "prune" }, { home = e.home })
      assert.equal(0, p.code, p.stderr)
      assert.is_nil(fs.lstat(stale))
    end)
  end)
end)
