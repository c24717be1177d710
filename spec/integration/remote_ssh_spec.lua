-- Remote hosts against a real sshd on 127.0.0.1 (spec/support/sshd.lua):
-- host keys checked strictly, and `remote test` telling what a host can do.
local fs = require("shannot.fs")
local h = require("support.h")
local sshd = require("support.sshd")

local function server_pid(server)
  return assert(require("shannot.fs").read_file(server.dir .. "/sshd.pid")):match("%d+")
end

describe("remote over SSH", function()
  local server, home
  before_each(function()
    server = sshd.start()
    server.fingerprint = sshd.fingerprint(server.host_key_pub)
    home = h.tmpdir()
    assert(fs.mkdir_p(home .. "/.ssh"))
    assert(fs.mkdir_p(home .. "/config/shannot"))
  end)
  after_each(function()
    server.stop()
    h.cleanup()
  end)

  local function target()
    return server.user .. "@127.0.0.1:" .. server.port
  end

  -- The spec sshd again, with bin first in every session's PATH (before
  -- rest, or the usual directories), and the remote "box" added.
  local function serve_with_path(bin, rest)
    server.stop()
    server = sshd.start({ env = { PATH = bin .. ":" .. (rest or "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin") } })
    local r = h.shannot({ "remote", "add", "box", target(), "--key", server.key }, { home = home })
    assert.equal(0, r.code, r.stderr)
  end

  local function add_remote(name)
    local r = h.shannot({ "remote", "add", name, target(), "--key", server.key }, { home = home })
    assert.equal(0, r.code, r.stderr)
  end

  it("refuses an unknown host key, naming its fingerprint, and --accept-new adds it", function()
    add_remote("box")
    local r = h.shannot({ "remote", "test", "box" }, { home = home })
    assert.equal(3, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("unknown host key", r.stderr)
    assert.matches(server.fingerprint:gsub("%p", "%%%0"), r.stderr)
    assert.matches("%-%-accept%-new", r.stderr)
    local ok = h.shannot({ "remote", "test", "box", "--accept-new" }, { home = home })
    assert.matches("connected", ok.stdout)
    assert.matches("127%.0%.0%.1", fs.read_file(home .. "/.ssh/known_hosts"))
    local again = h.shannot({ "remote", "test", "box" }, { home = home })
    assert.matches("connected", again.stdout, 1, true)
    assert.matches("overlayfs", again.stdout)
  end)

  it("refuses a changed host key, always", function()
    add_remote("box")
    h.write(home .. "/.ssh/known_hosts", "[127.0.0.1]:" .. server.port ..
      " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    for _, args in ipairs({ { "remote", "test", "box" }, { "remote", "test", "box", "--accept-new" } }) do
      local r = h.shannot(args, { home = home })
      assert.equal(3, r.code)
      assert.matches("host key CHANGED", r.stderr)
    end
  end)

  it("says clearly when the key is wrong", function()
    local other = h.tmpdir() .. "/other"
    assert.equal(0, require("shannot.proc").run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other }).code)
    assert.equal(0, h.shannot({ "remote", "add", "box", target(), "--key", other }, { home = home }).code)
    local r = h.shannot({ "remote", "test", "box", "--accept-new" }, { home = home })
    assert.equal(3, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("authentication failed", r.stderr)
  end)

  it("captures a remote run as a session of that target, the remote unchanged", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local e = cap.env({ defer = { "systemctl" } })
    e:sh('echo old > "$1/f"; echo gone > "$1/old"; mkdir "$1/d"')
    add_remote("box")
    local prof = e.profile
    local before = cap.tree_state(e.host)
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", prof, "-c",
      "cd " .. e.host .. " && echo new >> f && rm old && chmod 700 d && echo made > d/n && " ..
      "systemctl restart web && echo done" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal(before, cap.tree_state(e.host))
    local doc = require("shannot.json").decode(r.stdout)
    assert.matches("done\n", doc.stdout)
    local shown = h.shannot({ "show", doc.session.id, "--json" }, { home = home })
    local s = require("shannot.json").decode(shown.stdout)
    assert.equal("box", s.target)
    local ops = {}
    for _, op in ipairs(s.operations) do
      ops[#ops + 1] = op.kind .. " " .. (op.path and op.path:sub(#e.host + 2) or table.concat(op.argv, " "))
    end
    assert.same({ "chmod d", "write d/n", "write f", "delete old", "exec systemctl restart web" }, ops)
    local diff = h.shannot({ "show", doc.session.id, "--diff" }, { home = home })
    assert.matches(" old\n%+new\n", diff.stdout)
  end)

  it("leaves no questions' server behind, even after a run over before the server started", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local e = cap.env({ defer = { "systemctl" } })
    add_remote("box")
    -- the servers running now (perl running capture/queries.lua's
    -- SERVER) but those in `old`: {pid = true}, and how many
    local function servers(old)
      local found, n = {}, 0
      for _, pid in ipairs(fs.readdir("/proc") or {}) do
        local mine = pid:match("^%d+$") and not (old and old[pid])
        local cmd = mine and fs.read_file("/proc/" .. pid .. "/cmdline", 1 << 20)
        if cmd and cmd:find("use strict; use Fcntl; use POSIX ();", 1, true) and cmd:find("/defer/q", 1, true) then
          found[pid], n = true, n + 1
        end
      end
      return found, n
    end
    local before = servers()  -- (an earlier spec's, maybe ending now)
    -- (five: a run over before perl starts is likely, not certain)
    for _ = 1, 5 do
      local r = h.shannot({ "run", "--target", "box", "--accept-new", "--profile", e.profile, "--", "true" },
        { home = home })
      assert.equal(0, r.code, r.stderr)
    end
    -- each ends within half a second of its run (it looks every 0.5 s)
    local sys = require("shannot.core.sys")
    local deadline = sys.monotonic() + 5
    while select(2, servers(before)) > 0 and sys.monotonic() < deadline do sys.sleep(0.1) end
    assert.equal(0, select(2, servers(before)))
  end)

  it("executes a remote session over SSH and rolls it back exactly", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local json = require("shannot.json")
    local e = cap.env({ defer = { "touch", "systemctl" } })
    e:sh('echo old > "$1/f"; echo gone > "$1/old"; mkdir -p "$1/d/sub"; echo k > "$1/d/sub/k"; ' ..
      'ln -s f "$1/l"; chown 1234:1234 "$1/f"; chmod 640 "$1/f"; echo r > "$1/ref"; ' ..
      'touch -d "2001-02-03 04:05:06.5" "$1/ref"; mkdir -p "$1/app/lib"; echo a > "$1/app/lib/a"; ' ..
      'echo b > "$1/app/b"; ln -s lib/a "$1/app/cur"')
    add_remote("box")
    local app_inode = fs.lstat(e.host .. "/app/lib/a").ino
    local original = cap.tree_state(e.host)
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
      "cd " .. e.host .. " && echo new >> f && rm old && rm -r d && ln -sfn n l && mkdir -p a/b && " ..
      "echo z > a/b/z && cp --preserve=timestamps ref a/b/t && mkfifo -m 640 a/p && ln a/b/z a/zz && " ..
      "truncate -s 16M a/sparse && mv app app.old && mkdir app && echo v2 > app/conf && " ..
      "{ systemctl is-active --quiet nosuch || echo not-active > a/asked; } && " ..
      "touch " .. e.host .. "/mark" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local id = json.decode(r.stdout).session.id
    local shown = h.shannot({ "show", id }, { home = home }).stdout
    assert.matches("rename%s+[^\n]*/app%.old  [^\n]*/app %-> [^\n]*/app%.old, 5 entries", shown)
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(0, x.code, x.stdout .. x.stderr)
    assert.equal(app_inode, fs.lstat(e.host .. "/app.old/lib/a").ino, "moved on the remote, not copied")
    assert.equal("v2\n", fs.read_file(e.host .. "/app/conf"))
    -- the remote host answered the question (issue 14.5), and was asked again
    assert.equal("not-active\n", fs.read_file(e.host .. "/a/asked"))
    assert.matches("query%s+systemctl is%-active %-%-quiet nosuch  the host answered: exit [1-9]", shown)
    assert.equal("old\nnew\n", fs.read_file(e.host .. "/f"))
    assert.equal(1234, fs.lstat(e.host .. "/f").uid)
    assert.is_nil(fs.lstat(e.host .. "/old"))
    assert.is_nil(fs.lstat(e.host .. "/d"))
    assert.equal("n", fs.readlink(e.host .. "/l"))
    assert.equal("z\n", fs.read_file(e.host .. "/a/b/z"))
    -- the modification time the script gave it in the sandbox (cp -p: touch
    -- is deferred in this bed), to the nanosecond (issue 14.1)
    local ref, z = fs.lstat(e.host .. "/ref"), fs.lstat(e.host .. "/a/b/t")
    assert.same({ ref.mtime_sec, ref.mtime_nsec }, { z.mtime_sec, z.mtime_nsec })
    assert.same({ "fifo", 416 }, { fs.lstat(e.host .. "/a/p").type, fs.lstat(e.host .. "/a/p").mode })
    assert.equal(fs.lstat(e.host .. "/a/b/z").ino, fs.lstat(e.host .. "/a/zz").ino, "a hard link, over SSH too")
    -- a sparse file came over SSH (it was refused as a GNU sparse entry) and stays sparse
    local sparse = fs.lstat(e.host .. "/a/sparse")
    assert.same({ 16 * 1024 * 1024, true }, { sparse.size, sparse.blocks < 64 })
    assert.is_true(fs.exists(e.host .. "/mark"), "the deferred touch ran on the remote")
    fs.remove(e.host .. "/mark")
    -- a file someone else put in a directory the session made is never
    -- deleted by rollback: a conflict (issue 14.7), found over SSH too
    h.write(e.host .. "/a/b/theirs", "x")
    local refused = h.shannot({ "rollback", id }, { home = home })
    assert.equal(3, refused.code, refused.stdout .. refused.stderr)
    assert.matches("holds 1 entry it did not make %([^)]*/a/b/theirs%)", refused.stderr)
    assert.equal("x", fs.read_file(e.host .. "/a/b/theirs"))
    fs.remove(e.host .. "/a/b/theirs")
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.equal(original, cap.tree_state(e.host))
    assert.equal(app_inode, fs.lstat(e.host .. "/app/lib/a").ino, "moved back")
  end)

  it("shows where a remote session lives, and executes only there (issue 15.3)", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local json = require("shannot.json")
    local e = cap.env()
    add_remote("box")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
      "echo x > " .. e.host .. "/f" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local id = json.decode(r.stdout).session.id
    local shown = h.shannot({ "show", id }, { home = home }).stdout
    assert.matches("target   " .. server.user .. "@127%.0%.0%.1:" .. server.port .. " %(remote box, host key " ..
      server.fingerprint:gsub("%p", "%%%0"), shown)
    local s = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout)
    assert.same({ "box", server.user, "127.0.0.1", server.port, server.fingerprint },
      { s.where.name, s.where.user, s.where.host, s.where.port, s.where.fingerprint })
    local listed = h.shannot({ "sessions" }, { home = home }).stdout
    assert.matches("on " .. server.user .. "@127%.0%.0%.1:" .. server.port .. " %(remote box", listed)
    local as_json = json.decode(h.shannot({ "sessions", "--json" }, { home = home }).stdout)
    assert.same({ "box", server.fingerprint }, { as_json[1].target, as_json[1].where.fingerprint })
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    -- the remote re-pointed (the same sshd by another name, its key accepted)
    assert.equal(0, h.shannot({ "remote", "remove", "box" }, { home = home }).code)
    assert.equal(0, h.shannot({ "remote", "add", "box", server.user .. "@localhost:" .. server.port, "--key",
      server.key }, { home = home }).code)
    h.shannot({ "remote", "test", "box", "--accept-new" }, { home = home })
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(3, x.code, x.stdout .. x.stderr)
    assert.is_true(h.one_line_error(x), x.stderr)
    assert.matches('the remote "box" now points to ' .. server.user .. "@localhost:" .. server.port, x.stderr)
    assert.is_nil(fs.lstat(e.host .. "/f"))
    -- its name gone from the config: the recorded address, with the
    -- user's own default key, and the host key checked as ever
    assert.equal(0, h.shannot({ "remote", "remove", "box" }, { home = home }).code)
    assert(fs.write_new(home .. "/.ssh/id_ed25519", assert(fs.read_file(server.key)), 384))
    local y = h.shannot({ "execute", id }, { home = home })
    assert.equal(0, y.code, y.stdout .. y.stderr)
    assert.matches('the remote "box" is no longer configured; connecting to ' .. server.user ..
      "@127%.0%.0%.1:" .. server.port, y.stderr)
    assert.equal("x\n", fs.read_file(e.host .. "/f"))
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.is_nil(fs.lstat(e.host .. "/f"))
  end)

  it("names the host in the review UI: the list, the header and the execute question (issue 15.3)", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local tmux = require("support.tmux")
    if not tmux.available() then return end
    local cap = require("support.cap")
    local e = cap.env()
    add_remote("box")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--profile", e.profile, "-c",
      "echo x > " .. e.host .. "/f" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local at = server.user .. "@127.0.0.1:" .. server.port
    local t = tmux.start(home, { "approve" }, { name = "remote-tui" })
    local ok, problem = pcall(function()
      local screen = t:wait("pending sessions: 1")
      assert.matches("on " .. at:gsub("%p", "%%%0"), screen)
      t:keys("Enter")
      screen = t:wait("1 ops: 0 approve")
      assert.matches("on " .. at:gsub("%p", "%%%0") .. "  1 ops", screen)
      t:keys("a")
      t:keys("x")
      -- the whole question, wrapped or not: read without the line breaks
      screen = t:wait("[y/N]")
      local flat = screen:gsub("%s+", " ")
      assert.matches("execute 1 operations %(0 denied%) on " .. at:gsub("%p", "%%%0") .. " %(remote box, host key " ..
        server.fingerprint:sub(1, 20):gsub("%p", "%%%0"), flat)
      t:keys("n")
      t:keys("q")
      t:wait("pending sessions: 1")
      t:keys("q")
      t:wait("shannot-exit=0")
    end)
    t:kill()
    assert(ok, problem)
    assert.is_nil(fs.lstat(e.host .. "/f"))
  end)

  it("fails clearly when the connection drops during execute, and rolls back once it is back", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local json = require("shannot.json")
    local e = cap.env()
    e:sh('echo one > "$1/a"; echo two > "$1/b"; echo three > "$1/c"')
    add_remote("box")
    local original = cap.tree_state(e.host)
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
      "cd " .. e.host .. " && echo A > a && echo B > b && echo C > c" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local id = json.decode(r.stdout).session.id
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    -- step 1 is the checkpoint, 2 and 3 the first write: cut the
    -- connection (sshd and every session it serves) right after it
    local cut = "pkill -KILL -P " .. server_pid(server) .. "; kill -KILL " .. server_pid(server)
    local x = h.shannot({ "execute", id }, { home = home, env = { SHANNOT_TEST_RUN_AFTER = "3:" .. cut } })
    assert.equal(1, x.code, x.stdout .. x.stderr)
    assert.matches("FAILED", x.stdout)
    assert.matches("failed; undo with: shannot rollback", x.stdout)
    local s = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout)
    assert.equal("failed", s.status)
    server.restart()
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.equal(original, cap.tree_state(e.host))
  end)

  it("runs a remote script that prints a lot: its output bounded, the capture intact", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local json = require("shannot.json")
    local e = cap.env()
    add_remote("box")
    local script = h.write(e.dir .. "/noisy.sh", "yes 'a noisy line' | head -c 5000000\n" ..
      "echo written > " .. e.host .. "/out\necho to-stderr >&2\n")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--max-output", "64K",
      "--profile", e.profile, script }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.stdout_truncated)
    assert.is_true(#doc.stdout <= 64 * 1024)
    assert.matches("to%-stderr", doc.stderr)
    local s = json.decode(h.shannot({ "show", doc.session.id, "--json" }, { home = home }).stdout)
    assert.equal(1, #s.operations)
    assert.equal(e.host .. "/out", s.operations[1].path)
    assert.equal(8, s.operations[1].new.size)
    assert.same({ script }, s.command)
    -- any length: a 10 KiB python script runs by its #! line there too (issue 15.5)
    local py = h.write(e.dir .. "/long.py", "#!/usr/bin/env python3\nimport sys\n" ..
      string.rep("# padding\n", 1024) .. "open('" .. e.host .. "/py', 'w').write('python %d' % sys.version_info[0])\n")
    local p = h.shannot({ "run", "--target", "box", "--json", "--profile", e.profile, py }, { home = home })
    assert.equal(0, p.code, p.stdout .. p.stderr)
    local ps = json.decode(h.shannot({ "show", json.decode(p.stdout).session.id, "--json" }, { home = home }).stdout)
    assert.same({ e.host .. "/py", 8 }, { ps.operations[1].path, ps.operations[1].new.size })
  end)

  -- Starts shannot with its stdout in a file; waits (at most a minute)
  -- for `first` there, then checks `second` is not yet, makes `mark`
  -- (which the command waits for) and waits for the end.
  local function streams(args, mark)
    local proc = require("shannot.proc")
    local out = h.tmpdir() .. "/out"
    local p <close> = h.spawn(args, { home = home,
      prefix = { "sh", "-c", 'out=$1; shift; exec "$@" > "$out" 2>&1', "sh", out } })
    local seen = ""
    for _ = 1, 600 do
      seen = "\n" .. (fs.read_file(out) or "")
      if seen:find("\nfirst\n", 1, true) then break end
      proc.run({ "sleep", "0.1" })
    end
    assert.matches("\nfirst\n", seen, 1, true)
    assert.not_matches("\nsecond\n", seen, 1, true)  -- the command is still waiting for the mark
    h.write(mark, "")
    local r = assert(p:communicate({ timeout = 120 }))
    return r, assert(fs.read_file(out))
  end

  it("streams a remote run's output as it comes, and a remote execute's deferred commands' (issue 15.4)",
    function()
      if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
      local cap = require("support.cap")
      local json = require("shannot.json")
      local e = cap.env({ defer = { "perl" } })
      add_remote("box")
      assert.equal(0, h.shannot({ "remote", "test", "box", "--accept-new" }, { home = home }).code)
      local marks = h.tmpdir()
      local wait = "i=0; while [ ! -e " .. marks .. "/run ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
      local r, out = streams({ "run", "--target", "box", "--profile", e.profile, "-c",
        "echo first; " .. wait .. "; echo second; echo x > " .. e.host .. "/f; " ..
        "perl -e '$|=1; print qq(first\\n); for (1..600) { last if -e $ARGV[0]; select(undef,undef,undef,0.1) } " ..
        "print qq(second\\n)' " .. marks .. "/execute" }, marks .. "/run")
      assert.equal(0, r.code, out)
      local id = assert(out:match("as session (%S+),"), out)
      assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
      local x, xout = streams({ "execute", id }, marks .. "/execute")
      assert.equal(0, x.code, xout)
      assert.matches("running deferred command %d+: perl %-e", xout)
      assert.matches("first\nsecond\n", xout)
      -- and kept: the session's result has it too
      local s = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout)
      assert.equal("first\nsecond\n", s.results[#s.results].stdout)
    end)

  it("kills a remote run at its timeout and keeps what it wrote", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local json = require("shannot.json")
    local e = cap.env()
    add_remote("box")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--timeout", "1",
      "--profile", e.profile, "-c", "echo early > " .. e.host .. "/f; sleep 30" }, { home = home })
    assert.equal(1, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.timed_out)
    assert.is_true(doc.duration < 15)
    assert.is_table(doc.session)
  end)

  it("takes the earlier form: shannot remote NAME run -- CMD", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    add_remote("box")
    local r = h.shannot({ "remote", "box", "run", "--accept-new", "--profile", "readonly", "--",
      "echo", "hello there" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello there\n", r.stdout)
  end)

  it("hides --hide globs there, expanded on the remote, and MCP run_command on a target hides its list (issue 17.3)",
    function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    add_remote("box")
    local dir = assert(h.visible_dir())
    assert(fs.chmod(dir, 493))
    h.write(dir .. "/secret-file", "the secret\n")
    assert(fs.mkdir(dir .. "/secret-dir", 493))
    h.write(dir .. "/secret-dir/inside", "also secret\n")
    assert(fs.symlink(dir .. "/secret-file", dir .. "/public-link"))
    h.write(dir .. "/public", "visible\n")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--profile", "readonly",
      "--hide", dir .. "/secret*", "--hide", "/etc/shadow", "--", "sh", "-c",
      "cd " .. dir .. " && cat secret-file public-link public /etc/shadow && ls -A secret-dir" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("visible\n", r.stdout)
    local json = require("shannot.json")
    local lines = {
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}',
      json.encode({ jsonrpc = "2.0", id = 2, method = "tools/call", params = { name = "run_command",
        arguments = { target = "box", argv = json.array({ "sh", "-c", "cat /etc/shadow; ls -A /root" }) } } }),
    }
    local m = h.shannot({ "mcp" }, { home = home, input = table.concat(lines, "\n") .. "\n" })
    assert.equal(0, m.code, m.stderr)
    local answer = assert(json.decode(m.stdout:match('[^\n]*"id":2[^\n]*')))
    assert.equal("", answer.result.structuredContent.stdout, json.encode(answer))
    assert.equal(0, answer.result.structuredContent.exit_code)
  end)

  it("takes a sandbox that cannot be set up there as an environment error: exit 4, no session (issue 15.2)",
    function()
      if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
      local cap = require("support.cap")
      local e = cap.env()
      -- a bwrap that cannot make its namespaces, first in the remote's PATH
      local bin = h.tmpdir()
      h.write(bin .. "/bwrap", '#!/bin/sh\n[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\n' ..
        'echo "bwrap: Creating new namespace failed: Operation not permitted" >&2\nexit 1\n')
      assert(fs.chmod(bin .. "/bwrap", 493))
      serve_with_path(bin)
      local t = h.shannot({ "remote", "test", "box", "--accept-new" }, { home = home })
      assert.equal(4, t.code, t.stdout .. t.stderr)
      -- what failed, as the probe met it; no guess about the kernel
      assert.matches("sandbox%s+no: bwrap: Creating new namespace failed: Operation not permitted", t.stdout)
      assert.not_matches("kernel with", t.stdout)
      local r = h.shannot({ "run", "--target", "box", "--profile", e.profile, "-c", "echo x > " .. e.host .. "/f" },
        { home = home })
      assert.equal(4, r.code, r.stderr)
      local last = r.stderr:match("([^\n]*)\n$")
      assert.matches('^shannot: box: the sandbox could not be set up there: bwrap: Creating new namespace failed: ' ..
        'Operation not permitted; "shannot remote test box" tells what the host lacks$', last)
      assert.matches("no sessions", h.shannot({ "sessions" }, { home = home }).stdout)
      -- nothing left of the remote's staging
      for _, name in ipairs(assert(fs.readdir("/tmp"))) do assert.not_matches("^shannot%-%x+$", name) end
    end)

  -- The remote's unlinking of a large staging overlaps the work here
  -- (capture/remote_shell.lua's collect_command), yet is over before the
  -- run returns; a small one goes with the collect, as before.  The
  -- remote's rm is slowed down, so that a staging left to the
  -- background would still be there.
  it("removes a large staging in the background, and waits for it before the run returns", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local e = cap.env()
    local bin, log = h.tmpdir(), h.tmpdir() .. "/rm.log"
    h.write(bin .. "/rm", '#!/bin/sh\ncase "$*" in *shannot-*) echo "$*" >> ' .. log .. '; sleep 1;; esac\n' ..
      'exec /bin/rm "$@"\n')
    assert(fs.chmod(bin .. "/rm", 493))
    serve_with_path(bin)
    local function stagings()
      local out = {}
      for _, name in ipairs(assert(fs.readdir("/tmp"))) do
        if name:match("^shannot%-%x+$") then out[#out + 1] = name end
      end
      return out
    end
    local function calls()
      local n = 0
      for _ in (fs.read_file(log) or ""):gmatch("[^\n]+") do n = n + 1 end
      return n
    end
    for _, case in ipairs({ { code = "echo small > f", calls = 1 },
      { code = "head -c 6000000 /dev/urandom > big", calls = 2 } }) do
      h.write(log, "")
      local r = h.shannot({ "run", "--target", "box", "--accept-new", "--profile", e.profile, "-c",
        "cd " .. e.host .. " && " .. case.code }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.matches("captured 1 operation", r.stderr)
      assert.same({}, stagings())
      -- the background's removal and the one that waited for it
      assert.equal(case.calls, calls(), fs.read_file(log))
    end
  end)

  it("says bwrap is missing on the remote before running anything (exit 4, no session)", function()
    if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
    local cap = require("support.cap")
    local e = cap.env()
    -- every command of the remote's PATH but bwrap
    local bin = h.tmpdir()
    for _, dir in ipairs({ "/usr/bin", "/bin" }) do
      for _, name in ipairs(fs.readdir(dir) or {}) do
        if name ~= "bwrap" and not fs.lstat(bin .. "/" .. name) then
          assert(fs.symlink(dir .. "/" .. name, bin .. "/" .. name))
        end
      end
    end
    serve_with_path(bin, "/usr/sbin:/sbin")
    local r = h.shannot({ "run", "--target", "box", "--accept-new", "--profile", e.profile, "-c",
      "echo x > " .. e.host .. "/f" }, { home = home })
    assert.equal(4, r.code, r.stderr)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("box: bwrap is not installed there %(apt%-get install bubblewrap%); nothing was run", r.stderr)
    assert.matches("no sessions", h.shannot({ "sessions" }, { home = home }).stdout)
    local t = h.shannot({ "remote", "test", "box" }, { home = home })
    assert.equal(4, t.code)
    assert.matches("bwrap%s+missing: apt%-get install bubblewrap", t.stdout)
  end)

  it("overlays each mount under a capture path as it is, and takes one it cannot overlay as an environment error",
    function()
      if not require("support.cap").ROOT then return pending("the spec sshd runs as root") end
      local cap = require("support.cap")
      local proc = require("shannot.proc")
      local e = cap.env()
      e:sh('mkdir "$1/sub" "$1/p" && mount -t tmpfs shannot-test "$1/sub" && echo old > "$1/sub/o"')
      local mounted = { e.host .. "/sub" }
      local ok, problem = pcall(function()
        add_remote("box")
        local r = h.shannot({ "run", "--target", "box", "--accept-new", "--json", "--profile", e.profile, "-c",
          "cd " .. e.host .. " && echo more >> sub/o && echo n > sub/n" }, { home = home })
        assert.equal(0, r.code, r.stderr)
        local json = require("shannot.json")
        local s = json.decode(h.shannot({ "show", json.decode(r.stdout).session.id, "--json" }, { home = home }).stdout)
        assert.same({ "write sub/n", "write sub/o" }, e:ops(s))
        assert.same({ 4, 9 }, { s.operations[2].base.size, s.operations[2].new.size }, "the mount's own file")
        e:sh('mount -t proc proc "$1/p"')
        mounted[2] = e.host .. "/p"
        local bad = h.shannot({ "run", "--target", "box", "--profile", e.profile, "-c", "echo x > " .. e.host .. "/f" },
          { home = home })
        assert.equal(4, bad.code, bad.stderr)
        assert.matches("box: the sandbox could not be set up there: [^\n]*mount[^\n]*" .. e.host:gsub("%p", "%%%0") ..
          "/p", bad.stderr)
        local listed = json.decode(h.shannot({ "sessions", "--json" }, { home = home }).stdout)
        assert.equal(1, #listed, "the refused run saved no session")
      end)
      for i = #mounted, 1, -1 do proc.run({ "umount", mounted[i] }) end
      assert(ok, problem)
    end)

  it("names an unknown target", function()
    local r = h.shannot({ "remote", "test", "no such host!" }, { home = home })
    assert.equal(2, r.code)
    assert.matches('unknown target "no such host!"', r.stderr)
  end)
end)

-- As an ordinary remote user (issue 15.1): a real account with its own
-- key (support/sshd.lua's unprivileged), captured as a local non-root run
-- is: what that user owns under the capture paths, its home by default.
describe("remote over SSH as an ordinary user", function()
  local json = require("shannot.json")
  local manifest = require("support.manifest")
  local proc = require("shannot.proc")
  local server, home

  before_each(function()
    server = sshd.start({ unprivileged = true })
    home = h.tmpdir()
    assert(fs.mkdir_p(home .. "/.ssh"))
    assert(fs.mkdir_p(home .. "/config/shannot/profiles"))
    local r = h.shannot({ "remote", "add", "web", server.user .. "@127.0.0.1:" .. server.port, "--key", server.key },
      { home = home })
    assert.equal(0, r.code, r.stderr)
    -- the default profile, capturing the account's home and /etc (not its own)
    local p = json.decode(assert(fs.read_file(h.ROOT .. "/profiles/system.json")))
    p.name, p.capture = "mine", { server.home, "/etc" }
    h.write(home .. "/config/shannot/profiles/mine.json", json.encode(p))
  end)
  after_each(function()
    server.stop()
    h.cleanup()
  end)

  -- the same script, run as that user over plain ssh (no shannot)
  local function ssh_direct(script)
    return assert(proc.run({ "ssh", "-q", "-i", server.key, "-p", tostring(server.port),
      "-o", "UserKnownHostsFile=" .. server.known_hosts, "-o", "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes", server.user .. "@" .. server.host, script }))
  end

  -- files the account owns, made as it would make them
  local function seed()
    local r = ssh_direct('cd && echo old > f && echo gone > g && mkdir -p d/sub && echo k > d/sub/k && ' ..
      'ln -s f l && echo keep > keep && chmod 600 keep && touch -d "2001-02-03 04:05:06" keep d/sub/k')
    assert.equal(0, r.code, r.stderr)
  end

  local SCRIPT = "cd && echo new >> f && rm g && rm -r d && mkdir -p n/m && echo z > n/m/z && " ..
    "chmod 700 n && ln -sfn keep l && ln f hard && touch -d '2010-01-01 00:00:00' f && " ..
    "{ echo x > /etc/shannot-remote-user || true; } && systemctl restart nosuch.service"

  it("tests, captures, shows, approves, executes and rolls back as that user, as a direct run would", function()
    if not h.need(fs.which("ssh", os.getenv("PATH")), "ssh (openssh-client)") then return end
    local t = h.shannot({ "remote", "test", "web", "--accept-new" }, { home = home })
    assert.equal(0, t.code, t.stdout .. t.stderr)
    assert.matches("user%s+uid " .. server.uid .. ": only that user's files", t.stdout)
    assert.matches("overlayfs%s+yes", t.stdout)
    assert.matches("sandbox%s+yes", t.stdout)
    seed()
    local before = manifest.text(server.home, { seconds = true })
    local started = os.time()
    local r = h.shannot({ "run", "--target", "web", "--json", "--profile", "mine", "-c", SCRIPT }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("running as " .. server.user:gsub("%p", "%%%0") .. ", not root", r.stderr)
    assert.is_nil(fs.lstat("/etc/shannot-remote-user"))
    local doc = json.decode(r.stdout)
    local id = doc.session.id
    local s = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout)
    local ops = {}
    for _, op in ipairs(s.operations) do
      ops[#ops + 1] = op.kind .. " " .. (op.path and op.path:sub(#server.home + 2) or table.concat(op.argv, " "))
    end
    table.sort(ops)
    -- only the home: nothing of /etc, no ownership change of a directory it cannot own
    assert.same({ "delete d", "delete g", "exec systemctl restart nosuch.service", "link hard", "mkdir n",
      "mkdir n/m", "symlink l", "write f", "write n/m/z" }, ops)
    for _, op in ipairs(s.operations) do
      if op.new and op.new.uid then assert.same({ server.uid, server.gid }, { op.new.uid, op.new.gid }) end
    end
    assert.same({ server.user, server.port }, { s.where.user, s.where.port })
    assert.equal(before, manifest.text(server.home, { seconds = true }), "the capture changed nothing")
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(1, x.code, x.stdout .. x.stderr)  -- only the deferred restart of a unit that is not there fails
    assert.matches("exec%s+systemctl restart nosuch%.service%s+FAILED", x.stdout)
    local executed = manifest.text(server.home, { seconds = true, since = started })
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    local back = manifest.text(server.home, { seconds = true })
    assert.equal(before, back, table.concat(manifest.changed(before, back), "\n"))
    -- the same script run directly leaves the same tree
    local direct = ssh_direct(SCRIPT:gsub(" && systemctl restart nosuch%.service$", ""))
    assert.equal(0, direct.code, direct.stderr)
    local by_hand = manifest.text(server.home, { seconds = true, since = started })
    assert.equal(by_hand, executed, table.concat(manifest.changed(by_hand, executed), "\n"))
  end)
end)
