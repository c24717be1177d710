-- Fleet targets (issue 16.1, first part): groups of the config expanded,
-- Ansible's --limit patterns, and INI inventories read as Ansible reads
-- them.  Pure functions: no host is contacted.
local targets = require("shannot.fleet.targets")
local inventory = require("shannot.fleet.inventory")

describe("fleet targets", function()
  local groups = {
    web = { members = { "web1", "web2", "deploy@web3:2222" } },
    db = { members = { "db1", "web2" } },
    prod = { members = { "@web", "db", "web1" } },  -- a group by @name or by name; web1 twice
  }

  it("expands groups, lists and names, each host once, in order", function()
    assert.same({ "web1", "web2", "deploy@web3:2222" }, targets.expand("@web", groups))
    assert.same({ "web1", "web2", "deploy@web3:2222", "db1" }, targets.expand("@prod", groups))
    assert.same({ "a", "b" }, targets.expand("a, b,a", groups))
    assert.same({ "db1", "web2", "x" }, targets.expand("@db,x,web2", groups))
  end)

  it("refuses an unknown group and a group that includes itself, in one line", function()
    local _, e = targets.expand("@nope", groups)
    assert.matches('unknown group "nope"', e.message)
    local loop = { a = { members = { "h1", "@b" } }, b = { members = { "c" } }, c = { members = { "a" } } }
    _, e = targets.expand("@a", loop)
    assert.equal('group "a" includes itself (a -> b -> c -> a)', e.message)
    _, e = targets.expand("@s", { s = { members = { "@s" } } })
    assert.equal('group "s" includes itself (s -> s)', e.message)
    assert.is_nil(targets.expand("", groups))
  end)

  it("limits as Ansible spells it: names, globs, groups, unions, & and !", function()
    local hosts = { "web1", "web2", "web10", "db1", "cache" }
    local g = { dbs = { members = { "db1" } }, even = { members = { "web2", "web10" } } }
    assert.same({ "web1", "web2", "web10" }, targets.limit("web*", hosts, g))
    assert.same({ "web1", "db1" }, targets.limit("web1:dbs", hosts, g))
    assert.same({ "web1", "db1" }, targets.limit("web1,db1", hosts, g))
    assert.same({ "web1" }, targets.limit("web*:!even", hosts, g))
    assert.same({ "web2", "web10" }, targets.limit("web*:&even", hosts, g))
    assert.same({ "web1", "web2", "web10", "db1" }, targets.limit("!cache", hosts, g))
    assert.same({}, targets.limit("nosuch", hosts, g))
  end)
end)

describe("an INI inventory", function()
  local INI = [[
# production
solo ansible_host=10.0.0.9

[web]
web1 ansible_host=10.0.0.1 ansible_port=2222
web2 ansible_user="deploy user"
[web:vars]
ansible_user=ops
ansible_ssh_private_key_file=/keys/web

[db]
db1

[prod:children]
web
db

[prod:vars]
ansible_user=root
ansible_port=22
]]

  it("reads groups, children, vars, all and ungrouped", function()
    local inv = assert(inventory.parse_ini(INI, "hosts.ini"))
    assert.same({ "solo", "web1", "web2", "db1" }, inv.groups.all.hosts)
    assert.same({ "solo" }, inv.groups.ungrouped.hosts)
    assert.same({ "web1", "web2", "db1" }, inventory.hosts_of(inv, "prod"))
    -- a host's vars over its group's, a child group's over its parent's
    assert.same({ name = "web1", host = "10.0.0.1", port = 2222, user = "ops", key_file = "/keys/web" },
      inventory.target(inv, "web1"))
    assert.same({ name = "web2", host = "web2", port = 22, user = "deploy user", key_file = "/keys/web" },
      inventory.target(inv, "web2"))
    assert.same({ name = "db1", host = "db1", port = 22, user = "root" }, inventory.target(inv, "db1"))
    assert.same({ name = "solo", host = "10.0.0.9" }, inventory.target(inv, "solo"))
  end)

  it("names FILE:LINE for what it cannot read", function()
    local cases = {
      { "[web\nh1\n", "inv:1: a section header" },
      { "[web:bogus]\n", "inv:1: a section header" },
      { "[web]\nh1 port 22\n", 'inv:2: expected key=value, found "port"' },
      { "[web]\nh1 ansible_user=\"open\n", "inv:2: an unclosed quote" },
      { "[web]\nweb[01:09]\n", "inv:2: host ranges" },
      { "[a:children]\nb\n[b:children]\na\n", 'inv: group "[ab]" includes itself' },
    }
    for _, c in ipairs(cases) do
      local inv, e = inventory.parse_ini(c[1], "inv")
      assert.is_nil(inv, c[1])
      assert.matches(c[2], e.message, 1, false)
      assert.is_nil(e.message:find("\n"), e.message)
    end
  end)
end)

describe("a YAML inventory", function()
  local YAML = [[
all:
  hosts:
    solo: {ansible_host: 10.0.0.9}
  children:
    prod:
      vars: {ansible_user: root, ansible_port: 22}
      children:
        web:
          vars:
            ansible_user: ops
            ansible_ssh_private_key_file: /keys/web
          hosts:
            web10:
            web2: {ansible_user: "deploy user"}
            web1: {ansible_host: 10.0.0.1, ansible_port: 2222}
        db:
          hosts:
            db1:
]]

  it("reads what the INI form holds, the same way (hosts by name, web2 before web10)", function()
    local inv = assert(inventory.parse_yaml(YAML, "hosts.yml"))
    assert.same({ "web1", "web2", "web10" }, inventory.hosts_of(inv, "web"))
    assert.same({ "solo" }, inv.groups.ungrouped.hosts)
    assert.same({ "db1", "web1", "web10", "web2" }, (function()
      local l = inventory.hosts_of(inv, "prod"); table.sort(l); return l end)())
    assert.same({ name = "web1", host = "10.0.0.1", port = 2222, user = "ops", key_file = "/keys/web" },
      inventory.target(inv, "web1"))
    assert.same({ name = "web2", host = "web2", port = 22, user = "deploy user", key_file = "/keys/web" },
      inventory.target(inv, "web2"))
    assert.same({ name = "db1", host = "db1", port = 22, user = "root" }, inventory.target(inv, "db1"))
  end)

  it("names FILE:LINE of a syntax error, and what is not an inventory", function()
    local cases = {
      { "all:\n  hosts:\n    a: [\n", "inv.yml:3: " },
      { "- a\n- b\n", "inv.yml: not an inventory" },
      { "all:\n  hosts: [a, b]\n", 'group "all": hosts must be a map' },
      { "all:\n  children:\n    a:\n      children:\n        a:\n", 'group "a" includes itself' },
    }
    for _, c in ipairs(cases) do
      local inv, e = inventory.parse_yaml(c[1], "inv.yml")
      assert.is_nil(inv, c[1])
      assert.matches(c[2], e.message, 1, true)
    end
  end)
end)
