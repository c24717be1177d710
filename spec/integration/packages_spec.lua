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

local function installed(name)
  local r = assert(proc.run({ "dpkg-query", "-W", "-f", "${Status}", name or PKG }))
  return r.code == 0 and r.stdout == "install ok installed"
end

local DAEMON = "shannot-spec-daemon"

-- A package that ships a service the way Debian's daemons do: a unit, an
-- init script, and a postinst enabling both and starting it.
local function build_daemon_deb(dir)
  local root = dir .. "/daemon"
  for _, d in ipairs({ "/DEBIAN", "/lib/systemd/system", "/etc/init.d" }) do assert(fs.mkdir_p(root .. d)) end
  h.write(root .. "/DEBIAN/control", "Package: " .. DAEMON .. "\nVersion: 1.0\nArchitecture: all\n" ..
    "Maintainer: shannot specs <specs@example.invalid>\nDescription: a service the specs install\n")
  h.write(root .. "/DEBIAN/postinst", "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n" ..
    "  deb-systemd-helper enable " .. DAEMON .. ".service\n" ..
    "  update-rc.d " .. DAEMON .. " defaults\n" ..
    "  systemctl enable " .. DAEMON .. ".service\n" ..
    "  invoke-rc.d " .. DAEMON .. " start || true\nfi\n")
  assert(fs.chmod(root .. "/DEBIAN/postinst", 493))
  h.write(root .. "/lib/systemd/system/" .. DAEMON .. ".service",
    "[Unit]\nDescription=spec daemon\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
  h.write(root .. "/etc/init.d/" .. DAEMON, "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: " .. DAEMON ..
    "\n# Required-Start:\n# Required-Stop:\n# Default-Start: 2 3 4 5\n# Default-Stop: 0 1 6\n" ..
    "# Short-Description: spec daemon\n### END INIT INFO\nexit 0\n")
  assert(fs.chmod(root .. "/etc/init.d/" .. DAEMON, 493))
  local r = assert(proc.run({ "dpkg-deb", "--root-owner-group", "--build", root, dir .. "/daemon.deb" }))
  assert.equal(0, r.code, r.stderr)
  return dir .. "/daemon.deb"
end

-- Every systemd or rc?.d link that names the daemon, anywhere in /etc.
local function service_links(name)
  local r = assert(proc.run({ "sh", "-c", "find /etc/systemd /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d " ..
    "/etc/rc4.d /etc/rc5.d /etc/rc6.d /var/lib/systemd/deb-systemd-helper-enabled -name '*" .. (name or DAEMON) ..
    "*' 2>/dev/null | sort" }))
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- The deferred commands of a session, as command lines.
local function deferred_of(id, home)
  local s = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout)
  local out = {}
  for _, op in ipairs(s.operations) do
    if op.kind == "exec" then out[#out + 1] = table.concat(op.argv, " ") end
  end
  return out
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
    local deb = build_deb(assert(h.visible_dir()))  -- where the sandbox sees it (not under a fresh /tmp)
    local status_before = fs.read_file("/var/lib/dpkg/status", 64 * 1024 * 1024)
    local r = h.shannot({ "run", "--json", "--", "dpkg", "-i", deb }, { home = home })
    assert.equal(0, r.code, r.stdout .. r.stderr)
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

  it("a service's enable runs in the sandbox and is captured; only its start is deferred; rollback leaves " ..
    "no link behind (issue 14.4)", function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (dpkg writes /usr and /var/lib/dpkg)") then
      return
    end
    for _, tool in ipairs({ "dpkg", "systemctl", "deb-systemd-helper", "update-rc.d" }) do
      if not h.need(fs.which(tool, "/usr/sbin:/usr/bin:/sbin:/bin") ~= nil, tool) then return end
    end
    assert.is_false(installed(DAEMON))
    assert.same({}, service_links())
    local home = h.tmpdir()
    local deb = build_daemon_deb(assert(h.visible_dir()))
    local r = h.shannot({ "run", "--json", "--", "dpkg", "-i", deb }, { home = home })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.same({}, service_links(), "the capture enabled it on the host")
    local id = json.decode(r.stdout).session.id
    local deferred = deferred_of(id, home)
    assert.same({ "invoke-rc.d " .. DAEMON .. " start" }, deferred)
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(0, x.code, x.stdout .. x.stderr)
    assert.is_true(installed(DAEMON))
    local links = table.concat(service_links(), "\n")
    assert.matches("multi%-user%.target%.wants/" .. DAEMON:gsub("%-", "%%-") .. "%.service", links)
    assert.matches("/etc/rc2%.d/S%d%d" .. DAEMON:gsub("%-", "%%-"), links)
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.is_false(installed(DAEMON))
    assert.same({}, service_links())
  end)

  -- What a package install touches, as a full manifest: contents where
  -- they are small enough to read every run, sizes and times in /usr.
  local function system_manifest()
    local manifest = require("support.manifest")
    local parts = {}
    for _, root in ipairs({ "/etc", "/var/lib/dpkg", "/var/lib/systemd", "/var/lib/apt/extended_states",
      "/var/cache/apt", "/var/log" }) do
      if fs.lstat(root) then parts[#parts + 1] = root .. "\n" .. manifest.text(root, { dir_times = true }) end
    end
    parts[#parts + 1] = "/usr\n" .. manifest.text("/usr", { dir_times = true, contents = false })
    return table.concat(parts, "\n")
  end

  it("apt-get install --network of a real daemon from Debian's archive (memcached): execute installs it " ..
    "with its service links, only its start deferred; rollback leaves the system as it was (issue 14.4, 14.9)",
    function()
    if not h.need(require("shannot.core.sys").ids().euid == 0, "root (apt-get installs into /usr and /etc)") then
      return
    end
    local pkg = "memcached"
    local policy = assert(proc.run({ "apt-cache", "policy", pkg }))
    if not h.need(policy.stdout:match("Candidate: %d") ~= nil, pkg .. " in the apt lists (apt-get update)") then
      return
    end
    if not h.need(not installed(pkg), pkg .. " not installed before the spec") then return end
    local home = h.tmpdir()
    local before = system_manifest()
    local r = h.shannot({ "run", "--network", "--json", "--", "apt-get", "install", "-y", pkg },
      { home = home, timeout = 600 })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.is_false(installed(pkg), "the capture installed it on the host")
    assert.same({}, service_links(pkg), "the capture enabled it on the host")
    local id = json.decode(r.stdout).session.id
    local deferred = deferred_of(id, home)
    assert.equal(1, #deferred, table.concat(deferred, "\n"))
    assert.matches("invoke%-rc%.d .*memcached start$", deferred[1])
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = home }).code)
    local x = h.shannot({ "execute", id }, { home = home })
    assert.equal(0, x.code, x.stdout .. x.stderr)
    -- the deferred start ran: the daemon is up; a person would stop it
    proc.run({ "/etc/init.d/" .. pkg, "stop" })
    assert.is_true(installed(pkg), "dpkg -s does not say installed after execute")
    local links = table.concat(service_links(pkg), "\n")
    assert.matches("multi%-user%.target%.wants/memcached%.service", links)
    assert.matches("/etc/rc2%.d/S%d%dmemcached", links)
    local rb = h.shannot({ "rollback", id }, { home = home })
    assert.equal(0, rb.code, rb.stdout .. rb.stderr)
    assert.is_false(installed(pkg), "still installed after rollback")
    assert.same({}, service_links(pkg))
    assert.same({}, require("support.manifest").changed(before, system_manifest()))
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
