-- Issue 12: what was reviewed is what executes, and nothing from outside
-- (a hostile remote, a tampered store, a concurrent command) can bend it.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")
local cap = require("support.cap")
local sshd = require("support.sshd")

local function sh(code, ...)
  local r = assert(proc.run({ "sh", "-c", code, "sh", ... }))
  assert.equal(0, r.code, code .. ": " .. r.stderr)
  return r.stdout
end

describe("integrity (issue 12)", function()
  after_each(function()
    h.cleanup()
    cap.cleanup()
  end)

  describe("a hostile remote's capture stream", function()
    local server, home, work, outside

    -- The stream the remote's `tar` sends back for a capture is
    -- work/stream.tar (a fake tar first in the sshd session's PATH);
    -- every other tar call goes to the real one.
    before_each(function()
      if not h.need(sshd.available(), "sshd") then return end
      work = h.tmpdir()
      assert(fs.mkdir_p(work .. "/bin"))
      h.write(work .. "/bin/tar", table.concat({
        "#!/bin/sh",
        'case " $* " in *" -cf - upper defer/deferred "*) exec cat ' .. work .. "/stream.tar ;; esac",
        'exec /bin/tar "$@"', "" }, "\n"))
      assert(fs.chmod(work .. "/bin/tar", 493))
      server = sshd.start({ env = { PATH = work .. "/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" } })
      home = h.home()
      assert(fs.mkdir_p(home .. "/.ssh"))
      local a = h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port,
        "--key", server.key }, { home = home })
      assert.equal(0, a.code, a.stderr)
      outside = h.tmpdir()  -- a local directory the stream aims at
      h.write(outside .. "/secret", "local secret\n")
    end)
    after_each(function() if server then server.stop() end end)

    -- A stream made of tar archives built from trees (t1, t2, ...), each
    -- appended to the last with GNU tar's --concatenate.
    -- Each ends with the status bwrap writes once the sandbox is up.
    local function stream(build)
      local parts = build(work)
      sh('mkdir -p "$1/st" && echo \'{ "child-pid": 2 }\' > "$1/st/status" && cd "$1/st" && tar -cf ../st.tar status',
        work)
      parts[#parts + 1] = "st.tar"
      sh('cd "$1" && tar --format=posix -cf stream.tar -T /dev/null', work)
      for _, part in ipairs(parts) do sh('cd "$1" && tar -Af stream.tar "$2"', work, part) end
    end

    local function capture(code)
      if not cap.ROOT then return pending("the spec sshd runs as root") end
      local e = cap.env()
      return h.shannot({ "run", "--target", "box", "--accept-new", "--profile", e.profile, "-c",
        (code or "") .. "echo x > " .. e.host .. "/f" }, { home = home })
    end

    local function refused(r, entry, why)
      assert.equal(3, r.code, r.stderr)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("the capture stream's entry " .. entry .. ": " .. why, r.stderr)
      assert.equal("[]\n", h.shannot({ "sessions", "--json" }, { home = home }).stdout)
    end

    it("never writes through a symlink of the stream", function()
      if not server then return end
      stream(function(w)
        sh('mkdir -p "$1/a/upper/1" && ln -s "$2" "$1/a/upper/1/x" && cd "$1/a" && tar -cf ../a.tar upper', w, outside)
        sh('mkdir -p "$1/b/upper/1/x" && echo pwned > "$1/b/upper/1/x/secret" && ' ..
          'cd "$1/b" && tar -cf ../b.tar upper/1/x/secret', w)
        return { "a.tar", "b.tar" }
      end)
      refused(capture(), "upper/1/x/secret", "it lies below a symlink of the stream")  -- (a pattern)
      assert.equal("local secret\n", fs.read_file(outside .. "/secret"))
    end)

    it("takes hard links only to files of the same stream", function()
      if not server then return end
      stream(function(w)
        -- a hard link entry naming a local file: tar records the name as given
        sh('mkdir -p "$1/c/upper/1" && cd "$1/c" && echo a > upper/1/a && ln upper/1/a upper/1/h && ' ..
          'tar --format=posix -cf ../c.tar upper && cd .. && ' ..
          'python3 - "$1/c.tar" "$2/secret" <<"PY"\n' ..
          'import sys, tarfile\n' ..
          'src = tarfile.open(sys.argv[1]); members = src.getmembers()\n' ..
          'out = tarfile.open(sys.argv[1] + ".new", "w", format=tarfile.PAX_FORMAT)\n' ..
          'for m in members:\n' ..
          '    if m.islnk(): m.linkname = sys.argv[2].lstrip("/")\n' ..
          '    out.addfile(m, src.extractfile(m) if m.isfile() else None)\n' ..
          'out.close()\nPY\nmv "$1/c.tar.new" "$1/c.tar"', w, outside)
        return { "c.tar" }
      end)
      -- whichever name tar made the link, it names the local file
      refused(capture(), "upper/1/[ah]", "a hard link to .-secret, not a file of the stream")
    end)

    it("refuses absolute names, '..' and a deferred record that is not a file", function()
      if not server then return end
      local cases = {
        { function(w)
            sh('cd "$1" && mkdir -p d && echo x > d/f && tar -P --transform "s,^d,/upper/1," -cf e.tar d/f', w)
            return { "e.tar" }
          end, "absolute name" },
        { function(w)
            sh('cd "$1" && mkdir -p d && echo x > d/f && ' ..
              'tar -P --transform "s,^d,upper/../../escape," -cf g.tar d/f', w)
            return { "g.tar" }
          end, "'%.%.'" },
        { function(w)
            sh('mkdir -p "$1/h/defer" && ln -s /etc/passwd "$1/h/defer/deferred" && cd "$1/h" && ' ..
              'tar -cf ../h.tar defer/deferred', w)
            return { "h.tar" }
          end, "defer/deferred: a link, not a regular file" },
        -- bwrap's status (issue 15.2) is read from the stream too: a file, nothing else
        { function(w)
            sh('mkdir -p "$1/j" && ln -s /etc/passwd "$1/j/status" && cd "$1/j" && tar -cf ../j.tar status', w)
            return { "j.tar" }
          end, "entry status: a link, not a regular file" },
      }
      for _, c in ipairs(cases) do
        stream(c[1])
        local r = capture()
        assert.are_not.equal(0, r.code, r.stderr)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches(c[2], r.stderr)
      end
    end)

    it("names a hostile entry inert, and passes the remote output on without terminal strings", function()
      if not server then return end
      stream(function(w)
        sh('python3 - "$1/i.tar" <<"PY"\n' ..
          'import io, sys, tarfile\n' ..
          'out = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)\n' ..
          'info = tarfile.TarInfo("upper/1/\\x1b]0;pwned\\x07\\x1b[2J/../../../x"); info.size = 1\n' ..
          'out.addfile(info, io.BytesIO(b"x")); out.close()\nPY', w)
        return { "i.tar" }
      end)
      local r = capture("printf 'out\\033]52;c;cm0gLXJmIH4K\\007put\\n'; printf 'err\\033]0;title\\033\\\\or\\n' >&2; ")
      assert.are_not.equal(0, r.code)
      assert.falsy(r.stderr:find("\27", 1, true), r.stderr)
      assert.truthy(r.stderr:find("\\x1b]0;pwned\\x07\\x1b[2J", 1, true), r.stderr)
      assert.equal("output\n", r.stdout)
      assert.truthy(r.stderr:find("error\n", 1, true), r.stderr)
    end)

    it("never makes a device node here", function()
      if not server then return end
      stream(function(w)
        sh('mkdir -p "$1/k/upper/1" && mknod "$1/k/upper/1/disk" b 8 0 && mkfifo "$1/k/upper/1/pipe" && ' ..
          'echo x > "$1/k/upper/1/f" && cd "$1/k" && tar -cf ../k.tar upper', w)
        return { "k.tar" }
      end)
      local r = capture()
      assert.equal(0, r.code, r.stderr)
      assert.matches("/disk: a block is not captured", r.stderr)
      assert.matches("not captured: [^\n]*/disk, a block", r.stderr)
      -- a FIFO is an operation of its own now (made at execute, never here)
      assert.matches("1 mkfifo", r.stderr)
    end)
  end)

  describe("one command per session at a time", function()
    it("loses no original when execute races execute, rollback or prune (20 pairs)", function()
      local json = require("shannot.json")
      local e = cap.env()
      e:sh('i=0; while [ $i -lt 100 ]; do echo "$i" > "$1/f$i"; i=$((i+1)); done')
      local original = cap.tree_state(e.host)
      local outcomes = {}
      for round = 1, 20 do
        local other = ({ "execute", "rollback", "prune" })[round % 3 + 1]
        local _, _, s = e:run('for f in f*; do echo "round ' .. round .. '" >> "$f"; done')
        assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
        local a = h.spawn({ "execute", s.id }, { home = e.home })
        local b = h.spawn(other == "prune" and { "prune" } or { other, s.id }, { home = e.home })
        local ra, rb = a:communicate({ timeout = 60 }), b:communicate({ timeout = 60 })
        a:close(); b:close()
        outcomes[#outcomes + 1] = other .. ":" .. tostring(ra.code) .. "/" .. tostring(rb.code)
        for _, r in ipairs({ ra, rb }) do
          assert.falsy((r.stderr or ""):find("traceback", 1, true), r.stderr)
          if r.code ~= 0 and r.code ~= 3 then error("unexpected exit " .. tostring(r.code) .. ": " .. r.stderr) end
        end
        local status = json.decode(h.shannot({ "show", s.id, "--json" }, { home = e.home }).stdout).status
        if status ~= "rolled_back" then
          local rb2 = h.shannot({ "rollback", s.id }, { home = e.home })
          assert.equal(0, rb2.code, status .. ": " .. rb2.stderr)
        end
        assert.equal(original, cap.tree_state(e.host), "round " .. round .. " (" .. other .. ") lost an original")
      end
      -- both sides really raced: a second execute was refused while the first held the session
      local refused = 0
      for _, o in ipairs(outcomes) do
        if o:match("^execute:%d/3$") or o:match("^execute:3/%d$") then refused = refused + 1 end
      end
      assert.truthy(refused > 0, table.concat(outcomes, " "))
    end)
  end)

  describe("approval binds the reviewed content", function()
    local json = require("shannot.json")

    local function approved_session(e)
      e:sh('echo old > "$1/a"; echo old > "$1/b"')
      local _, _, s = e:run("echo new > a; echo new > b; echo made > c")
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      return s.id, e.home .. "/data/shannot/sessions/" .. s.id
    end

    local function edit(dir, fn)
      local doc = h.read_session(dir)
      fn(doc)
      h.write_session(dir, doc)
    end

    it("refuses an execute after session.json was edited, and audits it", function()
      local edits = {
        { function(d) d.operations[1].path = d.operations[1].path:gsub("/a$", "/elsewhere") end,
          "operation 1 %(write .-/elsewhere%) is not the one approved" },
        { function(d) d.operations[2].decision = "deny" end, "operation 2 .- is not the one approved" },
        { function(d)
            d.operations[#d.operations + 1] = { id = 4, kind = "delete", path = "/etc/hostname",
              decision = "approve", base = { exists = true, type = "file" } }
          end, "it now has 4 operations, 3 were approved" },
        { function(d) d.target = "root@elsewhere" end, 'its target is now "root@elsewhere"' },
        { function(d) d.operations[1].new.mode = 2541 end, "operation 1 .- is not the one approved" },
        { function(d) d.approval.operations[1] = string.rep("0", 64)
          d.operations[1].new.hash = string.rep("0", 64) end, "operation 1 .- is not the one approved" },
      }
      for _, c in ipairs(edits) do
        local e = cap.env()
        local id, dir = approved_session(e)
        local before = cap.tree_state(e.host)
        edit(dir, c[1])
        local r = h.shannot({ "execute", id }, { home = e.home })
        assert.equal(3, r.code, r.stdout .. r.stderr)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("was changed after it was approved: " .. c[2], r.stderr)
        assert.equal(before, cap.tree_state(e.host))
        local log = h.shannot({ "audit", "--json", "--session", id }, { home = e.home })
        assert.matches("session_execute_refused", log.stdout)
      end
    end)

    it("refuses an execute after a rename's source or moved tree was edited (issue 14.3)", function()
      local edits = {
        function(d) d.operations[1].from = d.operations[1].from:gsub("/app$", "/other") end,
        function(d) d.operations[1].from_base.digest = string.rep("0", 64) end,
      }
      for _, fn in ipairs(edits) do
        local e = cap.env()
        e:sh('mkdir "$1/app" "$1/other"; echo a > "$1/app/a"; echo a > "$1/other/a"')
        local _, _, s = e:run("mv app app.old")
        assert.same({ "rename app.old" }, e:ops(s))
        assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
        local before = cap.tree_state(e.host)
        edit(e.home .. "/data/shannot/sessions/" .. s.id, fn)
        local r = h.shannot({ "execute", s.id }, { home = e.home })
        assert.equal(3, r.code, r.stdout .. r.stderr)
        assert.matches("was changed after it was approved: operation 1 %(rename ", r.stderr)
        assert.equal(before, cap.tree_state(e.host))
      end
    end)

    it("refuses a seal made again without the user's approval key", function()
      local e = cap.env()
      local id, dir = approved_session(e)
      edit(dir, function(d)
        d.operations[1].path = d.operations[1].path:gsub("/a$", "/elsewhere")
        -- an attacker recomputes every digest, but has no key: a seal of their own
        local approval = require("shannot.session.approval")
        json.integers(d)
        for i, op in ipairs(d.operations) do d.approval.operations[i] = approval.op_digest(op) end
        d.approval.digest = approval.hmac(string.rep("k", 32), "forged")
      end)
      local r = h.shannot({ "execute", id }, { home = e.home })
      assert.equal(3, r.code, r.stderr)
      assert.matches("its seal does not match its operations", r.stderr)
    end)

    it("refuses a rollback from a checkpoint edited after execute, and audits it", function()
      local edits = {
        function(d, out) d.checkpoint.entries[1].path = out end,  -- the red team's: restore it elsewhere
        function(d) d.checkpoint.entries[1].mode = 3565 end,  -- 06755
        function(d) d.checkpoint.entries[1].uid = 4242 end,
        function(d) table.remove(d.checkpoint.entries, 1) end,
        function(d) d.checkpoint.seal = nil end,
        function(d) d.target = "root@elsewhere" end,  -- the third red team's: restore on another host
      }
      for i, fn in ipairs(edits) do
        local e = cap.env()
        local id, dir = approved_session(e)
        local r = h.shannot({ "execute", id }, { home = e.home })
        assert.equal(0, r.code, r.stderr)
        local after = cap.tree_state(e.host)
        local out = e.dir .. "/planted"
        edit(dir, function(d) fn(d, out) end)
        r = h.shannot({ "rollback", id, "--force" }, { home = e.home })
        assert.equal(3, r.code, i .. ": " .. r.stdout .. r.stderr)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("cannot be rolled back: its checkpoint", r.stderr)
        assert.equal(after, cap.tree_state(e.host))
        assert.is_nil(fs.lstat(out))
        local log = h.shannot({ "audit", "--json", "--session", id }, { home = e.home })
        assert.matches("session_rollback_refused", log.stdout)
      end
    end)

    it("writes nothing of a blob swapped for another of the same size", function()
      local e = cap.env()
      local id, dir = approved_session(e)
      local s = h.read_session(dir)
      local hash = s.operations[1].new.hash
      local blob = dir .. "/blobs/" .. hash
      if not fs.lstat(blob) then blob = blob .. ".z" end
      assert(fs.lstat(blob), "no blob at " .. blob)
      fs.remove(blob)
      h.write(dir .. "/blobs/" .. hash, "bad\n")  -- "new\n" was 4 bytes too
      local r = h.shannot({ "execute", id }, { home = e.home })
      assert.are_not.equal(0, r.code)
      assert.matches("blob is corrupt", r.stdout .. r.stderr)
      assert.are_not.equal("bad\n", fs.read_file(e.host .. "/a"))
      for _, name in ipairs(fs.readdir(e.host)) do  -- and no temp file is left beside it
        assert.falsy(name:find("^%.shannot%-"), name)
      end
    end)

    it("validates session.json field by field: one line naming the field, never a traceback", function()
      local cases = {
        { function(d) d.operations = "x" end, 'field operations must be a list' },
        { function(d) d.operations[1].new.mode = "0644" end, "field operations%[1%]%.new%.mode must be an integer" },
        { function(d) d.operations[2].kind = "format-disk" end, 'field operations%[2%]%.kind must be one of' },
        { function(d) d.operations[1].new.hash = "../../etc/passwd" end,
          "field operations%[1%]%.new%.hash must be a SHA%-256" },
        { function(d) d.history[1].at = 5 end, "field history%[1%]%.at must be a string" },
        { function(d) d.status = "done" end, "field status must be one of pending" },
        -- a kind without what it needs (issue 14.3, 14.5)
        { function(d) d.operations[1].kind = "rename" end,
          "field operations%[1%]%.from: a rename operation needs it" },
        { function(d) d.operations[2].kind = "query" end, "field operations%[2%]%.argv: a query operation needs it" },
        { function(d) d.dir_times = { { path = "/x", mtime_sec = "soon", mtime_nsec = 0 } } end,
          "field dir_times%[1%]%.mtime_sec must be an integer" },
        -- a path that leads elsewhere than it says (execute, rollback, shell)
        { function(d) d.operations[1].path = "/home/../../etc/passwd" end,
          "field operations%[1%]%.path must be a clean absolute path" },
        { function(d) d.operations[1].path = "etc/x" end, "field operations%[1%]%.path must be a clean" },
        { function(d) d.operations[1].path = "/etc//x" end, "field operations%[1%]%.path must be a clean" },
        { function(d) d.operations[2].from = "/a/./b" end, "field operations%[2%]%.from must be a clean" },
      }
      for _, c in ipairs(cases) do
        local e = cap.env()
        local id, dir = approved_session(e)
        edit(dir, c[1])
        -- an operation's field is named in operations.jsonl, where it is
        local where = c[2]:find("^field operations%%%[") and "operations%.jsonl:%d+: " or "session%.json: "
        for _, cmd in ipairs({ { "show", id }, { "execute", id }, { "rollback", id } }) do
          local r = h.shannot(cmd, { home = e.home })
          -- a rollback of a session never executed reads no operation
          local what = cmd[1] == "rollback" and where ~= "session%.json: " and "nothing to roll back" or
            (where .. c[2])
          assert.equal(what == "nothing to roll back" and 3 or 2, r.code, r.stderr)
          assert.is_true(h.one_line_error(r), r.stderr)
          assert.matches(what, r.stderr)
          -- nothing shown before the damage is found
          assert.equal("", r.stdout)
        end
      end
      -- a FIFO where session.json should be: refused at once, not waited on
      -- null where a field may be absent is absent (a fuzz run found show's traceback)
      for _, field in ipairs({ "new", "base" }) do
        local e = cap.env()
        local id, dir = approved_session(e)
        edit(dir, function(d) d.operations[1][field] = json.null end)
        for _, cmd in ipairs({ { "show", id }, { "show", id, "--diff" }, { "execute", id } }) do
          local r = h.shannot(cmd, { home = e.home })
          assert.is_true(r.code == 0 or r.code == 2 or r.code == 3, r.stderr)
          assert.falsy(r.stderr:find("internal error", 1, true), r.stderr)
        end
      end
      local e = cap.env()
      local id, dir = approved_session(e)
      assert(fs.remove(dir .. "/session.json"))
      sh('mkfifo "$1"', dir .. "/session.json")
      local r = h.shannot({ "show", id }, { home = e.home, timeout = 10 })
      assert.equal(2, r.code, r.stderr)
      assert.matches("session%.json: a fifo, not a session file", r.stderr)
    end)
  end)

  describe("policy holds at approve, and an approval can be taken back", function()
    local function conf(e, toml, policy)
      assert(fs.mkdir_p(e.home .. "/config/shannot"))
      if toml then h.write(e.home .. "/config/shannot/config.toml", toml) end
      if policy then h.write(e.home .. "/config/shannot/policy.lua", policy) end
    end

    it("denies at approve what a rule added after the capture denies, naming the rule", function()
      local e = cap.env()
      e:sh('echo old > "$1/a"')
      local _, _, s = e:run("echo new > a; echo new > b; systemctl restart shannot-spec")
      for _, op in ipairs(s.operations) do assert.are_not.equal("deny", op.decision) end
      conf(e, '[profile]\nalways_deny = ["systemctl restart shannot-spec"]\n',
        "return function(op) if op.path and op.path:match('/a$') then return 'deny', 'a is frozen' end end\n")
      local r = h.shannot({ "approve", s.id, "--yes" }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      assert.matches("write .-/a is denied now: denied at approval: a is frozen", r.stderr)
      assert.matches('exec systemctl restart shannot%-spec is denied now: denied at approval: matches always_deny ' ..
        '"systemctl restart shannot%-spec"', r.stderr)
      r = h.shannot({ "execute", s.id }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("old\n", fs.read_file(e.host .. "/a"))
      assert.equal("new\n", fs.read_file(e.host .. "/b"))
      local done = e:show(s.id)
      for _, op in ipairs(done.operations) do
        if op.path == e.host .. "/a" then assert.equal("denied at approval: a is frozen", op.reason) end
      end
      assert.equal(1, #done.results)  -- b only: neither a nor the deferred command
      assert.truthy(done.results[1].ok)
    end)

    it("refuses to approve while the policy cannot be evaluated", function()
      local e = cap.env()
      local _, _, s = e:run("echo new > b")
      conf(e, nil, "return function(op) error('broken\\27]0;title\\7\\27[2J rule') end\n")
      local r = h.shannot({ "approve", s.id, "--yes" }, { home = e.home })
      assert.equal(2, r.code, r.stderr)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("was not approved: the policy cannot be evaluated: .*broken\\x1b%]0;title\\x07\\x1b%[2J rule",
        r.stderr)
      assert.falsy(r.stderr:find("\27", 1, true))  -- nothing raw reaches the terminal
      assert.equal("pending", e:show(s.id).status)
    end)

    it("revoke returns an approved session to pending; execute refuses it until it is approved again", function()
      local e = cap.env()
      local _, _, s = e:run("echo new > b")
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      local r = h.shannot({ "revoke", s.id, "--reason", "second thoughts" }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      local now = e:show(s.id)
      assert.equal("pending", now.status)
      assert.is_nil(now.approval)
      assert.equal("review", now.operations[1].decision)
      r = h.shannot({ "execute", s.id }, { home = e.home })
      assert.equal(3, r.code)
      assert.matches("is pending: approve it first", r.stderr)
      assert.is_nil(fs.lstat(e.host .. "/b"))
      local log = h.shannot({ "audit", "--json", "--session", s.id }, { home = e.home })
      assert.matches("session_revoked", log.stdout)
      assert.matches("second thoughts", log.stdout)
      assert.equal(0, h.shannot({ "audit", "--verify" }, { home = e.home }).code)
      -- a denial stays a denial: one made at approval by a rule since removed
      conf(e, nil, "return function(op) if op.path and op.path:match('/c$') then return 'deny', 'no c' end end\n")
      local _, _, s2 = e:run("echo c > c; echo d > d")
      assert.equal(0, h.shannot({ "approve", s2.id, "--yes" }, { home = e.home }).code)
      os.remove(e.home .. "/config/shannot/policy.lua")
      assert.equal(0, h.shannot({ "revoke", s2.id }, { home = e.home }).code)
      assert.equal(0, h.shannot({ "approve", s2.id, "--yes", "--execute" }, { home = e.home }).code)
      assert.is_nil(fs.lstat(e.host .. "/c"))
      assert.equal("d\n", fs.read_file(e.host .. "/d"))
      r = h.shannot({ "revoke", s.id }, { home = e.home })  -- pending: nothing to revoke
      assert.equal(3, r.code)
      assert.matches("is pending; only an approved session can be revoked", r.stderr)
      assert.equal(0, h.shannot({ "approve", s.id, "--yes", "--execute" }, { home = e.home }).code)
      assert.equal("new\n", fs.read_file(e.host .. "/b"))
      r = h.shannot({ "revoke", s.id }, { home = e.home })
      assert.equal(3, r.code)
      assert.matches("is executed", r.stderr)
      assert.equal(2, h.shannot({ "revoke", "nonsense" }, { home = e.home }).code)
    end)

    it("audits an expiry found by prune, checkpoint list or sessions exactly once", function()
      local e = cap.env()
      conf(e, "[session]\nttl = 1\n")
      local ids = {}
      for i, cmd in ipairs({ { "checkpoint", "list" }, { "prune" }, { "sessions" } }) do
        local _, _, s = e:run("echo " .. i .. " > f" .. i)
        ids[i] = s.id
        require("shannot.core.sys").sleep(1.5)  -- each command is the first to find its session overdue
        assert.equal(0, h.shannot(cmd, { home = e.home }).code)
      end
      local log = require("shannot.json").decode(h.shannot({ "audit", "--json" }, { home = e.home }).stdout)
      for _, id in ipairs(ids) do
        local n = 0
        for _, ev in ipairs(log) do
          if ev.session_id == id and ev.event_type == "session_expired" then n = n + 1 end
        end
        assert.equal(1, n, id)
      end
      assert.equal(0, h.shannot({ "audit", "--verify" }, { home = e.home }).code)
    end)

    it("audits a Lua script's approve and execute, once each", function()
      local e = cap.env()
      local _, _, s = e:run("echo new > b")
      local script = h.write(e.dir .. "/go.lua", table.concat({
        'local session, apply = require("shannot.session"), require("shannot.session.apply")',
        'local s = assert(session.load(...))',
        'for _, op in ipairs(s.operations) do op.decision = "approve" end',
        'assert(session.transition(s, "approved", { note = "by a script" }))',
        'assert(apply.execute(s.id))', "" }, "\n"))
      local r = h.shannot({ "lua", script, s.id }, { home = e.home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("new\n", fs.read_file(e.host .. "/b"))
      local log = require("shannot.json").decode(h.shannot({ "audit", "--json", "--session", s.id },
        { home = e.home }).stdout)
      local seen = {}
      for _, ev in ipairs(log) do seen[#seen + 1] = ev.event_type end
      assert.same({ "session_created", "session_approved", "session_executed" }, seen)
      assert.equal(0, h.shannot({ "audit", "--verify" }, { home = e.home }).code)
    end)

    it("lets an approval lapse with the session's TTL", function()
      local e = cap.env()
      conf(e, "[session]\nttl = 2\n")
      local _, _, s = e:run("echo new > b")
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      require("shannot.core.sys").sleep(2.5)
      local r = h.shannot({ "execute", s.id }, { home = e.home })
      assert.equal(3, r.code, r.stderr)
      assert.matches("has expired", r.stderr)
      assert.is_nil(fs.lstat(e.host .. "/b"))
      local now = e:show(s.id)
      assert.equal("expired", now.status)
      assert.is_nil(now.approval)
      assert.matches("session_expired", h.shannot({ "audit", "--json", "--session", s.id }, { home = e.home }).stdout)
    end)
  end)

  describe("execute and rollback handle every shape", function()
    it("replaces a file and a symlink by directories with contents, and rolls back exactly", function()
      local e = cap.env()
      e:sh('echo old > "$1/f"; ln -s f "$1/l"; mkdir "$1/d"; echo k > "$1/d/k"')
      local original = cap.tree_state(e.host)
      local _, _, s = e:run("rm f l && rm -r d && mkdir f l && echo x > f/g && echo y > l/h && ln -s f d")
      assert.equal(0, h.shannot({ "approve", s.id, "--yes" }, { home = e.home }).code)
      local x = h.shannot({ "execute", s.id }, { home = e.home })
      assert.equal(0, x.code, x.stdout .. x.stderr)
      assert.equal("x\n", fs.read_file(e.host .. "/f/g"))
      assert.equal("y\n", fs.read_file(e.host .. "/l/h"))
      assert.equal("f", fs.readlink(e.host .. "/d"))
      local rb = h.shannot({ "rollback", s.id }, { home = e.home })
      assert.equal(0, rb.code, rb.stdout .. rb.stderr)
      assert.equal(original, cap.tree_state(e.host))
    end)

    it("lets prune remove what a killed run left: a session directory without a session", function()
      local e = cap.env()
      local dir = e.home .. "/data/shannot/sessions/20260101-000000-killed-abcd"
      assert(fs.mkdir_p(dir .. "/blobs"))
      h.write(dir .. "/blobs/x", "partial")
      sh('touch -d "2 hours ago" "$1"', dir)
      local fresh = e.home .. "/data/shannot/sessions/20260101-000001-running-abcd"
      assert(fs.mkdir_p(fresh))
      local p = h.shannot({ "prune" }, { home = e.home })
      assert.equal(0, p.code, p.stderr)
      assert.matches("removed 20260101%-000000%-killed%-abcd %(incomplete", p.stdout)
      assert.is_nil(fs.lstat(dir))
      assert.truthy(fs.lstat(fresh), "a session being made right now stays")
    end)
  end)
end)
