-- The system-wide config files (issue 18.1): $SHANNOT_SYSCONFDIR (for
-- /etc)/shannot/config.toml and $XDG_CONFIG_DIRS/shannot/config.toml are
-- read below the user's file, and named as sources like it.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

local function system_file(dir, text)
  assert(fs.mkdir_p(dir .. "/shannot"))
  return h.write(dir .. "/shannot/config.toml", text)
end

describe("system config files", function()
  local home, etc, xdg1, xdg2, env
  before_each(function()
    home, etc, xdg1, xdg2 = h.home(), h.tmpdir(), h.tmpdir(), h.tmpdir()
    env = { SHANNOT_SYSCONFDIR = etc, XDG_CONFIG_DIRS = xdg1 .. ":" .. xdg2 }
  end)
  after_each(h.cleanup)

  local function show()
    local r = h.shannot({ "config", "show", "--json" }, { home = home, env = env })
    assert.equal(0, r.code, r.stderr)
    return json.decode(r.stdout)
  end

  it("are read below the user's file, and named as the source", function()
    local sys = system_file(etc, "[session]\nttl = 100\n[audit]\nmax_files = 7\n")
    local doc = show()
    assert.equal(100, doc.config.session.ttl)
    assert.equal(sys .. ":2", doc.sources["session.ttl"])
    assert.equal(sys .. ":4", doc.sources["audit.max_files"])
    local user = h.write(home .. "/config/shannot/config.toml", "[session]\nttl = 200\n")
    doc = show()
    assert.equal(200, doc.config.session.ttl)  -- the user wins
    assert.equal(user .. ":2", doc.sources["session.ttl"])
    assert.equal(7, doc.config.audit.max_files)
    assert.equal(sys .. ":4", doc.sources["audit.max_files"])
    local check = h.shannot({ "config", "check" }, { home = home, env = env })
    assert.equal(0, check.code, check.stderr)
    assert.matches("audit.max_files = 7%s+# " .. sys:gsub("%p", "%%%0") .. ":4", check.stdout)
    assert.matches("ok: " .. sys:gsub("%p", "%%%0") .. ", ", check.stderr)
  end)

  it("order $XDG_CONFIG_DIRS as XDG does: the first one wins, all over /etc's", function()
    system_file(etc, "[session]\nttl = 100\n[audit]\nmax_files = 7\n")
    local second = system_file(xdg2, "[session]\nttl = 300\n[audit]\nmax_files = 8\n")
    local first = system_file(xdg1, "[session]\nttl = 400\n")
    local doc = show()
    assert.equal(400, doc.config.session.ttl)
    assert.equal(first .. ":2", doc.sources["session.ttl"])
    assert.equal(8, doc.config.audit.max_files)
    assert.equal(second .. ":4", doc.sources["audit.max_files"])
  end)

  it("grow the pattern lists the user's file adds to", function()
    local sys = system_file(etc, '[policy]\ndeny = ["/srv/system-only/**"]\n')
    h.write(home .. "/config/shannot/config.toml", '[policy]\ndeny = ["/srv/user-only/**"]\n')
    local doc = show()
    local where = {}
    for i, p in ipairs(doc.config.policy.deny) do where[p] = doc.sources["policy.deny"][i] end
    assert.equal(sys .. ":2", where["/srv/system-only/**"])
    assert.matches("config.toml:2$", where["/srv/user-only/**"])
  end)

  it("stop every command when malformed: one line naming the file and line", function()
    local sys = system_file(etc, "[session]\nttl = = 3\n")
    local r = h.shannot({ "sessions" }, { home = home, env = env })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches(sys:gsub("%p", "%%%0") .. ":2", r.stderr)
  end)

  it("kept from this user are skipped with a warning, not fatal", function()
    -- as another user: root reads anything, so run as nobody, in a tree
    -- nobody can walk (a checkout's build directory may be root's alone)
    local ok = require("shannot.core.sys").ids().euid == 0
    if not h.need(ok, "root (to run as another user)") then return end
    local top = assert(fs.mkdtemp("/tmp/shannot-sysconf-"))
    finally(function() fs.rmtree(top) end)
    local run = require("shannot.proc").run
    run({ "chmod", "755", top })
    home, etc = top .. "/home", top .. "/etc"
    assert(fs.mkdir_p(home .. "/config/shannot", 493))
    assert(fs.mkdir_p(home .. "/data", 493))
    run({ "chown", "-R", "65534:65534", home })
    local sys = system_file(etc, "[session]\nttl = 100\n")
    assert(fs.chmod(sys, 384))  -- 0600, root's
    run({ "chmod", "755", etc, etc .. "/shannot" })
    env.SHANNOT_SYSCONFDIR = etc
    local nobody = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--" }
    local r = h.shannot({ "sessions" }, { home = home, env = env, prefix = nobody })
    assert.equal(0, r.code, r.stderr)
    assert.matches("skipped a system config file: .*config.toml", r.stderr)
    r = h.shannot({ "config", "show", "--json" }, { home = home, env = env, prefix = nobody })
    assert.equal(0, r.code, r.stderr)
    assert.is_true(json.decode(r.stdout).config.session.ttl ~= 100)
  end)

  it("are listed by config path", function()
    local sys = system_file(etc, "")
    local r = h.shannot({ "config", "path" }, { home = home, env = env })
    assert.equal(0, r.code, r.stderr)
    assert.matches("system%s+" .. sys:gsub("%p", "%%%0") .. "\n", r.stdout)
    assert.matches("system%s+" .. xdg1:gsub("%p", "%%%0") .. "/shannot/config.toml %(not present%)", r.stdout)
  end)
end)
