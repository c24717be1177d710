-- Capture against the real binary, real bwrap and real overlays: every kind
-- of change a script can make, captured as the right operations, with the
-- host tree hashed before and after to prove nothing on it changed.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")

local cap = require("support.cap")
local ROOT, env, op_at, tree_state = cap.ROOT, cap.env, cap.op_at, cap.tree_state

describe("capture", function()
  after_each(h.cleanup)

  it("records a new file as a write with its size, mode and hash", function()
    local e = env()
    local r, doc, s = e:run("printf 'hello\\n' > new.txt")
    assert.equal(0, r.code, r.stderr)
    assert.same({ "write new.txt" }, e:ops(s))
    local op = s.operations[1]
    assert.is_false(op.base.exists)
    assert.equal(6, op.new.size)
    assert.equal("file", op.new.type)
    assert.equal(64, #op.new.hash)
    assert.equal("pending", s.status)
    assert.equal(1, doc.session.counts.write)
    assert.matches("^%d+%-%d+%-sh%-c%-%x%x%x%x$", s.id)
  end)

  it("records modify, append and truncate with the right diff", function()
    local e = env()
    e:sh('printf "one\\ntwo\\n" > "$1/m"; printf "a\\n" > "$1/app"; printf "long\\n" > "$1/t"')
    local _, _, s = e:run("printf 'one\\nTWO\\n' > m && printf 'b\\n' >> app && : > t")
    assert.same({ "write app", "write m", "write t" }, e:ops(s))
    assert.is_true(op_at(s, "/m").base.exists)
    assert.equal(0, op_at(s, "/t").new.size)
    local text = e:show(s.id, { "--diff" })
    assert.matches("%-two\n%+TWO\n", text)
    assert.matches(" a\n%+b\n", text)
    assert.matches("%-long\n", text)
  end)

  it("records deletes of a file and of a non-empty directory as one operation each", function()
    local e = env()
    e:sh('echo x > "$1/f"; mkdir -p "$1/d/sub"; echo y > "$1/d/sub/z"')
    local _, _, s = e:run("rm f && rm -r d")
    assert.same({ "delete d", "delete f" }, e:ops(s))
    assert.equal("dir", op_at(s, "/d").base.type)
    assert.equal("file", op_at(s, "/f").base.type)
  end)

  it("records rm -r then mkdir of the same directory as replace_dir", function()
    local e = env()
    e:sh('mkdir "$1/d"; echo old > "$1/d/old"')
    local _, _, s = e:run("rm -r d && mkdir d && echo new > d/new")
    assert.same({ "replace_dir d", "write d/new" }, e:ops(s))
  end)

  it("records renames of a file and of a directory as renames (issue 14.3)", function()
    local e = env()
    e:sh('echo content > "$1/a"; mkdir "$1/d"; echo in > "$1/d/f"')
    local _, _, s = e:run("mv a b && mv d e")
    assert.same({ "rename b", "rename e" }, e:ops(s))
    local sum = proc.run({ "sha256sum", e.host .. "/a" }).stdout:match("^%x+")
    assert.equal(sum, op_at(s, "/b").new.hash)
    assert.equal(e.host .. "/a", op_at(s, "/b").from)
    assert.same({ e.host .. "/d", 2 }, { op_at(s, "/e").from, op_at(s, "/e").new.count })
  end)

  it("finds renames and hard links the same when the capture is large enough to be spooled", function()
    -- (a small capture's operations stay in memory; past 1 000 they go to
    -- a spool, read back whole when the run took host paths away)
    local e = env()
    e:sh('echo content > "$1/a"')
    local _, _, s = e:run("mv a b && echo linked > l1 && ln l1 l2 && mkdir many && i=0; " ..
      "while [ $i -lt 1200 ]; do echo $i > many/f$i; i=$((i+1)); done", { timeout = 120 })
    local ops = e:ops(s)
    assert.equal(1204, #ops)
    assert.equal(e.host .. "/a", op_at(s, "/b").from)
    assert.equal("rename", op_at(s, "/b").kind)
    assert.equal("link", op_at(s, "/l2").kind)
    for i, op in ipairs(s.operations) do assert.equal(i, op.id) end
  end)

  it("records chmod of a file and of an existing directory as metadata only", function()
    local e = env()
    e:sh('echo x > "$1/f"; chmod 644 "$1/f"; mkdir "$1/d"; chmod 755 "$1/d"')
    local _, _, s = e:run("chmod 600 f && chmod 700 d && chmod 750 .")
    assert.same({ "chmod .", "chmod d", "chmod f" }, e:ops(s))
    assert.equal(448, op_at(s, "/d").new.mode)
    assert.equal(493, op_at(s, "/d").base.mode)
    assert.equal(384, op_at(s, "/f").new.mode)
  end)

  it("records symlinks created, replaced and deleted", function()
    local e = env()
    e:sh('ln -s old "$1/repl"; ln -s x "$1/gone"')
    local _, _, s = e:run("ln -s target made && ln -sfn new repl && rm gone")
    assert.same({ "delete gone", "symlink made", "symlink repl" }, e:ops(s))
    assert.equal("target", op_at(s, "/made").new.link)
    assert.equal("new", op_at(s, "/repl").new.link)
    assert.equal("old", op_at(s, "/repl").base.link)
  end)

  it("records a hard link to a file that was there as a link to it (issue 14.2)", function()
    local e = env()
    e:sh('echo shared > "$1/a"')
    local _, _, s = e:run("ln a b")
    assert.same({ "link b" }, e:ops(s))
    assert.equal(e.host .. "/a", s.operations[1].new.hardlink)
  end)

  it("records a file replaced by a directory and a directory by a file", function()
    local e = env()
    e:sh('echo x > "$1/f"; mkdir "$1/d"; echo y > "$1/d/y"')
    local _, _, s = e:run("rm f && mkdir f && rm -r d && echo now-a-file > d")
    assert.same({ "write d", "mkdir f" }, e:ops(s))
    assert.equal("dir", op_at(s, "/d").base.type)
    assert.equal("file", op_at(s, "/f").base.type)
  end)

  it("records mkdir -p parent first", function()
    local e = env()
    local _, _, s = e:run("mkdir -p a/b/c && touch a/b/c/f")
    assert.same({ "mkdir a", "mkdir a/b", "mkdir a/b/c", "write a/b/c/f" }, e:ops(s))
  end)

  it("keeps names with spaces, newlines and invalid UTF-8 exactly", function()
    local e = env()
    local _, _, s = e:run("touch 'with space' \"$(printf 'new\\nline')\" \"$(printf 'bad\\377name')\"")
    assert.equal(3, #s.operations)
    local names = {}
    for _, op in ipairs(s.operations) do
      local path = op.path_hex and op.path_hex:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
        or op.path
      names[#names + 1] = path:sub(#e.host + 2)
    end
    table.sort(names)
    assert.same({ "bad\255name", "new\nline", "with space" }, names)
  end)

  it("records a deferred command instead of running it, in order, after the files", function()
    local e = env()
    local r, doc, s = e:run("echo x > f && systemctl restart 'my unit' && shannot-test-absent --flag")
    assert.equal(0, r.code, r.stderr)
    assert.same({ "write f", "exec systemctl restart my unit", "exec shannot-test-absent --flag" }, e:ops(s))
    assert.equal(e.host, s.operations[2].cwd)
    assert.matches("deferred: systemctl restart my unit", doc.stderr)
    assert.is_true(fs.exists(e.home .. "/data/shannot/sessions/" .. s.id .. "/deferred"))
    -- a deferred command that exists on the host is covered at its own path too
    local real = fs.which("systemctl", "/usr/bin:/bin:/usr/sbin:/sbin")
    if real then
      local _, _, s2 = e:run(real .. " daemon-reload")
      assert.same({ "exec " .. real .. " daemon-reload" }, e:ops(s2))
    end
  end)

  it("keeps a session of what a failing script wrote before it failed", function()
    local e = env()
    local r, doc, s = e:run("echo partial > f && exit 3 && echo never > g")
    assert.equal(1, r.code)
    assert.equal(3, doc.exit_code)
    assert.equal(3, s.exit_code)
    assert.same({ "write f" }, e:ops(s))
  end)

  it("keeps what a run wrote before its timeout", function()
    local e = env()
    local r, doc, s = e:run("echo early > f; sleep 30", { args = { "--timeout", "1" } })
    assert.equal(1, r.code)
    assert.is_true(doc.timed_out)
    assert.same({ "write f" }, e:ops(s))
  end)

  it("gives a session the time to live of the config", function()
    local e = env()
    assert(fs.mkdir_p(e.home .. "/config/shannot"))
    h.write(e.home .. "/config/shannot/config.toml", '[session]\nttl = "2h"\n')
    local _, _, s = e:run("echo x > f")
    local session = require("shannot.session")
    assert.equal(7200, session.parse_time(s.expires_at) - session.parse_time(s.created_at))
  end)

  it("makes no session when nothing changed", function()
    local e = env()
    local r, doc = e:run("ls > /dev/null && cat /etc/hostname > /dev/null")
    assert.equal(0, r.code, r.stderr)
    assert.equal(json.null, doc.session)
    assert.same({}, fs.readdir(e.home .. "/data/shannot/sessions") or {})
  end)

  it("keeps the staging of a run that changed nothing for the next, in step with the host (issue 19.1)", function()
    local e = env()
    local staging = e.home .. "/data/shannot/staging"
    local r = e:run("cat /etc/hostname > /dev/null; touch t && rm t")
    assert.equal(0, r.code, r.stderr)
    local kept = fs.readdir(staging)
    assert.equal(1, #kept)
    assert.matches("^pool%-%x+$", kept[1])
    -- the host directory changes meanwhile: the kept upper root follows it
    -- (else the overlay would show the old mode and time, captured as a
    -- chmod of the capture path)
    e:sh('chmod 700 "$1" && touch -d @1000000000 "$1"')
    local _, _, s = e:run("echo x > f && systemctl restart 'kept unit'")
    assert.same({ "write f", "exec systemctl restart kept unit" }, e:ops(s))
    -- it held something: emptied back to as made, and kept again; the
    -- next run sees none of it
    assert.same(kept, fs.readdir(staging))
    local _, doc = e:run("test ! -e f")
    assert.equal(0, doc.exit_code)
    local real = fs.which("systemctl", "/usr/bin:/bin:/usr/sbin:/sbin")
    if real then  -- deferred at its own path too, with the shims made once
      e:run("true")
      local _, _, s2 = e:run(real .. " daemon-reload")
      assert.same({ "exec " .. real .. " daemon-reload" }, e:ops(s2))
      assert.equal(1, #fs.readdir(e.home .. "/data/shannot/shims"))
    end
  end)

  it("leaves no staging directory, mount or 000-mode work dir behind", function()
    local e = env()
    e:run("echo x > f")
    -- but the staging kept for the next run (issue 19.1), emptied, its
    -- overlays' work/work (mode 000, volatile's marker in it) gone
    local left = fs.readdir(e.home .. "/data/shannot/staging")
    assert.equal(1, #left)
    assert.matches("^pool%-%x+$", left[1])
    local kept = e.home .. "/data/shannot/staging/" .. left[1]
    assert.same({}, fs.readdir(kept .. "/upper/1"))
    assert.same({}, fs.readdir(kept .. "/wd/1"))
    local mounts = assert(fs.read_file("/proc/self/mountinfo"))
    assert.is_nil(mounts:find(e.dir, 1, true))
    -- as root the work dirs wait in the trash for the next run, which
    -- removes them while its sandbox runs (the upper is the same one:
    -- the staging was reused)
    local set_aside = fs.readdir(kept .. "/trash") or {}
    if not ROOT then return assert.same({}, set_aside) end
    assert.is_true(#set_aside > 0)
    local upper = fs.lstat(kept .. "/upper/1").ino
    assert(fs.write_new(kept .. "/trash/1/marker", ""))
    e:run("true")
    assert.equal(upper, fs.lstat(kept .. "/upper/1").ino)
    assert.equal(#set_aside, #fs.readdir(kept .. "/trash"))
    assert.is_false(fs.exists(kept .. "/trash/1/marker"))
    assert.same({}, fs.readdir(kept .. "/wd/1"))
  end)

  it("works with the session store inside a captured directory", function()
    local e = env()
    -- HOME (and so the store) under the captured tree
    e.home = e.host .. "/home"
    e.ignore = "./home/data"  -- the store itself, where the session goes
    assert(fs.mkdir_p(e.home))
    local r, _, s = e:run("echo x > f && ls -a \"$HOME\" > /dev/null && mkdir -p home/.cache")
    assert.equal(0, r.code, r.stderr)
    assert.same({ "write f", "mkdir home/.cache" }, e:ops(s))
    -- The store is hidden from the sandbox: an empty directory there.
    local _, _, s2 = e:run("ls -A \"$HOME/data/shannot\" | wc -l > seen")
    assert.same({ "write seen" }, e:ops(s2))
    assert.equal(2, s2.operations[1].new.size)  -- "0\n"
  end)

  it("as root, writes files of other users, chowns, and acts as another user like apt's _apt", function()
    if not ROOT then return pending("needs root") end
    local e = env()
    e:sh('echo secret > "$1/theirs"; chown 1234:1234 "$1/theirs"; chmod 600 "$1/theirs"; ' ..
      'mkdir "$1/apt" "$1/srv"; chown 42:42 "$1/apt"; echo x > "$1/owned"')
    local r, _, s = e:run("echo more >> theirs && chown 4321:4321 owned srv && " ..
      "setpriv --reuid=42 --regid=42 --clear-groups sh -c 'echo partial > apt/lists'")
    assert.equal(0, r.code, r.stderr)
    assert.same({ "write apt/lists", "chown owned", "chown srv", "write theirs" }, e:ops(s))
    assert.equal(4321, op_at(s, "/srv").new.gid)
    assert.equal(1234, op_at(s, "/theirs").new.uid)
    assert.equal(42, op_at(s, "/apt/lists").new.uid)
    assert.equal(4321, op_at(s, "/owned").new.uid)
  end)

  it("as root, keeps a Docker-like capability set that reaches nothing on the host", function()
    if not ROOT then return pending("needs root") end
    local e = env()
    local r, doc = e:run("grep CapEff /proc/self/status; cat /proc/self/uid_map; " ..
      "mknod blk b 8 0 && echo MKNOD; /bin/sh -c 'echo 1 > /proc/sys/vm/drop_caches' 2>/dev/null && echo SYSCTL; " ..
      "unshare -m true 2>/dev/null && echo UNSHARED; exit 0")
    assert.equal(0, r.code, r.stderr)
    local eff = tonumber(doc.stdout:match("CapEff:%s+(%x+)"), 16)
    for _, bit in ipairs({ 16, 17, 21, 25, 12, 19, 22 }) do  -- module, rawio, admin, time, net_admin, ptrace, boot
      assert.equal(0, eff & (1 << bit), "capability " .. bit)
    end
    assert.equal(1, eff & 1)  -- CAP_CHOWN
    assert.matches("0%s+0%s+4294967295", doc.stdout)
    assert.is_nil(doc.stdout:find("MKNOD", 1, true))
    assert.is_nil(doc.stdout:find("SYSCTL", 1, true))
    assert.is_nil(doc.stdout:find("UNSHARED", 1, true))
  end)

  it("captures writes to the real /etc without changing it", function()
    local before = tree_state("/etc")
    local home = h.tmpdir()
    local r = h.shannot({ "run", "--json", "-c", "echo x > /etc/shannot-probe; rm -f /etc/hostname; " ..
      "chmod 600 /etc/passwd; exit 0" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal(before, tree_state("/etc"))
    local doc = json.decode(r.stdout)
    local kinds = {}
    for k, n in pairs(doc.session.counts) do kinds[#kinds + 1] = k .. "=" .. math.tointeger(n) end
    table.sort(kinds)
    assert.same({ "chmod=1", "delete=1", "write=1" }, kinds)
    assert.is_false(fs.exists("/etc/shannot-probe"))
  end)

  it("as root, overlays each mount under a capture path, and refuses one it cannot overlay", function()
    if not ROOT then return pending("needs root") end
    local e = env()
    e:sh('mkdir "$1/sub" "$1/p" && mount -t tmpfs shannot-test "$1/sub" && echo old > "$1/sub/o"')
    local mounted = { e.host .. "/sub" }
    local ok, problem = pcall(function()
      local r, _, s = e:run("echo new > sub/n && echo more >> sub/o && echo y > y")
      assert.equal(0, r.code, r.stderr)
      assert.same({ "write y", "write sub/n", "write sub/o" }, e:ops(s))
      e:sh('mount -t proc proc "$1/p"')
      mounted[2] = e.host .. "/p"
      local bad = h.shannot({ "run", "--profile", e.profile, "-c", "true" }, { home = e.home })
      assert.equal(4, bad.code)
      assert.is_true(h.one_line_error(bad), bad.stderr)
      assert.matches("the proc mount at " .. e.host:gsub("%p", "%%%0") .. "/p: overlayfs refuses it", bad.stderr)
    end)
    for i = #mounted, 1, -1 do proc.run({ "umount", mounted[i] }) end
    assert(ok, problem)
  end)

  it("captures 10 000 files, and a 1 GiB file with memory staying flat", function()
    local e = env()
    local r, _, s = e:run("mkdir many && i=0; while [ $i -lt 10000 ]; do echo \"file $i\" > many/f$i; " ..
      "i=$((i+1)); done", { timeout = 300 })
    assert.equal(0, r.code, r.stderr)
    assert.equal(10001, #s.operations)
    assert.equal(10000, s.counts.write)
    local big = e:run("dd if=/dev/zero of=big bs=1M count=1024 status=none", { timeout = 300, peak_rss = true })
    assert.equal(0, big.code, big.stderr)
    local limit = (os.getenv("SHANNOT_BIN") or ""):find("asan") and 160 or 64
    local kb = h.peak_rss_kb(big)
    assert.is_true(kb < limit * 1024, "peak RSS " .. kb .. " KiB for a 1 GiB file")
    local doc = json.decode(big.stdout)
    local bs = e:show(doc.session.id)
    assert.equal(1024 * 1024 * 1024, bs.operations[1].new.size)
    assert.equal("49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14", bs.operations[1].new.hash)
  end)

  it("as another user, captures only what that user may change, and says so up front", function()
    if not ROOT then return pending("run as root to try another user") end
    if not h.need(fs.which("setpriv", os.getenv("PATH")), "setpriv (util-linux)") then return end
    local e = env()
    local nobody = assert(math.tointeger(tonumber(proc.run({ "id", "-u", "nobody" }).stdout)))
    assert(fs.chmod(h.ROOT .. "/build/spec-tmp", 457))  -- 0711: nobody reaches the binary
    assert(fs.chmod(e.dir, 457))
    e:sh('echo mine > "$1/mine"; echo root > "$1/roots"; chmod 644 "$1/roots"')
    for _, path in ipairs({ e.host, e.home, e.host .. "/mine" }) do assert(fs.lchown(path, nobody, nobody)) end
    local prefix = { "setpriv", "--reuid=nobody", "--regid=" .. nobody, "--clear-groups", "--" }
    local r, _, s = e:run("echo more >> mine; echo x >> roots; echo new > new; echo x > /etc/shannot-nobody; exit 0",
      { prefix = prefix })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "write mine", "write new" }, e:ops(s))
    assert.equal(nobody, op_at(s, "/new").new.uid)
    assert.matches("not root: only files that user may change are captured", r.stderr)
    assert.is_false(fs.exists("/etc/shannot-nobody"))
  end)

  it("runs a script by its #! line or with /bin/sh, with its arguments, from anywhere (even /tmp)", function()
    local e = env()
    local tmp = assert(fs.mkdtemp("/tmp/shannot-spec-"))
    local ok, problem = pcall(function()
      h.write(tmp .. "/plain.sh", 'echo "$0 $1 $2" > "$H/plain"\n')
      h.write(tmp .. "/bang", '#!/bin/bash\necho "bash $BASH_VERSION" > "$H/bang"\n')
      assert(fs.chmod(tmp .. "/bang", 448))
      local r = h.shannot({ "run", "--json", "--profile", e.profile, tmp .. "/plain.sh", "one", "two words" },
        { home = e.home, env = { H = e.host } })
      assert.equal(0, r.code, r.stderr)
      local s = e:show(json.decode(r.stdout).session.id)
      assert.same({ tmp .. "/plain.sh", "one", "two words" }, s.command)
      assert.matches("^%d+%-%d+%-plain%-%x+$", s.id)
      local b = h.shannot({ "run", "--json", "--profile", e.profile, tmp .. "/bang" },
        { home = e.home, env = { H = e.host } })
      assert.equal(0, b.code, b.stderr)
      assert.same({ "write bang" }, e:ops(e:show(json.decode(b.stdout).session.id)))
      -- any length: a 10 KiB python script runs by its #! line (issue 15.5)
      h.write(tmp .. "/long.py", "#!/usr/bin/env python3\nimport os, sys\n" .. string.rep("# padding\n", 1024) ..
        "open(os.environ['H'] + '/py', 'w').write('python %d\\n' % sys.version_info[0])\n")
      local p = h.shannot({ "run", "--json", "--profile", e.profile, tmp .. "/long.py" },
        { home = e.home, env = { H = e.host } })
      assert.equal(0, p.code, p.stdout .. p.stderr)
      local ps = e:show(json.decode(p.stdout).session.id)
      assert.equal("python 3\n", require("shannot.store").read(e.home .. "/data/shannot/sessions/" .. ps.id ..
        "/blobs", ps.operations[1].new.hash, 100))
    end)
    fs.rmtree(tmp)
    assert(ok, problem)
    local missing = h.shannot({ "run", "--profile", e.profile, "no-such-script.sh" }, { home = e.home })
    assert.equal(2, missing.code)
    assert.is_true(h.one_line_error(missing), missing.stderr)
    assert.matches('no such script "no%-such%-script.sh"', missing.stderr)
  end)

  it("refuses bad session ids with exit 2", function()
    local e = env()
    for _, id in ipairs({ "../../etc", "", string.rep("a", 300), "20261122-101010-x-zzzz" }) do
      local r = h.shannot({ "show", id }, { home = e.home })
      assert.equal(2, r.code, id)
      assert.is_true(h.one_line_error(r), r.stderr)
    end
    local r = h.shannot({ "show", "20261122-101010-x-abcd" }, { home = e.home })
    assert.equal(2, r.code)
    assert.matches('unknown session "20261122%-101010%-x%-abcd"', r.stderr)
  end)

  it("marks a session whose run failed everywhere, and approve wants --allow-failed (issue 14.8)", function()
    local e = cap.env()
    local _, doc, s = e:run("echo x > f; exit 3")
    assert.equal(3, doc.exit_code)
    local id = s.id
    local function cli(args) return h.shannot(args, { home = e.home }) end
    -- sessions, text and JSON
    assert.matches("FAILED RUN: the command exited with code 3", cli({ "sessions" }).stdout)
    local listed = json.decode(cli({ "sessions", "--json" }).stdout)
    assert.equal("exited with code 3", listed[1].run_failed)
    -- show
    assert.matches("FAILED RUN: the command exited with code 3", e:show(id, {}))
    -- the MCP server's list_sessions and get_session
    local calls = {
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
        '"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}',
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_sessions","arguments":{}}}',
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_session","arguments":{"id":"' .. id ..
        '"}}}',
    }
    local m = h.shannot({ "mcp" }, { home = e.home, input = table.concat(calls, "\n") .. "\n" })
    local answers = {}
    for line in m.stdout:gmatch("[^\n]+") do answers[#answers + 1] = assert(json.decode(line)) end
    assert.equal("exited with code 3", answers[2].result.structuredContent.sessions[1].run_failed)
    assert.equal("exited with code 3", answers[3].result.structuredContent.run_failed)
    -- approve refuses, says why and how; --allow-failed approves
    local r = cli({ "approve", id, "--yes" })
    assert.equal(3, r.code)
    assert.matches("its run exited with code 3", r.stderr)
    assert.matches("%-%-allow%-failed", r.stderr)
    assert.equal("pending", e:show(id).status)
    assert.equal(0, cli({ "approve", id, "--yes", "--allow-failed" }).code)
    assert.equal("approved", e:show(id).status)
    -- a run that timed out is a failed run too
    local _, _, t = e:run("echo y > g; sleep 30", { args = { "--timeout", "1" } })
    assert.is_true(t.timed_out)
    assert.matches("FAILED RUN: the command timed out", e:show(t.id, {}))
    -- and a run that succeeded is not marked
    local _, _, ok = e:run("echo z > k")
    assert.is_nil(e:show(ok.id, {}):find("FAILED RUN", 1, true))
  end)
end)
