-- Fleet targets on the command line (issue 16.1): remote group
-- add|list|remove editing config.toml, and every bad input refused in one
-- line before anything runs.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

describe("fleet targets", function()
  local home, file
  before_each(function()
    home = h.home()
    file = home .. "/config/shannot/config.toml"
  end)
  after_each(function() h.cleanup() end)

  local function shannot(args) return h.shannot(args, { home = home }) end

  it("remote group add, list and remove edit only the group's table", function()
    h.write(file, "# my remotes\n[remotes.web1]\nhost = \"10.0.0.1\" # the first\n")
    local r = shannot({ "remote", "group", "add", "web", "web1", "root@10.0.0.2:2222" })
    assert.equal(0, r.code, r.stderr)
    r = shannot({ "remote", "group", "add", "edge", "@web", "web1", "deploy@10.0.0.3" })
    assert.equal(0, r.code, r.stderr)
    local data = fs.read_file(file)
    assert.matches('^# my remotes\n%[remotes.web1%]\nhost = "10.0.0.1" # the first\n', data)
    assert.matches('%[groups.web%]\nmembers = %["web1", "root@10.0.0.2:2222"%]', data)
    local list = json.decode(shannot({ "remote", "group", "list", "--json" }).stdout)
    assert.equal("edge", list[1].name)
    -- web1 through @web and directly: once
    assert.same({ "web1", "root@10.0.0.2:2222", "deploy@10.0.0.3" }, list[1].hosts)
    local text = shannot({ "remote", "group", "list" }).stdout
    assert.matches("edge%s+3 hosts: web1 root@10.0.0.2:2222 deploy@10.0.0.3", text)
    -- a cycle is refused, the file untouched
    r = shannot({ "remote", "group", "add", "web", "@edge" })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches('group "[%w]+" includes itself %(', r.stderr)
    assert.equal(data, fs.read_file(file))
    -- a group others name stays
    r = shannot({ "remote", "group", "remove", "web" })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.equal(0, shannot({ "remote", "group", "remove", "edge", "@web" }).code)
    assert.equal(0, shannot({ "remote", "group", "remove", "web" }).code)
    assert.equal(0, shannot({ "remote", "group", "remove", "edge" }).code)
    assert.equal('# my remotes\n[remotes.web1]\nhost = "10.0.0.1" # the first\n', fs.read_file(file))
  end)

  it("refuses bad targets and inventories in one line, before anything runs", function()
    h.write(file, "[groups.a]\nmembers = [\"@b\"]\n[groups.b]\nmembers = [\"@a\"]\n")
    local r = shannot({ "run", "--target", "@a", "--", "true" })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches('group "a" includes itself %(a %-> b %-> a%)', r.stderr)
    h.write(file, "")
    local cases = {
      { "bad.ini", "[web]\nw1 ansible_port=22\n[web:children\n", "bad.ini:3: a section header" },
      { "bad.ini", "[web]\nw1 ansible_host=\"x\n", "bad.ini:2: an unclosed quote" },
      { "loop.ini", "[a:children]\nb\n[b:children]\na\n", 'group "a" includes itself' },
      { "bad.yml", "all:\n  hosts:\n    w1: [\n", "bad.yml:3: did not find expected" },
      { "bad.yml", "all:\n  hostz:\n    w1:\n", 'group "all": unknown key "hostz"' },
    }
    for _, c in ipairs(cases) do
      local inv = h.write(home .. "/" .. c[1], c[2])
      r = shannot({ "run", "--inventory", inv, "--target", "@all", "--", "true" })
      assert.equal(2, r.code, c[2])
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches(c[3], r.stderr, 1, true)
    end
    r = shannot({ "run", "--target", "@nope", "--", "true" })
    assert.equal(2, r.code)
    assert.matches('unknown group "nope"', r.stderr)
    r = shannot({ "run", "--target", "a,b", "--limit", "c*", "--", "true" })
    assert.equal(2, r.code)
    assert.matches("no host left", r.stderr)
    assert.is_nil(fs.stat(home .. "/data/shannot/runs"))
  end)
end)

describe("a fleet run record in the store", function()
  after_each(function() h.cleanup() end)

  it("is read as hostile: a bad record, a link or a stranger's session is one line, exit 2", function()
    local home = h.home()
    local id = "20260101-000000-deploy-abcd"
    local dir = home .. "/data/shannot/runs/" .. id
    assert(fs.mkdir_p(dir))
    local cases = {
      { "not json", "run.json" },
      { '{"id":"' .. id .. '","created_at":"x","targets":"@web","command":[],"hosts":[{"name":"a","state":"owned"}]}',
        "hosts[1].state must be one of" },
      { '{"id":"' .. id .. '","created_at":"x","targets":"@web","command":[],' ..
        '"hosts":[{"name":"a","state":"captured","session":"../../etc"}]}', "hosts[1].session must be a session id" },
      { '{"id":"20260101-000000-other-abcd","created_at":"x","targets":"@web","command":[],"hosts":[]}',
        "says its id is" },
    }
    for _, c in ipairs(cases) do
      h.write(dir .. "/run.json", c[1])
      for _, args in ipairs({ { "show", id }, { "approve", id, "--all", "--yes" }, { "execute", id },
        { "rollback", id } }) do
        local r = h.shannot(args, { home = home })
        assert.equal(2, r.code, c[1])
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches(c[2], r.stderr, 1, true)
      end
    end
    os.remove(dir .. "/run.json")
    assert(fs.symlink("/etc/passwd", dir .. "/run.json"))
    local r = h.shannot({ "show", id }, { home = home })
    assert.equal(2, r.code)
    assert.matches("not a run file", r.stderr, 1, true)
    -- a session the record names that belongs to no such run
    os.remove(dir .. "/run.json")
    local sid = "20260101-000000-deploy-0001"
    h.write(dir .. "/run.json", '{"id":"' .. id .. '","created_at":"x","targets":"@web","command":[],' ..
      '"hosts":[{"name":"a","state":"captured","session":"' .. sid .. '"}]}')
    local sdir = home .. "/data/shannot/sessions/" .. sid
    assert(fs.mkdir_p(sdir))
    h.write(sdir .. "/session.json", json.encode({ id = sid, status = "pending", created_at = "2026-01-01T00:00:00Z",
      expires_at = "2099-01-01T00:00:00Z", operations = json.array({}) }))
    r = h.shannot({ "show", id }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches("does not belong to run " .. id, r.stdout, 1, true)
    assert.matches("session missing: a", r.stdout, 1, true)
  end)
end)
