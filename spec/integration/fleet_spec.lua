-- Fleets against real hosts (issue 16): 8 sshd on 127.0.0.1, each with
-- its own /srv and /etc/opt (spec/support/fleet.lua); 6 identical, one
-- whose /etc/opt/app.conf differs, one down.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")
local cap = require("support.cap")

local SCRIPT = [[
set -e
v=$(cat /etc/opt/app.conf)
mkdir -p /srv/app
echo "deployed $v" > /srv/app/version
echo "tuned" >> /etc/opt/app.conf
sync
]]

describe("a fleet run", function()
  if not cap.ROOT then
    it("needs root (mount namespaces for the hosts)", function() pending("run as root") end)
    return
  end
  local fleet, home, script, profile, run_id, mcp_run
  local manifest = require("support.manifest")
  local before = {}

  setup(function()
    fleet = require("support.fleet").start(8, { seed = function(i, root)
      h.write(root .. "/etc/app.conf", i == 7 and "v2\n" or "v1\n")
    end })
    fleet.hosts[8].stop()  -- down: its port answers no more
    home = h.home()
    local members = {}
    for _, srv in ipairs(fleet.hosts) do members[#members + 1] = '"' .. srv.name .. '"' end
    h.write(home .. "/config/shannot/config.toml", fleet.config() ..
      "\n[groups.web]\nmembers = [" .. table.concat(members, ", ") .. "]\n")
    assert(fs.mkdir_p(home .. "/.ssh"))
    script = h.write(home .. "/deploy.sh", SCRIPT)
    -- sync: a deferred command that succeeds on every host (systemctl
    -- has no systemd to talk to there)
    profile = cap.profile_file(home, "/srv", { capture = { "/srv", "/etc/opt" }, defer = { "sync" } })
    for i, srv in ipairs(fleet.hosts) do before[i] = manifest.text(srv.root, { seconds = true }) end
  end)
  teardown(function()
    fleet.stop()
    h.cleanup()
  end)

  local function shannot(args)
    return h.shannot(args, { home = home, timeout = 300 })
  end

  it("lists every unknown host key at once and runs nothing, in one phase or two", function()
    -- five keys known, two not (web8 is down)
    local known = {}
    for i = 1, 5 do known[i] = require("support.sshd").known_hosts_line(fleet.hosts[i].port,
      fleet.hosts[i].host_key_pub) end
    h.write(home .. "/.ssh/known_hosts", table.concat(known))
    for _, forks in ipairs({ "8", "3" }) do
      local r = shannot({ "run", "--target", "@web", "--forks", forks, "--profile", profile, script })
      assert.equal(3, r.code, r.stderr)
      assert.matches("2 hosts of 8 have an unknown host key; nothing ran", r.stderr)
      for i = 6, 7 do assert.matches("127%.0%.0%.1:" .. fleet.hosts[i].port, r.stderr) end
      assert.is_nil(fs.readdir(home .. "/data/shannot/sessions") and
        next(fs.readdir(home .. "/data/shannot/sessions")))
      assert.same({}, fs.readdir(home .. "/data/shannot/runs") or {})
    end
    os.remove(home .. "/.ssh/known_hosts")
  end)

  it("captures on every host in parallel and groups them by identical change", function()
    local r = shannot({ "run", "--target", "@web", "--profile", profile, "--accept-new", script })
    assert.equal(1, r.code, r.stderr)  -- one host is down
    run_id = r.stdout:match("^run (%S+):")
    assert.truthy(run_id, r.stdout)
    assert.matches("6 hosts: variant A, 4 operations: web1 web2 web3 web4 web5 web6", r.stdout, 1, true)
    assert.matches("1 host: variant B, 4 operations (differs in /etc/opt/app.conf, /srv/app/version): web7",
      r.stdout, 1, true)
    assert.matches("1 host: unreachable: web8", r.stdout, 1, true)
    -- plain per-host lines (stderr is not a terminal)
    assert.matches("web1: captured, 4 operations", r.stderr)
    -- nothing changed on any host
    for i = 1, 7 do
      assert.equal(i == 7 and "v2\n" or "v1\n", fs.read_file(fleet.hosts[i].root .. "/etc/app.conf"))
      assert.is_nil(fs.stat(fleet.hosts[i].root .. "/srv/app"))
    end
  end)

  it("shows the run's variants, the diff once per variant, and JSON", function()
    local r = shannot({ "show", run_id })
    assert.equal(0, r.code, r.stderr)
    assert.matches("6 hosts: variant A", r.stdout)
    local d = shannot({ "show", run_id, "--diff" })
    assert.equal(0, d.code, d.stderr)
    local _, n = d.stdout:gsub("%+tuned", "")
    assert.equal(2, n, d.stdout)  -- variant A's diff, and B's for what differs
    assert.matches("%+deployed v2", d.stdout)
    local j = json.decode(shannot({ "show", run_id, "--json" }).stdout)
    assert.equal(2, #j.variants)
    assert.same({ "web7" }, j.variants[2].hosts)
    assert.same({ "/etc/opt/app.conf", "/srv/app/version" }, j.variants[2].differs_in)
    local s = json.decode(shannot({ "sessions", "--json" }).stdout)
    assert.equal(7, #s)
    local listed = shannot({ "sessions" })
    assert.matches("run " .. run_id:gsub("%p", "%%%0") .. ".-8 hosts", listed.stdout)
  end)

  it("approves one variant only", function()
    local r = shannot({ "approve", run_id, "--variant", "A", "--yes" })
    assert.equal(0, r.code, r.stderr)
    local j = json.decode(shannot({ "show", run_id, "--json" }).stdout)
    local status = {}
    for _, sid in ipairs(j.variants[1].sessions) do
      status[#status + 1] = json.decode(shannot({ "show", sid, "--json" }).stdout).status
    end
    assert.same({ "approved", "approved", "approved", "approved", "approved", "approved" }, status)
    local b = json.decode(shannot({ "show", j.variants[2].sessions[1], "--json" }).stdout)
    assert.equal("pending", b.status)
  end)

  -- remount(i, how): host i's /srv made read-only ("ro") or writable again
  local function remount(i, how)
    local pid = assert(fs.read_file(fleet.hosts[i].dir .. "/sshd.pid")):match("%d+")
    local r = require("shannot.proc").run({ "nsenter", "-t", pid, "-m", "mount", "-o", "remount,bind," .. how,
      "/srv" })
    assert.equal(0, r.code, r.stderr)
  end

  it("executes two hosts at a time and stops at a failure, later hosts untouched", function()
    remount(4, "ro")
    local r = shannot({ "execute", run_id, "--serial", "2" })
    remount(4, "rw")
    assert.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("stopped after 1 failed host", r.stderr)
    local rows = {}
    for name, result in r.stdout:gmatch("\n(web%d)%s+%S+%s+([^\n]+)") do rows[name] = result end
    assert.equal("executed", rows.web1)
    assert.equal("executed", rows.web3)
    assert.matches("^FAILED", rows.web4)
    assert.matches("^not run: stopped after 1 failure", rows.web5)
    assert.matches("^not run", rows.web6)
    assert.matches("^left: session pending", rows.web7)
    assert.matches("^left: unreachable", rows.web8)
    for i = 1, 3 do
      assert.equal("deployed v1\n", fs.read_file(fleet.hosts[i].root .. "/srv/app/version"))
    end
    for i = 5, 8 do
      assert.equal(before[i], manifest.text(fleet.hosts[i].root, { seconds = true }), "host " .. i)
    end
  end)

  it("rolls back every host that executed, exactly", function()
    local r = shannot({ "rollback", run_id, "--json" })
    local doc = json.decode(r.stdout)
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local names = {}
    for _, host in ipairs(doc.hosts) do
      if host.result == "ok" then names[#names + 1] = host.name end
    end
    assert.same({ "web1", "web2", "web3", "web4" }, names)
    for i = 1, 8 do
      assert.same({}, manifest.differences and manifest.changed(before[i],
        manifest.text(fleet.hosts[i].root, { seconds = true })), "host " .. i)
    end
  end)

  -- The hosts a run made sessions on, by their names in the run.
  local function captured_hosts(r)
    local out = {}
    for name in r.stderr:gmatch("\n?([%w]+): captured") do out[#out + 1] = name end
    table.sort(out)
    return out
  end

  it("reads an INI inventory: children, group vars, host vars, --limit", function()
    local p = fleet.hosts
    local inv = h.write(home .. "/hosts.ini", string.format([[
# the web tier
[web]
a1 ansible_host=127.0.0.1 ansible_port=%d
a2 ansible_host=127.0.0.1 ansible_port=%d

[db]
a3 ansible_host=127.0.0.1 ansible_port=%d

[prod:children]
web
db

[prod:vars]
ansible_user=root
ansible_ssh_private_key_file="%s"
]], p[1].port, p[2].port, p[3].port, fleet.key))
    local r = shannot({ "run", "--inventory", inv, "--target", "@prod", "--limit", "a*:!a3", "--profile", profile,
      script })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "a1", "a2" }, captured_hosts(r))
    assert.matches("2 hosts: variant A, 4 operations: a1 a2", r.stdout, 1, true)
    local id = r.stdout:match("^run (%S+):")
    local doc = json.decode(shannot({ "show", id, "--json" }).stdout)
    local s = json.decode(shannot({ "show", doc.variants[1].sessions[1], "--json" }).stdout)
    assert.equal("a1", s.where.name)
    assert.equal(fleet.key, s.where.key_file)
  end)

  it("reads a YAML inventory, and a host listed twice runs once", function()
    local p = fleet.hosts
    local inv = h.write(home .. "/hosts.yml", string.format([[
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: %s
  children:
    prod:
      children:
        web:
          hosts:
            y1: {ansible_host: 127.0.0.1, ansible_port: %d}
            y3:
        db:
          hosts:
            y3:
              ansible_host: 127.0.0.1
              ansible_port: %d
]], fleet.key, p[1].port, p[3].port))
    local r = shannot({ "run", "--inventory", inv, "--target", "@prod", "--profile", profile, script })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "y1", "y3" }, captured_hosts(r))
    assert.matches("on 2 hosts", r.stdout, 1, true)
  end)

  it("does the same from Lua: open, run, variants, approve, execute, rollback", function()
    local lua = h.write(home .. "/fleet.lua", string.format([==[
local shannot = require("shannot")
local f = assert(shannot.fleet.open("@web", { limit = "web1:web2:web7", profile = %q }))
assert(#f.hosts == 3)
local run = assert(f:run(%q))
local variants, others = f:variants()
assert(#variants == 2 and #others == 0, #variants)
assert(variants[1].label == "A" and #variants[1].hosts == 2)
for _, r in ipairs(f:results()) do assert(r.state == "captured", r.name .. " " .. r.state) end
local approved = assert(f:approve("A"))
assert(#approved == 2)
local done = assert(f:execute({ serial = 2 }))
assert(done.rows[1].state == "ok" and done.rows[2].state == "ok" and #done.left == 1, done.rows[1].error)
local g = assert(shannot.fleet.load(run.id))
local back = assert(g:rollback())
assert(#back.rows == 2 and back.rows[1].state == "ok")
print("fleet from lua: " .. run.id)
]==], profile, script))
    local r = shannot({ "lua", lua })
    assert.equal(0, r.code, r.stderr)
    assert.matches("fleet from lua: ", r.stdout)
    for i = 1, 8 do
      assert.same({}, manifest.changed(before[i], manifest.text(fleet.hosts[i].root, { seconds = true })),
        "host " .. i)
    end
  end)

  it("captures on a configured group through MCP, returning the run and its variants", function()
    local function call(n, name, args)
      return json.encode({ jsonrpc = "2.0", id = n, method = "tools/call", params = { name = name, arguments = args } })
    end
    local lines = {
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",' ..
        '"capabilities":{},"clientInfo":{"name":"spec","version":"1"}}}',
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      call(2, "run_script", { script = SCRIPT, target = "@web", rationale = "roll out v2" }),
      call(3, "run_script", { script = "true", target = "@nosuch" }),
      call(4, "run_command", { argv = { "true" }, target = "@web" }),
      call(5, "list_remotes", {}),
    }
    local r = h.shannot({ "mcp", "--profile", profile }, { home = home, input = table.concat(lines, "\n") .. "\n",
      timeout = 300 })
    assert.equal(0, r.code, r.stderr)
    local replies = {}
    for line in r.stdout:gmatch("[^\n]+") do
      local m = json.decode(line)
      replies[m.id] = m.result
    end
    local run = replies[2].structuredContent
    assert.is_falsy(replies[2].isError)
    assert.equal(8, run.hosts)
    assert.same({ "web1", "web2", "web3", "web4", "web5", "web6" }, run.variants[1].hosts)
    assert.same({ "web7" }, run.variants[2].hosts)
    assert.matches("shannot approve " .. run.run .. " --variant A", run.summary, 1, true)
    assert.is_true(replies[3].isError)
    assert.matches("only groups configured", replies[3].content[1].text)
    assert.is_true(replies[4].isError)
    assert.equal("@web", replies[5].structuredContent.groups[1].name)
    -- nothing applied: every session of the run pending, each with the
    -- script that ran on its host and the agent's reason
    for _, v in ipairs(run.variants) do
      for _, sid in ipairs(v.sessions) do
        local s = json.decode(shannot({ "show", sid, "--json" }).stdout)
        assert.equal("pending", s.status)
        assert.equal("roll out v2", s.rationale)
        assert.same({ name = "spec", version = "1" }, s.client)
        assert.equal(SCRIPT, shannot({ "show", sid, "--script" }).stdout)
      end
    end
    mcp_run = run
  end)

  it("reviews a run by variant in the review UI and approves one there", function()
    local tmux = require("support.tmux")
    if not tmux.available() then return pending("tmux is missing") end
    local t = tmux.start(home, { "approve" }, { name = "fleet-tui" })
    local ok, problem = pcall(function()
      local screen = t:wait("fleet run: 7 pending hosts")
      assert.matches(mcp_run.run:gsub("%p", "%%%0"), screen)
      t:keys("Enter")
      -- (not "variants": the list's help line says it too)
      screen = t:wait("6 hosts")
      assert.matches("A%s+6 hosts%s+4 ops%s+caution%s+6 pending%s+web1 web2", screen)
      assert.matches("B%s+1 host%s+4 ops", screen)
      assert.matches("1 host%s+unreachable%s+web8", screen)
      t:keys("Enter")
      t:wait("4 ops:")
      t:keys("Space")
      t:wait("a in the run's list approves the whole variant")
      t:keys("q")
      t:wait("6 pending")
      t:keys("a")
      t:wait("[y/N]")
      t:keys("y")
      screen = t:wait("6 approved")
      assert.matches("variant A: 6 of 6 sessions approved", screen)
      t:keys("q")
      t:keys("q")
      t:wait("shannot-exit=0")
    end)
    t:kill()
    assert(ok, problem)
    local doc = json.decode(shannot({ "show", mcp_run.run, "--json" }).stdout)
    assert.equal("approved", json.decode(shannot({ "show", doc.variants[1].sessions[6], "--json" }).stdout).status)
    assert.equal("pending", json.decode(shannot({ "show", doc.variants[2].sessions[1], "--json" }).stdout).status)
  end)

  it("shows a live status line on a terminal, and leaves only the per-host lines", function()
    local tmux = require("support.tmux")
    if not tmux.available() then return pending("tmux is missing") end
    local t = tmux.start(home, { "run", "--target", "@web", "--limit", "web1:web2:web3", "--forks", "2",
      "--profile", profile, "-c", "sleep 2; echo x > /srv/slow" }, { name = "fleet-live" })
    local ok, problem = pcall(function()
      local screen = t:wait("capturing: ")
      assert.matches("capturing: %d/3 done, %d running %(web%d %ds", screen)
      screen = t:wait("shannot-exit=0")
      assert.not_matches("capturing:", screen)
      for i = 1, 3 do assert.matches("web" .. i .. ": captured, 1 operation", screen) end
    end)
    t:kill()
    assert(ok, problem)
  end)
end)
