-- `shannot run` against the real binary and real bubblewrap: isolation,
-- output and exit codes, timeouts, bounded memory, and every error path.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")

local function run(args, opts)
  local argv = { "run" }
  table.move(args, 1, #args, 2, argv)
  return h.shannot(argv, opts)
end

local function sh(code, opts)
  local profile = opts and opts.profile
  if profile then return run({ "--profile", profile, "--", "sh", "-c", code }, opts) end
  return run({ "--", "sh", "-c", code }, opts)
end

local function json_run(args, opts)
  local argv = { "--json" }
  table.move(args, 1, #args, 2, argv)
  local r = run(argv, opts)
  return r, json.decode(r.stdout)
end

local function hash_tree(path)
  local r = assert(proc.run({ "sh", "-c",
    "find " .. path .. " -xdev -maxdepth 2 -printf '%p %s %T@ %m\\n' 2>/dev/null | sort | md5sum" }))
  return r.stdout
end

local function free_port()
  return math.random(20000, 60000)
end

-- Starts `nc -l` on 127.0.0.1 outside the sandbox; returns the process.
local function listen(port)
  local p = assert(proc.spawn({ "nc", "-l", "127.0.0.1", tostring(port) },
    { stdin = "null", stdout = "null", stderr = "null" }))
  for _ = 1, 50 do
    local r = proc.run({ "sh", "-c", "ss -ltn 2>/dev/null | grep -q ':" .. port .. " ' || " ..
      "grep -qi ':" .. string.format("%04X", port) .. " 00000000:0000 0A' /proc/net/tcp" })
    if r and r.code == 0 then return p end
    proc.run({ "sleep", "0.05" })
  end
  return p
end

local function connect_script(port)
  return "exec 3<>/dev/tcp/127.0.0.1/" .. port .. " && echo connected"
end

describe("shannot run", function()
  local home
  before_each(function() home = h.home() end)
  after_each(h.cleanup)

  describe("output and exit codes", function()
    it("streams output and succeeds with the command", function()
      local r = sh("echo out; echo err >&2", { home = home })
      assert.equal(0, r.code)
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
    end)

    it("exits 1 and shows the code when the command fails", function()
      local r = sh("echo partial; exit 3", { home = home })
      assert.equal(1, r.code)
      assert.equal("partial\n", r.stdout)
      assert.equal("shannot: command sh exited with code 3\n", r.stderr)
    end)

    it("replaces itself with bwrap for a plain sandbox with --exec, and only then", function()
      local marker = "sleep 42" .. math.random(100, 999) .. ".5"
      local p = h.spawn({ "run", "--exec", "--profile", "readonly", "--", "sh", "-c", marker }, { home = home })
      local exe
      h.eventually(function()
        exe = fs.readlink("/proc/" .. p:pid() .. "/exe")
        return exe and exe:find("bwrap", 1, true) and #h.processes(marker) > 0
      end, "bwrap in shannot's place")
      assert.matches("bwrap$", exe)
      -- the limits hold as in a waited run: a cgroup of the run's own (as root)
      local cgroup = fs.read_file("/proc/" .. p:pid() .. "/cgroup") or ""
      if require("shannot.sandbox.limits").kind() ~= "rlimits" then
        assert.matches("/shannot/run%-" .. p:pid() .. "%-", cgroup)
      end
      p:close()
      h.eventually(function() return #h.processes(marker) == 0 end, "the sandbox gone with bwrap")
      -- without --exec shannot stays: it filters the output (issue 11)
      local r = run({ "--profile", "readonly", "--", "printf", "a\\033]0;title\\007b\\n" }, { home = home })
      assert.equal("ab\n", r.stdout)
      r = run({ "--exec", "--profile", "readonly", "--", "printf", "a\\033]0;title\\007b\\n" }, { home = home })
      assert.equal("a\27]0;title\7b\n", r.stdout)
      -- nor for what needs shannot after the command
      r = run({ "--exec", "--json", "--profile", "readonly", "--", "true" }, { home = home })
      assert.equal(2, r.code)
      assert.matches("%-%-exec is for a plain sandbox", r.stderr)
    end)

    it("ends as a waited run does when bwrap replaces it: codes, signals, messages", function()
      -- under make asan the sandbox's first program is the instrumented
      -- shannot, whose leak check cannot stop the world inside the
      -- system call filter (it exits 1, "LeakSanitizer has encountered a
      -- fatal error"): the comparison needs an uninstrumented build
      if os.getenv("ASAN_OPTIONS") then return pending("LeakSanitizer cannot run inside the sandbox") end
      -- --timeout keeps shannot as bwrap's parent; without it, bwrap
      -- replaces shannot and the sandbox's first program reports the end
      local cases = { "true", "echo out; echo err >&2", "exit 3", "exit 255", "kill -TERM $$", "kill -KILL $$",
        "exec /nonexistent/command" }
      for _, code in ipairs(cases) do
        local waited = run({ "--profile", "readonly", "--timeout", "60", "--", "sh", "-c", code }, { home = home })
        local replaced = run({ "--exec", "--profile", "readonly", "--", "sh", "-c", code }, { home = home })
        assert.equal(waited.code, replaced.code, code)
        assert.equal(waited.stdout, replaced.stdout, code)
        assert.equal(waited.stderr, replaced.stderr, code)
      end
      local r = run({ "--exec", "--profile", "readonly", "--", "sh", "-c", "kill -TERM $$" }, { home = home })
      assert.equal(1, r.code)
      assert.equal("shannot: command sh exited with code 143\n", r.stderr)
      r = run({ "--exec", "--profile", "readonly", "--", "no-such-command-here" }, { home = home })
      assert.equal(1, r.code)
      assert.equal("shannot: cannot run no-such-command-here: No such file or directory\n" ..
        "shannot: command no-such-command-here exited with code 127\n", r.stderr)
    end)

    it("--exit-code: 0 nothing captured, 10 captured, 1 failed with or without changes", function()
      local file = "/etc/shannot-spec-exit-code-" .. tostring(require("shannot.core.sys").ids().pid)
      assert.equal(0, run({ "--exit-code", "--", "true" }, { home = home }).code)
      local r = run({ "--exit-code", "--", "sh", "-c", "echo x > " .. file }, { home = home })
      assert.equal(10, r.code, r.stderr)
      assert.is_nil(fs.lstat(file), "the capture wrote the host")
      r = run({ "--exit-code", "--json", "--", "sh", "-c", "echo x > " .. file }, { home = home })
      assert.equal(10, r.code, r.stderr)
      assert.is_table(json.decode(r.stdout).session)
      assert.equal(1, run({ "--exit-code", "--", "sh", "-c", "echo x > " .. file .. "; exit 3" }, { home = home }).code)
      assert.equal(1, run({ "--exit-code", "--", "false" }, { home = home }).code)
      -- without the flag a capture is plain success
      assert.equal(0, run({ "--", "sh", "-c", "echo x > " .. file }, { home = home }).code)
      -- errors keep their codes
      assert.equal(2, run({ "--exit-code", "--profile", "gone", "--", "true" }, { home = home }).code)
    end)

    it("--json prints one document with everything", function()
      local r, doc = json_run({ "--", "sh", "-c", "echo out; printf 'e\\377' >&2; exit 5" }, { home = home })
      assert.equal(1, r.code)
      assert.equal("", r.stderr)
      assert.same({ "sh", "-c", "echo out; printf 'e\\377' >&2; exit 5" }, doc.command)
      assert.equal(5, doc.exit_code)
      assert.equal("out\n", doc.stdout)
      assert.equal("e\239\191\189", doc.stderr)  -- invalid UTF-8 made valid
      assert.is_false(doc.stdout_truncated)
      assert.is_false(doc.timed_out)
      assert.equal("system", doc.profile)
      assert.is_number(doc.duration)
      assert.equal(json.null, doc.signal)
    end)

    it("--json bounds what it keeps with --max-output", function()
      local _, doc = json_run({ "--max-output", "1K", "--", "seq", "1", "100000" }, { home = home })
      assert.equal(1024, #doc.stdout)
      assert.is_true(doc.stdout_truncated)
      assert.equal(512, doc.stdout_dropped_at)
      assert.equal("100000\n", doc.stdout:sub(-7))
      assert.is_true(doc.stdout_dropped_bytes > 500000)
    end)

    it("passes standard input through", function()
      local r = run({ "--", "cat" }, { home = home, input = "from stdin\n" })
      assert.equal("from stdin\n", r.stdout)
    end)

    it("works from any directory, with no Lua files around", function()
      local r = h.shannot({ "run", "--", "pwd" }, { home = home, cwd = "/usr/share" })
      assert.equal("/usr/share\n", r.stdout)
    end)
  end)

  describe("isolation", function()
    it("cannot write /usr, /etc or $HOME with a profile that captures nothing", function()
      -- shannot's own cache of the compiled system call filter (the data
      -- directory, in $HOME here) is made by the first run
      assert.equal(0, run({ "--profile", "readonly", "--", "true" }, { home = home, env = { HOME = home } }).code)
      local before = hash_tree("/etc") .. hash_tree("/usr/bin") .. hash_tree(home)
      local r = sh([[
        for f in /usr/shannot-probe /etc/shannot-probe "$HOME/shannot-probe"; do
          if echo x > "$f"; then echo "WROTE $f"; fi
        done
        rm -f /etc/hostname && echo REMOVED
        chmod 777 /etc/passwd && echo CHMODDED
        exit 0]], { home = home, env = { HOME = home }, profile = "readonly" })
      assert.equal(0, r.code)
      assert.equal("", r.stdout)
      assert.matches("Read%-only file system", r.stderr)
      assert.equal(before, hash_tree("/etc") .. hash_tree("/usr/bin") .. hash_tree(home))
      assert.is_false(fs.exists("/etc/shannot-probe"))
      assert.is_false(fs.exists(home .. "/shannot-probe"))
    end)

    it("cannot write kernel settings through /proc, even as root", function()
      local before = fs.read_file("/proc/sys/kernel/hostname")
      local r = sh("echo shannot-was-here > /proc/sys/kernel/hostname && echo WROTE; " ..
        "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ; exit 0", { home = home })
      assert.equal("", r.stdout)
      assert.equal(before, fs.read_file("/proc/sys/kernel/hostname"))
    end)

    it("leaves the command no capabilities and no new privileges", function()
      local r = sh("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status",
        { home = home, profile = "readonly" })
      assert.matches("CapEff:%s+0+\n", r.stdout)
      assert.matches("CapPrm:%s+0+\n", r.stdout)
      assert.matches("NoNewPrivs:%s+1", r.stdout)
      local m = sh("mount -t tmpfs none /mnt && echo MOUNTED; mknod /tmp/d b 8 0 && echo MKNOD; exit 0",
        { home = home, profile = "readonly" })
      assert.equal("", m.stdout)
    end)

    it("works for an unprivileged user, who can change nothing either", function()
      local sys = require("shannot.core.sys")
      local prefix, user_home = {}, home
      if sys.ids().uid == 0 then
        if not h.need(fs.which("setpriv", os.getenv("PATH")), "setpriv (util-linux)") then return end
        prefix = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--" }
        -- nobody must reach the binary and a home of its own
        assert(fs.chmod(h.ROOT .. "/build/spec-tmp", 457))  -- 0711
        user_home = h.tmpdir()
        assert(fs.chmod(user_home, 457))
        local ids = assert(proc.run({ "id", "-u", "nobody" }))
        assert(fs.lchown(user_home, tonumber(ids.stdout), tonumber(ids.stdout)))
      end
      local r = sh("id -u; echo x > /etc/shannot-nobody; echo x > \"$HOME\"/f; echo done",
        { home = user_home, prefix = prefix })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^%d+\ndone\n$", r.stdout)
      assert.not_equal("0\n", r.stdout:match("^%d+\n"))
      assert.matches("Read%-only file system", r.stderr)
      assert.is_nil(fs.lstat("/etc/shannot-nobody"))
      assert.is_nil(fs.lstat(user_home .. "/f"))
      assert.matches("only", r.stderr)
    end)

    it("has fresh /dev, /proc and /tmp, and an empty /run", function()
      local r = sh([[
        ls /run | grep -v '^shannot$' | wc -l
        echo $(ls /dev)
        ps -e -o pid= | wc -l
        for p in /run/dbus /run/systemd /run/docker.sock /var/run/docker.sock /var/run/dbus/system_bus_socket; do
          test -e "$p" && echo "PRESENT $p"
        done
        exit 0]], { home = home })
      local lines = {}
      for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal("0", lines[1])
      assert.falsy(lines[2]:find("vda", 1, true) or lines[2]:find("sda", 1, true))
      assert.truthy(tonumber(lines[3]) <= 4, "sees " .. lines[3] .. " processes")
      assert.equal(3, #lines, r.stdout)
    end)

    it("captures /var/tmp like the rest of /var with the default profile (issue 14.9)", function()
      local name = "/var/tmp/shannot-spec-" .. tostring(require("shannot.core.sys").ids().pid)
      local r = h.shannot({ "run", "--json", "--", "sh", "-c", "echo kept > " .. name }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.is_nil(fs.lstat(name), "the capture wrote the host's /var/tmp")
      local doc = json.decode(r.stdout)
      assert.is_table(doc.session, "nothing captured: " .. r.stdout)
      local s = json.decode(h.shannot({ "show", doc.session.id, "--json" }, { home = home }).stdout)
      local paths = {}
      for _, op in ipairs(s.operations) do paths[#paths + 1] = op.kind .. " " .. tostring(op.path) end
      assert.same({ "write " .. name }, paths)
    end)

    it("does not show the host environment", function()
      local r = run({ "--", "env" }, { home = home, env = { SHANNOT_SPEC_SECRET = "hunter2-" .. math.random(1e6) } })
      assert.equal(0, r.code)
      assert.falsy(r.stdout:find("SHANNOT_SPEC_SECRET", 1, true))
      assert.falsy(r.stdout:find("hunter2", 1, true))
      assert.truthy(r.stdout:find("PATH=", 1, true))
    end)

    it("passes no file descriptor of shannot's into the sandbox", function()
      local r = sh("ls /proc/self/fd | tr '\\n' ' '", { home = home })
      assert.equal("0 1 2 3 ", r.stdout)  -- 3 is ls's own directory fd
    end)

    it("cuts off the network unless the profile allows it", function()
      h.need(fs.which("nc", os.getenv("PATH")), "nc (netcat-openbsd)")
      local port = free_port()
      local _ <close> = listen(port)
      local r = run({ "--", "bash", "-c", connect_script(port) }, { home = home })
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      h.write(home .. "/config/shannot/profiles/net.json",
        '{"name": "net", "network_isolation": false, "environment": {"PATH": "/usr/bin:/bin"}}')
      local ok = run({ "--profile", "net", "--", "bash", "-c", connect_script(port) }, { home = home })
      assert.equal("connected\n", ok.stdout, ok.stderr)
      assert.equal(0, ok.code)
    end)

    it("applies the profile's seccomp filter", function()
      -- x86_64 BPF: load the syscall number; mkdir (83) fails with EPERM,
      -- everything else is allowed.
      local uname = require("shannot.core.sys").uname()
      h.need(uname.machine == "x86_64", "an x86_64 machine for the hand-written BPF")
      local function insn(code, jt, jf, k) return string.pack("<I2BBI4", code, jt, jf, k) end
      local bpf = insn(0x20, 0, 0, 0) .. insn(0x15, 0, 1, 83) ..
        insn(0x06, 0, 0, 0x00050001) .. insn(0x06, 0, 0, 0x7fff0000)
      h.write(home .. "/config/shannot/profiles/filter.bpf", bpf)
      h.write(home .. "/config/shannot/profiles/sec.json",
        '{"name": "sec", "seccomp_profile": "filter.bpf", "environment": {"PATH": "/usr/bin:/bin"}}')
      local r = run({ "--profile", "sec", "--", "sh", "-c", "mkdir /tmp/d && echo MADE; touch /tmp/f && echo TOUCHED" },
        { home = home })
      assert.equal("TOUCHED\n", r.stdout)
      assert.matches("Operation not permitted", r.stderr)
    end)
  end)

  describe("timeouts and memory", function()
    it("kills a command that ignores SIGTERM, and all it started, at the timeout", function()
      local marker = "sleep 30" .. math.random(100, 999) .. ".25"
      local r = run({ "--timeout", "1", "--", "sh", "-c",
        "trap '' TERM; (trap '' TERM; " .. marker .. ") & (" .. marker .. " &) ; " .. marker .. "; wait" },
        { home = home })
      assert.equal(1, r.code)
      assert.matches("timed out after 1 s", r.stderr)
      local left = proc.run({ "sh", "-c", "ps -eo args | grep -F '" .. marker .. "' | grep -v grep || true" })
      assert.equal("", left.stdout)
    end)

    it("on SIGINT kills the sandbox and all in it, says so and exits 130", function()
      local marker = "sleep 40" .. math.random(100, 999) .. ".5"
      local p = h.spawn({ "run", "--", "sh", "-c",
        "trap '' INT TERM; (" .. marker .. " &); " .. marker .. "; wait" }, { home = home })
      h.eventually(function()
        local sleeps = 0
        for _, line in ipairs(h.processes(marker)) do
          if line:find(marker, 1, true) == 1 then sleeps = sleeps + 1 end
        end
        return sleeps == 2
      end, "the sandboxed sleeps")
      assert(p:kill("INT"))
      local r = assert(p:communicate({ timeout = 20 }))
      assert.equal(130, r.code, r.stderr)
      assert.equal("shannot: interrupted\n", r.stderr)
      assert.same({}, h.processes(marker))
      -- the capture's staging area went too (the system profile captures)
      assert.same({}, fs.readdir(home .. "/data/shannot/staging"))
    end)

    it("leaves no sandbox behind when SIGINT comes while bwrap sets up", function()
      for _ = 1, 5 do
        local marker = "sleep 41" .. math.random(100, 999) .. ".5"
        local p = h.spawn({ "run", "--", "sh", "-c", marker }, { home = home })
        h.eventually(function()
          for _, line in ipairs(h.processes(marker)) do
            if line:find("bwrap", 1, true) then return true end
          end
        end, "bwrap")
        assert(p:kill("INT"))
        local r = assert(p:communicate({ timeout = 20 }))
        assert.equal(130, r.code, r.stderr)
        assert.same({}, h.processes(marker))
        assert.same({}, fs.readdir(home .. "/data/shannot/staging"))
      end
    end)

    it("--json reports the timeout", function()
      local r, doc = json_run({ "--timeout", "0.5", "--", "sleep", "20" }, { home = home })
      assert.equal(1, r.code)
      assert.is_true(doc.timed_out)
    end)

    it("keeps its memory flat while a command prints 1 GiB", function()
      local cmd = { "--json", "--", "sh", "-c", "yes | head -c 1073741824" }
      local small = run({ "--json", "--", "sh", "-c", "yes | head -c 1048576" }, { home = home, peak_rss = true })
      local big = run(cmd, { home = home, max_capture = 4 * 1024 * 1024, peak_rss = true })
      assert.equal(0, big.code, big.stderr)
      local doc = json.decode(big.stdout)
      assert.is_true(doc.stdout_truncated)
      assert.equal(1073741824 - 1048576, doc.stdout_dropped_bytes)
      -- maxrss covers shannot and its children; it must not grow with the
      -- output (1024 times more here).  ASan's allocator and quarantine add
      -- a few MiB of their own, so the ASan build gets more slack.
      local slack = os.getenv("ASAN_OPTIONS") and 16384 or 4096
      local small_kb, big_kb = h.peak_rss_kb(small), h.peak_rss_kb(big)
      assert.is_true(big_kb < small_kb + slack,
        string.format("1 MiB run: %d KiB, 1 GiB run: %d KiB", small_kb, big_kb))
      local live = run({ "--", "sh", "-c", "yes | head -c 1073741824 | tail -c 2" }, { home = home })
      assert.equal("y\n", live.stdout)
    end)
  end)

  describe("errors", function()
    it("refuses a command the profile does not allow, before anything starts", function()
      local r = run({ "--profile", "minimal", "--", "bash", "-c", "echo ran" }, { home = home })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.equal('shannot: command "bash" is not allowed by profile "minimal"\n', r.stderr)
      local abs = run({ "--profile", "minimal", "--", "/tmp/evil/ls" }, { home = home })
      assert.equal(2, abs.code)
      assert.equal(0, run({ "--profile", "minimal", "--", "ls", "/" }, { home = home }).code)
    end)

    it("names an unknown profile", function()
      local r = run({ "--profile", "sytem", "--", "true" }, { home = home })
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches('unknown profile "sytem" %(did you mean "system"%?%)', r.stderr)
    end)

    it("names the file and the place of malformed profile JSON", function()
      local path = h.write(home .. "/bad.json", '{"name": "bad",\n  "binds": [}\n')
      local r = run({ "--profile", path, "--", "true" }, { home = home })
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.truthy(r.stderr:find(path .. ":2:", 1, true), r.stderr)
      h.write(home .. "/config/shannot/profiles/typo.json", '{"name": "typo", "bind": []}')
      local t = run({ "--profile", "typo", "--", "true" }, { home = home })
      assert.equal(2, t.code)
      assert.is_true(h.one_line_error(t), t.stderr)
      assert.matches('typo.json: unknown field "bind" %(did you mean "binds"%?%)', t.stderr)
    end)

    it("says how to install bwrap when it is missing (exit 4)", function()
      -- bwrap is installed here: the script hides the system locations and
      -- PATH, then runs the real command line in the real binary.
      local dir = h.tmpdir()
      h.write(dir .. "/nobwrap.lua", [[
        require("shannot.sandbox").SYSTEM_BWRAP = {}
        os.exit(require("shannot.main").run({ "run", "--", "true" }))
      ]])
      local r = h.shannot({ "lua", dir .. "/nobwrap.lua" }, { home = home, env = { PATH = dir } })
      assert.equal(4, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("apt%-get install bubblewrap", r.stderr)
    end)

    it("uses SHANNOT_BWRAP as given, never a fallback (exit 4)", function()
      local r = run({ "--", "true" }, { home = home, env = { SHANNOT_BWRAP = "/nonexistent/bwrap" } })
      assert.equal(4, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("bwrap not found at /nonexistent/bwrap; install bubblewrap with: apt%-get", r.stderr)
    end)

    it("says to use --target when this is not Linux (exit 4)", function()
      local r = run({ "--", "true" }, { home = home, env = { SHANNOT_TEST_SYSNAME = "Darwin" } })
      assert.equal(4, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("use %-%-target", r.stderr)
    end)

    it("reports a sandbox bwrap cannot set up (exit 4)", function()
      h.write(home .. "/config/shannot/profiles/gone.json",
        '{"name": "gone", "binds": [{"source": "/nonexistent-src", "target": "/x"}]}')
      local r = run({ "--profile", "gone", "--", "true" }, { home = home })
      assert.equal(4, r.code)
      assert.matches('\nshannot: the sandbox could not be set up: bwrap: [^\n]*nonexistent%-src[^\n]*; ' ..
        '"shannot status" tells what this machine lacks\n$', r.stderr)
      local j = run({ "--json", "--profile", "gone", "--", "true" }, { home = home })
      assert.equal(4, j.code)
      assert.equal("", j.stdout)
      assert.matches("nonexistent%-src", j.stderr)
    end)

    it("says what to do when the staging cannot be made, and saves no session (exit 4)", function()
      local data = h.write(h.tmpdir() .. "/not-a-dir", "")
      local r = run({ "-c", "echo x > /etc/shannot-never" }, { home = home, env = { XDG_DATA_HOME = data } })
      assert.equal(4, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("cannot make the staging directory " .. data:gsub("%p", "%%%0") .. "/shannot/staging: " ..
        "[^\n]*Not a directory; make the data directory writable, or set XDG_DATA_HOME", r.stderr)
      assert.is_false(fs.exists("/etc/shannot-never"))
      assert.matches("no sessions", h.shannot({ "sessions" }, { home = home }).stdout)
    end)

    it("rejects usage mistakes with one line", function()
      for _, args in ipairs({ { "--" }, { "ls" }, { "--timeout", "soon", "--", "true" },
        { "--timeout", "-1", "--", "true" }, { "--max-output", "lots", "--", "true" },
        { "--bogus", "--", "true" }, { "--profile" } }) do
        local r = run(args, { home = home })
        assert.equal(2, r.code, table.concat(args, " "))
        assert.is_true(h.one_line_error(r), r.stderr)
      end
    end)
  end)
end)
