-- `shannot shell ID`: a read-only sandbox showing a session's captured
-- state over the host; the host and the session stay as they were.
local fs = require("shannot.fs")
local json = require("shannot.json")
local cap = require("support.cap")
local h = require("support.h")
local tmux = require("support.tmux")

describe("shannot shell", function()
  local home, dir
  before_each(function()
    home = h.home()
    dir = "/srv/shannot-shell-spec-" .. tostring(require("shannot.core.sys").ids().pid)
  end)
  after_each(function() if dir then fs.rmtree(dir) end end)

  -- A session that rewrites keep.txt, deletes gone.txt, makes new/sub.
  local function captured()
    assert(fs.mkdir_p(dir, 493))
    h.write(dir .. "/keep.txt", "host\n")
    h.write(dir .. "/gone.txt", "gone\n")
    local r = h.shannot({ "run", "--json", "--", "sh", "-c",
      "echo captured-content > " .. dir .. "/keep.txt; rm " .. dir .. "/gone.txt; mkdir -p " .. dir .. "/new/sub" },
      { home = home })
    assert.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_table(doc.session, "nothing captured: " .. r.stdout .. r.stderr)
    return doc.session.id
  end

  it("shows the captured state over the host, read-only, and changes neither host nor session", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (a capture of /srv)") then return end
    local id = captured()
    local before = cap.tree_state(dir)
    local file = home .. "/data/shannot/sessions/" .. id .. "/session.json"
    local session_before = fs.read_file(file)
    local r = h.shannot({ "shell", id, "--", "sh", "-c", "cat " .. dir .. "/keep.txt; " ..
      "test -e " .. dir .. "/gone.txt || echo gone-absent; test -d " .. dir .. "/new/sub && echo dir-present; " ..
      "touch " .. dir .. "/x 2>/dev/null || echo read-only" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("captured-content\ngone-absent\ndir-present\nread-only\n", r.stdout)
    assert.equal(before, cap.tree_state(dir))
    assert.equal("host\n", fs.read_file(dir .. "/keep.txt"))
    assert.equal(session_before, fs.read_file(file))
    assert.same({}, fs.readdir(home .. "/data/shannot/staging") or {}, "the view was left behind")
    -- the command's failure is 1
    assert.equal(1, h.shannot({ "shell", id, "--", "false" }, { home = home }).code)
  end)

  it("opens an interactive shell ($SHELL) on a terminal", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (a capture of /srv)") then return end
    if not h.need(tmux.available(), "tmux") then return end
    local id = captured()
    local t = tmux.start(home, { "shell", id }, { name = "shell", env = { SHELL = "/bin/sh" } })
    local ok, e = pcall(function()
      t:wait(function(screen) return screen:find("\n?[#$] *\n") ~= nil or screen:find("^[#$] ") ~= nil end,
        "a prompt")
      t:type("cat " .. dir .. "/keep.txt; exit")
      t:keys("Enter")
      t:wait("shannot-exit=0")
      assert.truthy(t:screen():find("captured-content", 1, true))
    end)
    t:kill()
    assert(ok, e)
    assert.equal("host\n", fs.read_file(dir .. "/keep.txt"))
  end)

  it("shows a directory's new mode without copying it, and refuses a session that leads elsewhere", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (a capture of /srv)") then return end
    assert(fs.mkdir_p(dir .. "/tree/deep", 493))
    h.write(dir .. "/tree/deep/file", "x\n")
    local r = h.shannot({ "run", "--json", "--", "chmod", "700", dir .. "/tree" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    local id = json.decode(r.stdout).session.id
    r = h.shannot({ "shell", id, "--", "sh", "-c", "stat -c %a " .. dir .. "/tree; cat " .. dir .. "/tree/deep/file" },
      { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("700\nx\n", r.stdout)
    assert.equal(493, fs.stat(dir .. "/tree").mode & 4095)
    -- a hand-made session: a symlink to / it made, then a delete below it
    local victim = dir .. "/victim"
    h.write(victim, "keep me\n")
    r = h.shannot({ "run", "--json", "--", "sh", "-c", "ln -s / " .. dir .. "/link; echo y > " .. dir .. "/y" },
      { home = home })
    assert.equal(0, r.code, r.stderr)
    local bad = json.decode(r.stdout).session.id
    local sdir = home .. "/data/shannot/sessions/" .. bad
    local doc = h.read_session(sdir)
    for _, op in ipairs(doc.operations) do
      if op.path == dir .. "/y" then op.kind, op.path, op.new = "delete", dir .. "/link" .. victim, nil end
    end
    h.write_session(sdir, doc)
    r = h.shannot({ "shell", bad, "--", "true" }, { home = home })
    assert.is_true(r.code ~= 0, r.stderr)
    assert.matches("below a link it made; refused", r.stderr)
    assert.equal("keep me\n", fs.read_file(victim))
  end)

  it("refuses an unknown id and a missing one in one line, exit 2", function()
    for _, args in ipairs({ { "shell", "20990101-000000-x-abcd" }, { "shell" }, { "shell", "nope" } }) do
      local r = h.shannot(args, { home = home })
      assert.equal(2, r.code, r.stderr)
      assert.is_true(h.one_line_error(r), r.stderr)
    end
  end)
end)
