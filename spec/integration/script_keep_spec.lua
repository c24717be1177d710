-- Every session keeps the exact script it ran and why it was run (issue
-- 17.4): `run --why`, `show` and `show --script`, the script edited
-- during its run, a tampered store, the review UI's script view.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local store = require("shannot.store")
local h = require("support.h")
local cap = require("support.cap")
local tmux_mod = require("support.tmux")

local function run(e, args)
  local argv = { "run", "--json", "--profile", e.profile }
  table.move(args, 1, #args, #argv + 1, argv)
  local r = h.shannot(argv, { home = e.home })
  local doc = json.decode(r.stdout)
  return r, doc, doc and doc.session ~= json.null and doc.session.id or nil
end

describe("a session's script", function()
  local t
  after_each(function()
    if t then t:kill() end
    t = nil
    cap.cleanup()
    h.cleanup()
  end)

  it("is kept byte for byte with its hash, and --why beside it", function()
    local e = cap.env()
    local body = "#!/bin/sh\n# tab\there, a byte \255 and no newline at the end\necho kept > " .. e.host .. "/k"
    local file = h.write(e.dir .. "/deploy.sh", body)
    local r, _, id = run(e, { "--why", "the disk was full\nsecond line", file })
    assert.equal(0, r.code, r.stderr)
    local s = e:show(id)
    assert.equal(store.hash_string(body), s.script.sha256)
    assert.equal(#body, s.script.size)
    assert.equal(file, s.script.name)
    assert.equal("the disk was full\nsecond line", s.rationale)
    local shown = h.shannot({ "show", id, "--script" }, { home = e.home })
    assert.equal(0, shown.code, shown.stderr)
    assert.equal(body, shown.stdout)  -- not a terminal: the exact bytes
    local text = e:show(id, {})
    assert.matches("why      the disk was full\n         second line\n", text, 1, true)
    assert.matches("script   " .. file .. "  (" .. #body .. " B, sha256 " .. s.script.sha256:sub(1, 16), text, 1, true)
    -- the file may go: the session still has what ran
    assert(os.remove(file))
    assert.equal(body, h.shannot({ "show", id, "--script" }, { home = e.home }).stdout)
  end)

  it("is what ran, even when the file is edited during the run", function()
    local e = cap.env()
    local file = h.write(e.dir .. "/slow.sh", "sleep 1\necho original > " .. e.host .. "/out\n")
    local argv = { h.BIN, "run", "--json", "--profile", e.profile, file }
    local env = h.env({ HOME = e.home, XDG_CONFIG_HOME = e.home .. "/config", XDG_DATA_HOME = e.home .. "/data" })
    local p = assert(proc.spawn(argv, { env = env, stdin = "null", stdout = "pipe", stderr = "pipe" }))
    proc.run({ "sleep", "0.4" })
    h.write(file, "echo evil > " .. e.host .. "/out\n")  -- the sandbox already runs the private copy
    local r = p:communicate({})
    assert.equal(0, r.code, r.stderr)
    local id = json.decode(r.stdout).session.id
    assert.equal("sleep 1\necho original > " .. e.host .. "/out\n",
      h.shannot({ "show", id, "--script" }, { home = e.home }).stdout)
    local s = e:show(id)
    local op = cap.op_at(s, "/out")
    assert.equal(store.hash_string("original\n"), op.new.hash, json.encode(op))
  end)

  it("is the shell code of -c; a command has none, said in one line", function()
    local e = cap.env()
    local _, _, id = run(e, { "-c", "echo c > " .. e.host .. "/c" })
    assert.equal("echo c > " .. e.host .. "/c", h.shannot({ "show", id, "--script" }, { home = e.home }).stdout)
    local _, _, cmd_id = run(e, { "--", "sh", "-c", "echo d > " .. e.host .. "/d" })
    local r = h.shannot({ "show", cmd_id, "--script" }, { home = e.home })
    assert.equal(2, r.code)
    h.one_line_error(r)
    assert.matches("ran a command, not a script", r.stderr)
  end)

  it("refuses a --why too long or not UTF-8, and a script whose stored bytes were changed", function()
    local e = cap.env()
    for _, why in ipairs({ string.rep("w", 16 * 1024 + 1), "bad \255 byte" }) do
      local r = h.shannot({ "run", "--profile", e.profile, "--why", why, "-c", "true" }, { home = e.home })
      assert.equal(2, r.code)
      h.one_line_error(r)
    end
    local _, _, id = run(e, { "-c", "echo x > " .. e.host .. "/x" })
    local s = e:show(id)
    local blobs = e.home .. "/data/shannot/sessions/" .. id .. "/blobs"
    local path = blobs .. "/" .. s.script.sha256
    assert.is_truthy(fs.lstat(path), "blob layout changed: " .. path)
    assert(proc.run({ "chmod", "u+w", path }))
    h.write(path, "echo tampered")
    local r = h.shannot({ "show", id, "--script" }, { home = e.home })
    assert.equal(3, r.code, r.stdout .. r.stderr)
    h.one_line_error(r)
    assert.matches("its script cannot be read", r.stderr)
    assert.not_matches("tampered", r.stdout)
  end)

  it("and the reason are shown in the review UI (s)", function()
    if not tmux_mod.available() then return end
    local e = cap.env()
    local file = h.write(e.dir .. "/fix.sh", "echo fixed > " .. e.host .. "/f\n")
    local _, _, id = run(e, { "--why", "nginx fails to start", file })
    t = tmux_mod.start(e.home, { "approve" }, { name = "script" })
    t:wait(id)
    t:keys("Enter")
    t:wait("s script")
    t:keys("s")
    t:wait("nginx fails to start")
    t:wait("echo fixed > " .. e.host .. "/f")
  end)
end)
