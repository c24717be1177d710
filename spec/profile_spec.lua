-- shannot.profile: schema checks with file names in messages, defaults, the
-- bwrap argument list and allowed_commands.
local profile = require("shannot.sandbox.profile")
local glob = require("shannot.glob")
local h = require("support.h")

local function parse(text)
  return profile.parse(text, "p.json", "/profiles")
end

local function index_of(list, value, from)
  for i = from or 1, #list do
    if list[i] == value then return i end
  end
end

describe("profile", function()
  it("loads every built-in profile", function()
    for _, name in ipairs({ "minimal", "readonly", "diagnostics", "systemd", "system" }) do
      local p = assert(profile.load(name))
      assert.equal(name, p.name)
      assert.is_true(p.builtin)
    end
  end)

  it("fills the earlier shannot defaults", function()
    local p = assert(parse('{"name": "x", "binds": [{"source": "/usr", "target": "/usr"}]}'))
    assert.is_true(p.network_isolation)
    assert.is_true(p.binds[1].read_only)
    assert.is_true(p.binds[1].create_target)
    assert.same({}, p.allowed_commands)
  end)

  it("accepts null for optional fields, as older profiles wrote them", function()
    assert.truthy(parse('{"name": "x", "seccomp_profile": null, "description": null}'))
  end)

  it("resolves a relative seccomp_profile against the profile's directory", function()
    assert.equal("/profiles/f.bpf", parse('{"name": "x", "seccomp_profile": "f.bpf"}').seccomp_profile)
  end)

  local bad = {
    { "{", "p.json:1:2: expected" },
    { '{"name": "x",\n "binds": [}', "p.json:2:" },
    { "[]", "a profile must be a JSON object" },
    { '{"description": "no name"}', 'field "name" is required' },
    { '{"name": "x", "network_isolaton": false}',
      'unknown field "network_isolaton" (did you mean "network_isolation"?)' },
    { '{"name": "x", "network_isolation": "no"}', 'field "network_isolation" must be true or false' },
    { '{"name": "x", "binds": [{"source": "usr", "target": "/usr"}]}',
      'field "binds" item 1 field "source" must be an absolute path' },
    { '{"name": "x", "binds": [{"source": "/a/../etc", "target": "/b"}]}', 'must not contain ".."' },
    { '{"name": "x", "binds": [{"sorce": "/a", "target": "/b"}]}', 'unknown field "sorce" (did you mean "source"?)' },
    { '{"name": "x", "binds": [{"target": "/b"}]}', 'a bind has no "source"' },
    { '{"name": "x", "allowed_commands": "ls"}', 'field "allowed_commands" must be a list' },
    { '{"name": "x", "environment": {"A B": "1"}}', 'invalid variable name "A B"' },
    { '{"name": "x", "environment": {"A": 1}}', '"A" must be a string' },
    { '{"name": "x", "tmpfs_paths": ["tmp"]}', 'must be an absolute path' },
  }
  for _, case in ipairs(bad) do
    it("rejects " .. case[1]:gsub("\n", " "), function()
      local p, e = parse(case[1])
      assert.is_nil(p)
      assert.equal(2, e.exit)
      local msg = e.message
      assert.truthy(msg:find("p.json", 1, true), msg)
      assert.truthy(msg:find(case[2], 1, true), msg)
    end)
  end

  it("rejects unknown names with a suggestion, and path tricks in names", function()
    local p, e = profile.load("systme")
    assert.is_nil(p)
    assert.matches('did you mean "system"', e.message)
    assert.equal(2, e.exit)
    assert.is_nil(profile.load(".hidden"))
  end)

  describe("bwrap arguments", function()
    local function args_for(text, ctx)
      return require("shannot.sandbox.bwrap").args(assert(parse(text)), ctx or { cwd = "/srv/project" }, "local")
    end

    it("gives a read-only root, fresh /dev /proc /tmp /run and no capabilities", function()
      local a = args_for('{"name": "x"}')
      local s = table.concat(a, " ")
      assert.truthy(s:find("--ro-bind / / --dev /dev --proc /proc", 1, true))
      assert.truthy(s:find("--ro-bind-try /proc/sys /proc/sys", 1, true))
      assert.truthy(s:find("--tmpfs /tmp --tmpfs /run --tmpfs /var/run", 1, true))
      assert.truthy(s:find("--unshare-ipc --unshare-pid --unshare-uts --unshare-cgroup-try --unshare-net " ..
        "--cap-drop ALL --die-with-parent --new-session --clearenv", 1, true))
      assert.equal("/srv/project", a[index_of(a, "--chdir") + 1])
    end)

    it("shares the network only when the profile turns isolation off", function()
      assert.is_nil(index_of(args_for('{"name": "x", "network_isolation": false}'), "--unshare-net"))
    end)

    it("mounts binds under /run after the fresh /run, and drops /proc binds", function()
      local a = args_for([[{"name": "x", "binds": [
        {"source": "/usr", "target": "/usr"},
        {"source": "/run/log", "target": "/run/log", "optional": true},
        {"source": "/proc", "target": "/proc", "read_only": false},
        {"source": "/srv", "target": "/srv", "read_only": false}]}]])
      assert.falsy(table.concat(a, " "):find("--ro-bind / /", 1, true))
      local run_tmpfs = index_of(a, "/run")
      assert.truthy(run_tmpfs < index_of(a, "/run/log"))
      assert.equal("--ro-bind-try", a[index_of(a, "/run/log") - 1])
      assert.equal("--bind", a[index_of(a, "/srv") - 1])
      assert.equal(1, #profile.ignored_binds(assert(parse(
        '{"name": "x", "binds": [{"source": "/proc", "target": "/proc"}]}'))))
      assert.equal("/", a[index_of(a, "--chdir") + 1])
    end)

    it("sets only the profile's environment, expanding ${VAR}", function()
      local a = args_for('{"name": "x", "environment": {"HOME": "${MYHOME}", "A": "b${NOPE}c"}}',
        { getenv = function(k) return k == "MYHOME" and "/home/me" or nil end })
      local s = table.concat(a, " ")
      assert.truthy(s:find("--clearenv --setenv A bc --setenv HOME /home/me", 1, true))
      local unset = table.concat(args_for('{"name": "x", "environment": {"U": "${NOPE}", "E": ""}}',
        { getenv = function() return nil end }), " ")
      assert.truthy(unset:find("--clearenv --setenv E  --add-seccomp-fd FD --chdir", 1, true), unset)
    end)

    it("stacks the seccomp filters (never --seccomp, which would replace) and passes additional args last", function()
      local a = args_for('{"name": "x", "seccomp_profile": "/f.bpf", "additional_args": ["--hostname", "h"]}',
        { seccomp_fds = { 8, 9 } })
      assert.truthy(table.concat(a, " "):find("--add-seccomp-fd 8 --add-seccomp-fd 9", 1, true))
      assert.is_nil(index_of(a, "--seccomp"))
      assert.same({ "--hostname", "h" }, { a[#a - 1], a[#a] })
    end)
  end)

  describe("allowed_commands", function()
    local p = assert(parse('{"name": "x", "allowed_commands": ["ls", "/usr/bin/cat", "/usr/sbin/*stat"]}'))
    it("matches bare names and resolved paths", function()
      assert.is_true(profile.allows(p, "ls", "/usr/bin/ls"))
      assert.is_true(profile.allows(p, "cat", "/usr/bin/cat"))
      assert.is_true(profile.allows(p, "/usr/bin/cat"))
      assert.is_true(profile.allows(p, "/usr/sbin/vmstat"))
    end)
    it("never admits a path by its basename", function()
      assert.is_false(profile.allows(p, "/tmp/evil/ls"))
      assert.is_false(profile.allows(p, "cat", "/tmp/cat"))
      assert.is_false(profile.allows(p, "rm", "/usr/bin/rm"))
      assert.is_false(profile.allows(p, "/usr/sbin/x/vmstat"))
    end)
    it("allows anything when the list is empty", function()
      assert.is_true(profile.allows(assert(parse('{"name": "x"}')), "/anything"))
    end)
  end)

  it("globs follow fnmatch with FNM_PATHNAME", function()
    assert.is_true(glob.match("/usr/bin/*", "/usr/bin/ls"))
    assert.is_false(glob.match("/usr/bin/*", "/usr/bin/x/ls"))
    assert.is_true(glob.match("l?", "ls"))
    assert.is_true(glob.match("[a-c]at", "bat"))
    assert.is_false(glob.match("[!a-c]at", "bat"))
    assert.is_true(glob.match("a.b", "a.b"))
    assert.is_false(glob.match("a.b", "axb"))
    assert.is_true(glob.match("50%", "50%"))
  end)

  it("says allowed_commands is a convenience, not a boundary (awk system() runs other programs)", function()
    local r = h.shannot({ "profile", "--help" })
    assert.matches("allowed_commands is a convenience, not a boundary", r.stdout)
    assert.matches("awk's system%(%)", r.stdout)
    -- and it is so: a listed awk starts an unlisted program
    local dir = h.tmpdir()
    finally(h.cleanup)
    h.write(dir .. "/p.json", '{"name": "awk-only", "allowed_commands": ["awk"]}')
    local run = h.shannot({ "run", "--profile", dir .. "/p.json", "--", "awk", 'BEGIN { system("id -u") }' })
    assert.equal(0, run.code, run.stderr)
    assert.matches("^%d+\n$", run.stdout)
    local refused = h.shannot({ "run", "--profile", dir .. "/p.json", "--", "id" })
    assert.equal(2, refused.code)
  end)
end)
