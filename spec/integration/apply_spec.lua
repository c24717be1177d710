-- Policy, approve, execute and rollback against the real binary: exactly
-- the approved operations reach the host, drift and conflicts are refused,
-- symlinks planted later redirect nothing, and a kill at any step of an
-- execution is undone byte for byte by rollback.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")
local cap = require("support.cap")

-- A dry-run that must capture something; returns the session id.
local function capture(e, code, opts)
  local _, doc, s = e:run(code, opts)
  assert(s, "nothing captured: " .. tostring(doc.stderr))
  return s.id, s
end

local function cli(e, args, opts)
  opts = opts or {}
  return h.shannot(args, { home = e.home, env = opts.env })
end

local function approve(e, id)
  local r = cli(e, { "approve", id, "--yes" })
  assert.equal(0, r.code, r.stderr)
end

-- both_ways(e, workload [, setup]) -> the directory the workload ran in
-- directly, and the id of the session that ran it through capture,
-- approve and execute in e.host (setup made in both first)
local function both_ways(e, workload, setup)
  local proc = require("shannot.proc")
  local direct = e.dir .. "/direct"
  assert(fs.mkdir_p(direct))
  if setup then
    e:sh(setup)
    local r0 = assert(proc.run({ "sh", "-c", setup, "sh", direct }))
    assert.equal(0, r0.code, r0.stderr)
  end
  local rd = assert(proc.run({ "sh", "-c", "cd \"$1\" && " .. workload, "sh", direct }))
  assert.equal(0, rd.code, rd.stderr)
  local id = capture(e, workload)
  approve(e, id)
  local r = cli(e, { "execute", id })
  assert.equal(0, r.code, r.stdout .. r.stderr)
  return direct, id
end

-- The default test profile defers `touch`, so a deferred command leaves
-- a visible mark when (and only when) it runs on the host.
local function bed()
  return cap.env({ defer = { "touch", "systemctl" } })
end

describe("apply", function()
  after_each(h.cleanup)

  it("executes exactly the approved operations, then rolls back to the original tree", function()
    local e = bed()
    e:sh('echo old > "$1/f"; mkdir -p "$1/d/sub"; echo k > "$1/d/sub/k"; ln -s f "$1/l"; chmod 640 "$1/f"; ' ..
      'mkdir "$1/keep"; chmod 750 "$1/keep"')
    local original = cap.tree_state(e.host)
    local id = capture(e, "echo new >> f && rm -r d && ln -sfn n l && echo x > n && mkdir -p a/b && " ..
      "echo z > a/b/z && chmod 700 keep && touch " .. e.host .. "/mark")
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(0, r.code, r.stderr)
    -- a line per operation done, read from what was applied
    assert.matches("\n *%d+  write +" .. e.host:gsub("%p", "%%%0") .. "/f  ok\n", "\n" .. r.stdout)
    assert.matches("\n *%d+  exec +touch " .. e.host:gsub("%p", "%%%0") .. "/mark  ok\n", "\n" .. r.stdout)
    assert.equal("old\nnew\n", fs.read_file(e.host .. "/f"))
    assert.equal(416, fs.lstat(e.host .. "/f").mode)  -- 0640 kept
    assert.is_nil(fs.lstat(e.host .. "/d"))
    assert.equal("n", fs.readlink(e.host .. "/l"))
    assert.equal("z\n", fs.read_file(e.host .. "/a/b/z"))
    assert.equal(448, fs.lstat(e.host .. "/keep").mode)
    assert.is_true(fs.exists(e.host .. "/mark"), "the deferred touch ran after approval")
    local again = cli(e, { "execute", id })
    assert.equal(3, again.code)
    assert.matches("is executed", again.stderr)
    fs.remove(e.host .. "/mark")  -- a deferred command's effect is not undone
    local rb = cli(e, { "rollback", id })
    assert.equal(0, rb.code, rb.stderr)
    assert.equal(original, cap.tree_state(e.host))
    local shown = json.decode(cli(e, { "show", id, "--json" }).stdout)
    assert.equal("rolled_back", shown.status)
  end)

  it("leaves the tree the workload leaves when run directly (differential: paths, types, modes, owners, " ..
    "links, contents)", function()
    local e = bed()
    local setup = 'echo old > "$1/f"; mkdir -p "$1/d/sub" "$1/keep" "$1/r"; echo k > "$1/d/sub/k"; ' ..
      'ln -s f "$1/l"; chmod 640 "$1/f"; echo gone > "$1/gone"; echo x > "$1/r/x"'
    local workload = "echo new >> f && rm -r d gone && ln -sfn n l && printf 'a\\000b' > n && mkdir -p a/b && " ..
      "echo z > a/b/z && chmod 700 keep && chmod 4755 a/b/z && mv r/x r/y && ln -s ../f a/up && " ..
      "rm -r r && mkdir r && echo again > r/x"
    local direct = both_ways(e, workload, setup)
    assert.equal(cap.tree_state(direct), cap.tree_state(e.host))
  end)

  it("runs every deferred command in order whatever the others did, reports each, and rollback lists them " ..
    "as not undone (issue 14.6)", function()
    local e = cap.env({ defer = { "false", "touch" } })
    -- false fails on the host (the shim said 0 in the sandbox); the script
    -- went on, so execute goes on too
    local id = capture(e, "echo v > f && (/usr/bin/false || true) && touch " .. e.host .. "/after")
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(1, r.code, r.stderr)
    assert.matches("executed %(1 deferred command failed%)", r.stdout)
    assert.matches("exec +/usr/bin/false +FAILED: exit 1", r.stdout)
    assert.is_true(fs.exists(e.host .. "/after"), "the command after the failing one ran")
    local s = json.decode(cli(e, { "show", id, "--json" }).stdout)
    assert.equal("executed", s.status)
    local ran = {}
    for _, res in ipairs(s.results) do
      if res.code then ran[#ran + 1] = tostring(res.id) .. ":" .. tostring(res.code) end
    end
    assert.equal(2, #ran)
    local rb = cli(e, { "rollback", id })
    assert.equal(0, rb.code, rb.stderr)
    assert.matches("not undone /usr/bin/false %(a deferred command that ran", rb.stdout)
    assert.matches("not undone touch [^\n]*/after", rb.stdout)
    assert.is_nil(fs.lstat(e.host .. "/f"))

    -- --stop-on-deferred-failure: nothing after the failing one
    fs.remove(e.host .. "/after")
    local id2 = capture(e, "echo w > g && (/usr/bin/false || true) && touch " .. e.host .. "/after")
    approve(e, id2)
    local r2 = cli(e, { "execute", id2, "--stop-on-deferred-failure", "--json" })
    assert.equal(1, r2.code, r2.stderr)
    local s2 = json.decode(r2.stdout)
    assert.is_false(fs.exists(e.host .. "/after"), "nothing ran after the failing command")
    local last = s2.results[#s2.results]
    assert.is_true(last.not_run)
    assert.matches("not run: deferred command %d+ failed %(%-%-stop%-on%-deferred%-failure%)", last.error)
    local rb2 = json.decode(cli(e, { "rollback", id2, "--json" }).stdout)
    assert.equal(1, #rb2.not_undone)
    assert.equal("/usr/bin/false", rb2.not_undone[1].argv[1])
  end)

  it("names the command line as the actor of every step, approve --execute included (issue 13.1)", function()
    local e = bed()
    local id = capture(e, "echo v > f")
    assert.equal(0, cli(e, { "approve", id, "--yes", "--execute" }).code)
    assert.equal(0, cli(e, { "rollback", id }).code)
    local events = {}
    for _, ev in ipairs(json.decode(cli(e, { "audit", "--session", id, "--json" }).stdout)) do
      events[#events + 1] = ev.event_type .. ":" .. ev.actor
    end
    assert.same({ "session_created:cli", "session_approved:cli", "session_executed:cli",
      "session_rolled_back:cli" }, events)
  end)

  it("never deletes at rollback what the session did not make, and leaves alone what is already as it was " ..
    "(issue 14.7)", function()
    local e = bed()
    e:sh('echo old > "$1/a"; chmod 640 "$1/a"')
    local original = fs.lstat(e.host .. "/a")
    local id = capture(e, "echo new > a && mkdir -p made/sub && echo m > made/sub/m")
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    -- someone else puts a file in the directory the session made
    h.write(e.host .. "/made/sub/theirs", "keep me\n")
    local r = cli(e, { "rollback", id })
    assert.equal(3, r.code)
    assert.matches("holds 1 entry it did not make %([^)]*/made/sub/theirs%)", r.stderr)
    assert.equal("keep me\n", fs.read_file(e.host .. "/made/sub/theirs"))
    assert.equal("new\n", fs.read_file(e.host .. "/a"), "nothing was restored")
    fs.remove(e.host .. "/made/sub/theirs")
    -- a path already as checkpointed is not rewritten (same inode after)
    assert(require("shannot.proc").run({ "sh", "-c", 'printf "old\\n" > "$1/a"', "sh", e.host }))
    assert(fs.set_meta(e.host .. "/a", { mtime_sec = original.mtime_sec, mtime_nsec = original.mtime_nsec }))
    local inode = fs.lstat(e.host .. "/a").ino
    local rb = cli(e, { "rollback", id, "--json" })
    assert.equal(0, rb.code, rb.stderr)
    local doc = json.decode(rb.stdout)
    assert.same({ e.host .. "/a" }, doc.unchanged)
    assert.equal(inode, fs.lstat(e.host .. "/a").ino)
    assert.equal("old\n", fs.read_file(e.host .. "/a"))
    assert.is_nil(fs.lstat(e.host .. "/made"))
  end)

  it("removes with --force what others put in a directory the session made", function()
    local e = bed()
    local id = capture(e, "mkdir made && echo m > made/m")
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    h.write(e.host .. "/made/theirs", "x")
    local r = cli(e, { "rollback", id, "--force" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("conflict [^\n]*/made: a directory the session made now holds 1 entry", r.stdout)
    assert.is_nil(fs.lstat(e.host .. "/made"))
  end)

  it("gives every file, symlink and directory it makes the modification time the script gave it, and " ..
    "rollback gives back the old ones (issue 14.1)", function()
    local e = cap.env()  -- touch runs in the sandbox here, not deferred as in bed()
    local setup = 'echo old > "$1/f"; touch -d "2000-01-01 00:00:00.5" "$1/f"'
    e:sh(setup)
    local before = fs.lstat(e.host .. "/f")
    local workload = "echo new > f && touch -d '2001-02-03 04:05:06.123456789' f && mkdir -p d/e && " ..
      "echo x > d/e/x && touch -d '2002-01-01 00:00:01' d/e/x && ln -s x d/e/l && " ..
      "touch -h -d '2003-01-01 00:00:02' d/e/l && touch -d '2004-01-01 00:00:03' d/e d"
    local direct, id = both_ways(e, workload, setup)
    for _, rel in ipairs({ "f", "d", "d/e", "d/e/x", "d/e/l" }) do
      local here, there = fs.lstat(e.host .. "/" .. rel), fs.lstat(direct .. "/" .. rel)
      assert.same({ there.mtime_sec, there.mtime_nsec }, { here.mtime_sec, here.mtime_nsec }, rel)
    end
    assert.equal(123456789, fs.lstat(e.host .. "/f").mtime_nsec)
    local rb = cli(e, { "rollback", id })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    local after = fs.lstat(e.host .. "/f")
    assert.same({ before.mtime_sec, before.mtime_nsec }, { after.mtime_sec, after.mtime_nsec })
    assert.equal("old\n", fs.read_file(e.host .. "/f"))
    assert.is_nil(fs.lstat(e.host .. "/d"))
  end)

  it("gives a directory the script changed without leaving an operation there its time, unless someone " ..
    "changed it since; rollback gives the old time back (issue 14.10)", function()
    local e = cap.env()
    e:sh('mkdir "$1/d" "$1/other"; touch -d "2010-10-10" "$1/d" "$1/other"')
    local old = fs.lstat(e.host .. "/d")
    for _, someone in ipairs({ false, true }) do
      local id = capture(e, "echo t > d/tmp && rm d/tmp && echo x > other/x")
      approve(e, id)
      if someone then e:sh('echo theirs > "$1/d/theirs"') end
      local before = fs.lstat(e.host .. "/d")
      assert.equal(0, cli(e, { "execute", id }).code)
      local now = fs.lstat(e.host .. "/d")
      if someone then
        assert.same({ before.mtime_sec, before.mtime_nsec }, { now.mtime_sec, now.mtime_nsec }, "theirs kept")
      else
        assert.is_true(now.mtime_sec > old.mtime_sec, "the script's time")
      end
      assert.equal(0, cli(e, { "rollback", id }).code)
      local back = fs.lstat(e.host .. "/d")
      assert.same({ before.mtime_sec, before.mtime_nsec }, { back.mtime_sec, back.mtime_nsec })
    end
  end)

  it("captures FIFOs and makes them at execute; rollback removes them (issue 14.2)", function()
    local e = bed()
    local id, s = capture(e, "mkfifo p && chmod 640 p && mkdir q && mkfifo q/r")
    local kinds = {}
    for _, op in ipairs(s.operations) do kinds[#kinds + 1] = op.kind end
    table.sort(kinds)
    assert.same({ "mkdir", "mkfifo", "mkfifo" }, kinds)
    assert.matches("new FIFO %(named pipe%), 0640", e:show(id, { "--diff" }))
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local p = fs.lstat(e.host .. "/p")
    assert.equal("fifo", p.type)
    assert.equal(416, p.mode)
    assert.equal("fifo", fs.lstat(e.host .. "/q/r").type)
    assert.equal(0, cli(e, { "rollback", id }).code)
    assert.is_nil(fs.lstat(e.host .. "/p"))
    assert.is_nil(fs.lstat(e.host .. "/q"))
  end)

  it("applies hard links the script made as hard links, to new files and to files that were there " ..
    "(issue 14.2)", function()
    local e = bed()
    e:sh('echo kept > "$1/old"; mkdir "$1/sub"')
    local id, s = capture(e, "echo data > a && ln a sub/b && ln old c")
    local kinds = {}
    for _, op in ipairs(s.operations) do kinds[#kinds + 1] = op.kind .. " " .. op.path:sub(#e.host + 2) end
    assert.same({ "write a", "link sub/b", "link c" }, kinds)
    local shown = e:show(id, { "--diff" })
    assert.matches("hard link to [^\n]*/a %(the same file", shown)
    assert.matches("hard link to [^\n]*/old %(the same file", shown)
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local a, b, c, old = fs.lstat(e.host .. "/a"), fs.lstat(e.host .. "/sub/b"), fs.lstat(e.host .. "/c"),
      fs.lstat(e.host .. "/old")
    assert.equal(a.ino, b.ino)
    assert.equal(2, a.nlink)
    assert.equal(old.ino, c.ino)
    assert.equal(2, old.nlink)
    assert.equal("kept\n", fs.read_file(e.host .. "/c"))
    assert.equal(0, cli(e, { "rollback", id }).code)
    assert.is_nil(fs.lstat(e.host .. "/a"))
    assert.is_nil(fs.lstat(e.host .. "/sub/b"))
    assert.is_nil(fs.lstat(e.host .. "/c"))
    assert.equal(1, fs.lstat(e.host .. "/old").nlink)
  end)

  it("keeps a sparse file sparse: it takes no more room than when the script made it (issue 14.2)", function()
    local e = bed()
    local direct = both_ways(e, "truncate -s 64M big && echo end >> big")
    local here, there = fs.lstat(e.host .. "/big"), fs.lstat(direct .. "/big")
    assert.equal(there.size, here.size)
    assert.is_true(here.blocks <= there.blocks + 8, string.format("%d blocks, directly %d", here.blocks,
      there.blocks))
    assert.equal("end\n", fs.read_file(e.host .. "/big"):sub(-4))
  end)

  it("carries extended attributes and file capabilities, reviews a capability as danger, and rollback " ..
    "takes them back (issue 14.1)", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (file capabilities)") then return end
    if not h.need(fs.which("setcap", "/usr/sbin:/sbin:/usr/bin") ~= nil, "setcap (libcap2-bin)") then return end
    local e = bed()
    e:sh('echo data > "$1/src"; echo old > "$1/old"')
    assert(fs.set_xattr(e.host .. "/src", "user.k", "v1"))
    local id, s = capture(e, "cp --preserve=xattr src new && cp --preserve=xattr --attributes-only src old && " ..
      "cp /bin/true tool && /usr/sbin/setcap cap_net_raw+ep tool")
    local ops = {}
    for _, op in ipairs(s.operations) do ops[op.path:sub(#e.host + 2)] = op end
    assert.equal("xattr", ops.old.kind)
    assert.equal("danger", ops.tool.danger)
    assert.matches("capabilities", ops.tool.reason)
    assert.matches("extended attributes: %+user%.k", e:show(id, { "--diff" }))
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.equal("v1", fs.xattrs(e.host .. "/new")["user.k"])
    assert.equal("v1", fs.xattrs(e.host .. "/old")["user.k"])
    assert.equal("old\n", fs.read_file(e.host .. "/old"))
    local caps = assert(require("shannot.proc").run({ "/usr/sbin/getcap", e.host .. "/tool" }))
    assert.matches("cap_net_raw=ep", caps.stdout)
    assert.equal(0, cli(e, { "rollback", id }).code)
    assert.is_nil(fs.xattrs(e.host .. "/old")["user.k"])
    assert.is_nil(fs.lstat(e.host .. "/new"))
    assert.is_nil(fs.lstat(e.host .. "/tool"))
  end)

  it("reviews and applies a change of the modification time alone, and rollback takes it back " ..
    "(issue 14.1)", function()
    local e = cap.env()  -- touch runs in the sandbox here, not deferred as in bed()
    local setup = 'echo same > "$1/old"; touch -d "2000-01-01 00:00:00" "$1/old"'
    e:sh(setup)
    local before = fs.lstat(e.host .. "/old")
    local id, s = capture(e, "touch -d '2005-05-05 05:05:05.25' old")
    assert.same({ "touch" }, { s.operations[1].kind })
    assert.equal(1, #s.operations)
    assert.matches("modification time [^\n]* %-> 2005%-05%-05 [^\n]*%.25 UTC", e:show(id, { "--diff" }))
    assert.equal(0, cli(e, { "deny", id }).code)
    local direct, executed = both_ways(e, "touch -d '2005-05-05 05:05:05.25' old", setup)
    local here, there = fs.lstat(e.host .. "/old"), fs.lstat(direct .. "/old")
    assert.same({ there.mtime_sec, there.mtime_nsec }, { here.mtime_sec, here.mtime_nsec })
    assert.equal(0, cli(e, { "rollback", executed }).code)
    local after = fs.lstat(e.host .. "/old")
    assert.same({ before.mtime_sec, before.mtime_nsec }, { after.mtime_sec, after.mtime_nsec })
  end)

  -- An app tree of 40 entries with old fixed times, a hard-linked pair,
  -- a symlink and a 1 MiB file (the host side of the rename specs).
  local APP = 'mkdir -p "$1/app/lib/deep" && for i in $(seq 1 30); do echo "file $i" > "$1/app/lib/f$i"; done && ' ..
    'yes shannot | head -c 1048576 > "$1/app/big" && ln "$1/app/big" "$1/app/big.hard" && ' ..
    'ln -s lib/f1 "$1/app/current" && echo conf > "$1/app/conf" && echo d > "$1/app/lib/deep/d" && ' ..
    'chmod 640 "$1/app/conf" && chmod 750 "$1/app/lib" && ' ..
    'find "$1/app" -exec touch -h -d "2011-11-11 11:11:11.5" {} +'

  local function kinds_of(e, s)
    local out = {}
    for _, line in ipairs(e:ops(s)) do out[#out + 1] = line end
    return out
  end

  it("reviews a moved directory as one rename, applies it with rename(2) and rollback moves it back, the " ..
    "host's tree as when run directly (issue 14.3)", function()
    local manifest = require("support.manifest")
    local e = cap.env()
    local direct = e.dir .. "/direct"
    assert(fs.mkdir_p(direct))
    e:sh(APP)
    assert.equal(0, require("shannot.proc").run({ "sh", "-c", APP, "sh", direct }).code)
    local original = manifest.text(e.host, { dir_times = true })
    local inode = fs.lstat(e.host .. "/app/big").ino
    local since = os.time()
    local workload = "mv app app.old && mkdir app && echo v2 > app/conf"
    assert.equal(0, require("shannot.proc").run({ "sh", "-c", "cd \"$1\" && " .. workload, "sh", direct }).code)
    local id, s = capture(e, workload)
    assert.same({ "rename app.old", "mkdir app", "write app/conf" }, kinds_of(e, s))
    local rename = s.operations[1]
    assert.equal(e.host .. "/app", rename.from)
    assert.equal(38, rename.new.count)
    local shown = e:show(id, {})
    assert.matches("rename%s+[^\n]*/app%.old  [^\n]*/app %-> [^\n]*/app%.old, 38 entries, 2%.0 MiB, unchanged", shown)
    approve(e, id)
    local r = cli(e, { "execute", id })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.equal(inode, fs.lstat(e.host .. "/app.old/big").ino, "moved, not copied")
    assert.same({}, manifest.differences(direct, e.host, { since = since }))
    local rb = cli(e, { "rollback", id })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.equal(inode, fs.lstat(e.host .. "/app/big").ino)
    -- directories' times too: the host dir's, which the move changed
    assert.equal(original, manifest.text(e.host, { dir_times = true }))
  end)

  it("reviews a moved file as a rename too, and a moved tree changed on the way as what it is " ..
    "(issue 14.3)", function()
    local e = cap.env()
    e:sh(APP)
    local _, s = capture(e, "mv app/big app/big.old")
    assert.same({ "rename app/big.old" }, kinds_of(e, s))
    local _, s2 = capture(e, "mv app app.old && echo edited >> app.old/conf")
    local ops = kinds_of(e, s2)
    assert.is_nil(table.concat(ops, "\n"):find("rename", 1, true), "a changed tree is no rename")
    assert.equal("delete app", ops[1])
  end)

  it("takes no move for a rename where the destination's directory is made, emptied or moved by the script, " ..
    "and replays and rolls back each exactly (issue 14.3)", function()
    local manifest = require("support.manifest")
    local proc = require("shannot.proc")
    local setup = 'mkdir -p "$1/a/in" "$1/b" "$1/app" "$1/data/d"; echo a > "$1/a/in/f"; echo b > "$1/b/old"; ' ..
      'echo c > "$1/app/conf"; echo d > "$1/data/d/x"; find "$1" -mindepth 1 -exec touch -h -d "2012-12-12" {} +'
    for _, workload in ipairs({
      "rm -rf b && mkdir b && mv a b/a",
      "mkdir releases && mv app releases/app-1 && mkdir app && echo v2 > app/conf",
      "mv app app.old && mkdir -p app/shared && mv data app/shared/data",
    }) do
      local e = cap.env()
      local direct = e.dir .. "/direct"
      assert(fs.mkdir_p(direct))
      e:sh(setup)
      assert.equal(0, proc.run({ "sh", "-c", setup, "sh", direct }).code)
      local before = manifest.text(e.host, { dir_times = true })
      local since = os.time()
      assert.equal(0, proc.run({ "sh", "-c", "cd \"$1\" && " .. workload, "sh", direct }).code)
      local id, s = capture(e, workload)
      for _, op in ipairs(s.operations) do
        if op.kind == "rename" then
          assert.is_nil(op.path:match("/b/a$") or op.path:match("/releases/") or op.path:match("/shared/"),
            workload .. ": " .. op.path)
        end
      end
      approve(e, id)
      local r = cli(e, { "execute", id })
      assert.equal(0, r.code, workload .. ": " .. r.stdout .. r.stderr)
      assert.same({}, manifest.differences(direct, e.host, { since = since }), workload)
      local rb = cli(e, { "rollback", id })
      assert.equal(0, rb.code, workload .. ": " .. rb.stdout .. rb.stderr)
      assert.equal(before, manifest.text(e.host, { dir_times = true }), workload)
    end
  end)

  it("refuses a rename whose source changed since the dry-run, naming it, and changes nothing " ..
    "(issue 14.3)", function()
    local e = cap.env()
    e:sh(APP)
    local id = capture(e, "mv app app.old")
    approve(e, id)
    e:sh('echo later >> "$1/app/lib/deep/d"')
    local before = cap.tree_state(e.host)
    local r = cli(e, { "execute", id })
    assert.equal(3, r.code, r.stdout .. r.stderr)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("/app %(the tree to move changed since the dry%-run %(38 entries then, 38 now%)%)", r.stderr)
    assert.equal(before, cap.tree_state(e.host))
  end)

  it("answers a script's questions to the running system as the host does, records them, and refuses an " ..
    "execute whose answer moved (issue 14.5)", function()
    local proc = require("shannot.proc")
    local e = cap.env()
    -- a question no stand-in could guess: `systemctl is-active --quiet
    -- nosuch && echo running` says nothing on any host, "running" if the
    -- call were only recorded
    local ask = "systemctl is-active --quiet nosuch && echo running; systemctl is-active nosuch; echo \"rc=$?\""
    local direct = assert(proc.run({ "sh", "-c", ask }))
    local r, doc, s = e:run(ask .. " > answers")
    assert.equal(0, r.code, r.stderr)
    assert.is_truthy(doc)
    assert.equal(direct.stdout, require("shannot.store").read(
      e.home .. "/data/shannot/sessions/" .. s.id .. "/blobs", cap.op_at(s, "/answers").new.hash, 4096))
    assert.same({ "write answers", "query systemctl is-active --quiet nosuch", "query systemctl is-active nosuch" },
      e:ops(s))
    -- what only looks like a question is recorded as deferred, never run
    -- on the host: -p takes the next word, so this would be a start
    local _, _, tricked = e:run("systemctl -p is-active start shannot-spec-nosuch.service; " ..
      "systemctl -qHroot@elsewhere is-active x; systemctl --hos=elsewhere is-active x; true")
    assert.same({ "exec systemctl -p is-active start shannot-spec-nosuch.service",
      "exec systemctl -qHroot@elsewhere is-active x", "exec systemctl --hos=elsewhere is-active x" }, e:ops(tricked))
    assert.equal("approve", s.operations[2].decision)
    if not h.need(cap.ROOT, "root (an init script in /etc/init.d for `service NAME status`)") then return end
    -- a service whose status the spec changes between the dry-run and execute
    local name = "shannot-spec-" .. tostring(require("shannot.core.sys").ids().pid)
    local state = e.dir .. "/state"
    h.write(state, "running\n")
    local script = "/etc/init.d/" .. name
    assert(fs.write_new(script, "#!/bin/sh\ncat " .. state .. "\ngrep -q running " .. state .. " || exit 3\n", 493))
    finally(function() fs.remove(script) end)
    local id = capture(e, "service " .. name .. " status && echo ok > f")
    approve(e, id)
    h.write(state, "stopped\n")
    local refused = cli(e, { "execute", id })
    assert.equal(3, refused.code, refused.stdout .. refused.stderr)
    assert.is_true(h.one_line_error(refused), refused.stderr)
    local named = name:gsub("%-", "%%-")
    assert.matches("the host answers differently since the dry%-run; nothing was done: service " .. named ..
      ' status %(was exit 0 "running", now exit 3 "stopped"%)', refused.stderr)
    assert.is_nil(fs.lstat(e.host .. "/f"))
    h.write(state, "running\n")
    local x = cli(e, { "execute", id })
    assert.equal(0, x.code, x.stdout .. x.stderr)
    assert.equal("ok\n", fs.read_file(e.host .. "/f"))
  end)

  it("refuses to execute when the host drifted, listing the paths, and changes nothing", function()
    local e = bed()
    e:sh('echo one > "$1/f"; echo two > "$1/g"')
    local id = capture(e, "echo changed > f && echo changed > g")
    approve(e, id)
    e:sh('echo someone-else > "$1/g"')
    local before = cap.tree_state(e.host)
    local r = cli(e, { "execute", id })
    assert.equal(3, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("host changed since the dry%-run", r.stderr)
    assert.matches("/g %(was file", r.stderr)
    assert.equal(before, cap.tree_state(e.host))
    -- f was saved before g was found changed (one pass does both): no
    -- checkpoint is left of it, the session stays approved, and once g
    -- is back the execute goes through
    local dir = e.home .. "/data/shannot/sessions/" .. id
    assert.is_nil(fs.lstat(dir .. "/checkpoint"))
    assert.is_nil(fs.lstat(dir .. "/checkpoint.jsonl"))
    assert.matches('"status": *"approved"', fs.read_file(dir .. "/session.json"))
    e:sh('echo two > "$1/g"')
    local again = cli(e, { "execute", id })
    assert.equal(0, again.code, again.stderr)
    assert.equal("changed\n", fs.read_file(e.host .. "/g"))
    -- many drifted paths: the first ten named, the rest counted
    local many = capture(e, "for i in $(seq 25); do echo new > n$i; done")
    approve(e, many)
    e:sh('for i in $(seq 25); do echo theirs > "$1/n$i"; done')
    local m = cli(e, { "execute", many })
    assert.equal(3, m.code)
    assert.is_true(h.one_line_error(m), m.stderr)
    assert.equal(10, select(2, m.stderr:gsub("%(was absent, now file", "")))
    assert.matches("; and 15 more\n$", m.stderr)
  end)

  it("does not follow a symlink planted in a parent after the review", function()
    local e = bed()
    local outside = h.tmpdir()
    e:sh('mkdir "$1/sub"')
    local id = capture(e, "echo data > sub/file")
    approve(e, id)
    e:sh('rmdir "$1/sub" && ln -s ' .. outside .. ' "$1/sub"')
    local r = cli(e, { "execute", id })
    assert.equal(3, r.code)
    assert.same({}, fs.readdir(outside))
  end)

  it("lists rollback conflicts and restores nothing unless --force", function()
    local e = bed()
    e:sh('echo one > "$1/f"; echo two > "$1/g"')
    local original = cap.tree_state(e.host)
    local id = capture(e, "echo changed > f && echo changed > g")
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    e:sh('echo later-edit > "$1/g"')
    local r = cli(e, { "rollback", id })
    assert.equal(3, r.code)
    assert.matches("/g %(now file", r.stderr)
    assert.equal("changed\n", fs.read_file(e.host .. "/f"))
    local dry = cli(e, { "rollback", id, "--dry-run" })
    assert.equal(3, dry.code)
    local forced = cli(e, { "rollback", id, "--force" })
    assert.equal(0, forced.code, forced.stderr)
    assert.equal(original, cap.tree_state(e.host))
  end)

  it("after a kill at any step of execute, rollback restores the original tree", function()
    local e = bed()
    e:sh('echo old > "$1/f"; mkdir -p "$1/d/s"; echo k > "$1/d/s/k"; ln -s f "$1/l"; echo gone > "$1/x"; ' ..
      'mkdir -p "$1/app/lib"; echo a > "$1/app/lib/a"; echo c > "$1/app/c"')
    local original = cap.tree_state(e.host)
    local step, finished = 0, false
    while not finished do
      step = step + 1
      assert.is_true(step < 40, "execute never finished")
      local id = capture(e, "echo new >> f && rm -r d && ln -sfn f2 l && rm x && mkdir -p n/m && echo y > n/m/y && " ..
        "echo f2 > f2 && mv app app.old && mkdir app && echo v2 > app/c")
      approve(e, id)
      local r = cli(e, { "execute", id }, { env = { SHANNOT_TEST_FAULT_AFTER = tostring(step) } })
      if r.code == 0 then
        finished = true
      else
        assert.equal(137, r.code, r.stderr)
      end
      local rb = cli(e, { "rollback", id })
      assert.equal(0, rb.code, "step " .. step .. ": " .. rb.stderr)
      assert.equal(original, cap.tree_state(e.host), "step " .. step)
    end
    assert.is_true(step > 5)
  end)

  it("refuses to execute pending, rejected and expired sessions", function()
    local e = bed()
    local id = capture(e, "echo x > f")
    local pending = cli(e, { "execute", id })
    assert.equal(3, pending.code)
    assert.matches("approve it first", pending.stderr)
    local d = cli(e, { "deny", id, "--reason", "not today" })
    assert.equal(0, d.code, d.stderr)
    assert.equal(3, cli(e, { "execute", id }).code)
    assert.equal(3, cli(e, { "approve", id, "--yes" }).code)
    local id2 = capture(e, "echo y > g")
    local file = e.home .. "/data/shannot/sessions/" .. id2 .. "/session.json"
    local s = json.decode(fs.read_file(file))
    s.expires_at = "2000-01-01T00:00:00Z"
    h.write(file, json.encode(s))
    local r = cli(e, { "approve", id2, "--yes" })
    assert.equal(3, r.code)
    assert.matches("is expired", r.stderr)
    assert.is_false(fs.exists(e.host .. "/g"))
  end)

  it("never applies what policy denies; dangerous operations wait for a person", function()
    local e = bed()
    assert(fs.mkdir_p(e.home .. "/config/shannot"))
    h.write(e.home .. "/config/shannot/config.toml",
      '[policy]\ndeny = ["' .. e.host .. '/secret*"]\nauto_approve = ["' .. e.host .. '/ok/**"]\n')
    h.write(e.home .. "/config/shannot/policy.lua",
      "return function(op) if op.path and op.path:match('/vetoed$') then return 'deny', 'vetoed by policy' end end\n")
    e:sh('mkdir "$1/ok"; mkdir "$1/d"; echo x > "$1/d/x"')
    local id, s = capture(e, "echo a > secret.txt && echo b > ok/fine && echo c > vetoed && rm -r d && " ..
      "touch " .. e.host .. "/mark")
    local by_path = {}
    for _, op in ipairs(s.operations) do by_path[op.path or op.argv[1]] = op end
    assert.equal("deny", by_path[e.host .. "/secret.txt"].decision)
    assert.equal("approve", by_path[e.host .. "/ok/fine"].decision)
    assert.equal("deny", by_path[e.host .. "/vetoed"].decision)
    assert.equal("vetoed by policy", by_path[e.host .. "/vetoed"].reason)
    assert.equal("danger", by_path[e.host .. "/d"].danger)
    assert.equal("review", by_path[e.host .. "/d"].decision)
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    assert.is_false(fs.exists(e.host .. "/secret.txt"))
    assert.is_false(fs.exists(e.host .. "/vetoed"))
    assert.equal("b\n", fs.read_file(e.host .. "/ok/fine"))
    local shown = cli(e, { "show", id }).stdout
    assert.matches("deny%s+%a+%s+write%s+" .. e.host:gsub("%p", "%%%0") .. "/secret.txt", shown)
  end)

  it("denies deferred commands matching always_deny, whatever their spelling", function()
    local e = cap.env({ defer = { "rm", "touch" } })
    local _, s = capture(e, "touch ok && /bin/rm -fr / 2>/dev/null; exit 0")
    local decisions = {}
    for _, op in ipairs(s.operations) do
      if op.kind == "exec" then decisions[#decisions + 1] = op.argv[1] .. ":" .. op.decision end
    end
    assert.same({ "touch:review", "/bin/rm:deny" }, { decisions[1], decisions[2] })
  end)

  it("restores owners, modes and symlinks exactly, and logs every step in the audit chain", function()
    if not cap.ROOT then return pending("needs root") end
    local e = bed()
    e:sh('echo a > "$1/owned"; chown 1234:4321 "$1/owned"; chmod 4750 "$1/owned"; ln -s owned "$1/ln"; ' ..
      'chown -h 55:55 "$1/ln"; mkdir "$1/dir"; chown 7:7 "$1/dir"; chmod 1777 "$1/dir"')
    local original = cap.tree_state(e.host)
    local id = capture(e, "echo b >> owned && chown 0:0 owned && rm ln && ln -s elsewhere ln && " ..
      "chown 8:8 dir && chmod 755 dir")
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    assert.equal(0, fs.lstat(e.host .. "/owned").uid)
    assert.equal("elsewhere", fs.readlink(e.host .. "/ln"))
    assert.equal(0, cli(e, { "rollback", id }).code)
    assert.equal(original, cap.tree_state(e.host))
    local st = fs.lstat(e.host .. "/owned")
    assert.same({ 1234, 4321, 2536 }, { st.uid, st.gid, st.mode })  -- 04750
    assert.equal(55, fs.lstat(e.host .. "/ln").uid)
    local audit = json.decode(cli(e, { "audit", "--json", "--session", id }).stdout)
    local kinds = {}
    for i, ev in ipairs(audit) do kinds[i] = ev.event_type end
    assert.same({ "session_created", "session_approved", "session_executed", "session_rolled_back" }, kinds)
    local v = cli(e, { "audit", "--verify" })
    assert.equal(0, v.code, v.stdout .. v.stderr)
  end)

  it("lists and shows checkpoints", function()
    local e = bed()
    e:sh('echo old > "$1/f"')
    local id = capture(e, "echo new > f")
    approve(e, id)
    assert.equal(0, cli(e, { "execute", id }).code)
    local list = cli(e, { "checkpoint", "list" })
    assert.matches(id, list.stdout, 1, true)
    local show = cli(e, { "checkpoint", "show", id })
    assert.matches(e.host:gsub("%p", "%%%0") .. "/f  file 0644", show.stdout)
  end)
end)
