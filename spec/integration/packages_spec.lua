-- Real programs written by others through run -> approve -> execute ->
-- rollback (issue 14.9): dpkg installs a package with the default
-- profile, the host then has it exactly as dpkg -i would leave it, and
-- rollback takes it away again; --network lets a run reach the network.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")
local sshd = require("support.sshd")

local PKG = "shannot-spec-hello"

-- A tiny package: a script in /usr/bin and a file in /usr/share.
local function build_deb(dir)
  local root = dir .. "/pkg"
  assert(fs.mkdir_p(root .. "/DEBIAN"))
  assert(fs.mkdir_p(root .. "/usr/bin"))
  assert(fs.mkdir_p(root .. "/usr/share/" .. PKG))
  h.write(root .. "/DEBIAN/control", "Package: " .. PKG .. "\nVersion: 1.0\nArchitecture: all\n" ..
    "Maintainer: shannot specs <specs@example.invalid>\nDescription: a package the specs install\n")
  h.write(root .. "/usr/bin/" .. PKG, "#!/bin/sh\necho hello\n")
  assert(fs.chmod(root .. "/usr/bin/" .. PKG, 493))
  h.write(root .. "/usr/share/" .. PKG .. "/README", "hello\n")
  local r = assert(proc.run({ "dpkg-deb", "--root-owner-group", "--build", root, dir .. "/hello.deb" }))
  assert.equal(0, r.code, r.stderr)
  return dir .. "/hello.deb"
end

local function installed()
  local r = assert(proc.run({ "dpkg-query", "-W", "-f", "${Status}", PKG }))
  return r.code == 0 and r.stdout == "install ok installed"
end

describe("packages", function()
  after_each(h.cleanup)

  it("dpkg -i with the default profile: execute installs exactly that, rollback removes it", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (dpkg writes /usr and /var/lib/dpkg)") then
      return
    end
    if not h.need(fs.which("dpkg", os.getenv("PATH")) ~= nil, "dpkg") then return end
    assert.is_false(installed(), PKG .. " is installed before the spec")
    local home = h.tmpdir()
    local deb = build_deb(h.tmpdir())
    local status_before = fs.read_file("/var/lib/dpkg/status", 64 * 1024 * 1024)
    local r = h.shannot({ "run", "--json", "--", "dpkg", "-i", deb }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.is_false(installed(), "the capture installed it on the host")
    assert.is_nil(fs.lstat("/usr/bin/" .. PKG))
    local id = json.decode(r.stdout).session.id
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(0, x.code, x.stdout .. x.stderr)
    assert.is_true(installed(), "dpkg -s does not say installed after execute")
    assert.equal("hello\n", assert(proc.run({ "/usr/bin/" .. PKG })).stdout)
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.is_false(installed(), "still installed after rollback")
    assert.is_nil(fs.lstat("/usr/bin/" .. PKG))
    assert.is_nil(fs.lstat("/usr/share/" .. PKG))
    assert.equal(status_before, fs.read_file("/var/lib/dpkg/status", 64 * 1024 * 1024))
  end)

  it("--network lets the sandbox reach the network, and says what that means", function()
    if not h.need(sshd.available(), "sshd (a listener to reach)") then return end
    local srv = sshd.start()
    local finally_stop = srv.stop
    local ok, e = pcall(function()
      local probe = "exec 3<>/dev/tcp/127.0.0.1/" .. srv.port .. " && head -c 7 <&3"
      local home = h.tmpdir()
      local cut = h.shannot({ "run", "--profile", "readonly", "--", "bash", "-c", probe }, { home = home })
      assert.are_not.equal(0, cut.code)
      local r = h.shannot({ "run", "--network", "--profile", "readonly", "--", "bash", "-c", probe },
        { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.equal("SSH-2.0", r.stdout)
      assert.matches("%-%-network: the sandbox reaches the network", r.stderr)
    end)
    finally_stop()
    assert(ok, e)
  end)
end)
