-- The text an operation's approval digest is taken of must never change:
-- a session approved by one build is executed by the next.  The digests
-- of approval.canonical() for operations of every kind and odd values
-- (floats, booleans, tables, NUL and newlines in names, a state that is
-- not a table), as the rule has given them since sessions were sealed.
local approval = require("shannot.session.approval")
local store = require("shannot.store")

local H = string.rep("a", 64)
local CASES = {
  { "bc4c4960f418b0a9d10caa00440153aee82bc3b1f41ae2812231d03284b1f7bc",
    { id = 1, kind = "write", path = "/etc/app.conf", decision = "approve",
      new = { type = "file", mode = 420, uid = 0, gid = 0, hash = H, size = 12, mtime_sec = 1796132155,
        mtime_nsec = 5 },
      base = { exists = false } } },
  { "7eb1665b426df333767d504fc90b0a5064a8dcb2e9d5d4a95ba96d4a16f49e00",
    { id = 2, kind = "rename", path = "/srv/new", from = "/srv/old", decision = "review",
      new = { type = "dir", mode = 493 }, base = { exists = false },
      from_base = { exists = true, type = "dir", mode = 493, uid = 1000, gid = 1000, digest = H, count = 3 } } },
  { "f54a525598af21d647eda897a6af6ceb5b84eb05d8d013e86c669d886d414ce2",
    { id = 3, kind = "query", decision = "approve", argv = { "systemctl", "is-active", "web" },
      answer = { code = 3, sha256 = H } } },
  { "31387c430c28d40d9443411cd32d9682dcb1d5e61338e26e877dfaa8c97fa37b",
    { id = 4, kind = "exec", cwd = "/root", argv = { "systemctl", "restart", "web", "" } } },
  { "7f73fd17b991b652de5771f911e1358159942cb72ba7cedc755390845b7ab9bf",
    { id = 5, kind = "write", path = "/tmp/é\0x\n=:", decision = "deny",
      new = { type = "file", mode = 3.0, size = 0.5, exists = true, link = {}, hardlink = "/tmp/h",
        xattrs = { ["user.b"] = "6869", ["user.a"] = "" } },
      base = "not a table" } },
  { "c2e28074e257e32f75e813895ab7fa4254e3d2a3e9a2307c4bd045407ead25fb",
    { id = 6.5, kind = false, path = -0.0 } },
}

describe("approval.canonical", function()
  it("gives the digests it always gave, for every kind of operation and odd values", function()
    for i, case in ipairs(CASES) do
      assert.equal(case[1], store.hash_string(approval.canonical(case[2])), "case " .. i)
      assert.equal(case[1], approval.op_digest(case[2]), "case " .. i)
    end
  end)

  it("writes each field as NAME=TYPE:LENGTH:TEXT, one a line", function()
    local text = approval.canonical({ id = 7, kind = "chmod", path = "/a", new = { mode = 384 } })
    assert.matches("^id=n:1:7\nkind=s:5:chmod\npath=s:2:/a\ndecision=n:1:%-\ncwd=n:1:%-\n", text)
    assert.matches("\nnew%.mode=n:3:384\n", text)
    assert.matches("\nbase=n:1:%-\nargc=n:1:0$", text)
  end)
end)
