-- One review per distinct change (issue 16.3): hosts grouped by identical
-- change sets, whatever the order the trees were walked in and whatever
-- times or earlier states they had.
local variants = require("shannot.fleet.variants")

local function write(path, hash, extra)
  local op = { kind = "write", path = path, new = { type = "file", mode = 420, uid = 0, gid = 0, hash = hash,
    size = 3, mtime_sec = math.random(1, 1e9) }, base = { exists = true, mtime_sec = math.random(1, 1e9) } }
  for k, v in pairs(extra or {}) do op.new[k] = v end
  return op
end

local function exec(...) return { kind = "exec", argv = { ... }, cwd = "/" } end

local A, B = string.rep("a", 64), string.rep("b", 64)

local function run_of(hosts)
  local run, sessions = { id = "r", command = {}, targets = "@web", hosts = {} }, {}
  for i, host in ipairs(hosts) do
    run.hosts[i] = { name = host[1], state = host.state or "captured", session = host.ops and ("s" .. i) or nil,
      error = host.error }
    if host.ops then sessions[host[1]] = { id = "s" .. i, operations = host.ops } end
  end
  return run, sessions
end

describe("fleet variants", function()
  it("groups identical changes, ignoring walk order, times and the state before", function()
    local run, sessions = run_of({
      { "w1", ops = { write("/etc/a", A), write("/etc/b", A), exec("systemctl", "restart", "x") } },
      { "w2", ops = { write("/etc/b", A), write("/etc/a", A), exec("systemctl", "restart", "x") } },
      { "w3", ops = { write("/etc/a", A), write("/etc/b", B), exec("systemctl", "restart", "x") } },
      { "w4", ops = { write("/etc/a", A), write("/etc/b", A), exec("systemctl", "reload", "x") } },
      { "w5", state = "unreachable", error = "cannot connect" },
      { "w6", state = "unchanged" },
      { "w7", ops = { write("/etc/a", A), write("/etc/b", A, { mode = 384 }), exec("systemctl", "restart", "x") } },
    })
    local g = variants.group(run, sessions)
    assert.equal(4, #g.variants)
    assert.same({ "w1", "w2" }, g.variants[1].hosts)
    assert.equal("A", g.variants[1].label)
    assert.same({ "w3" }, g.variants[2].hosts)
    assert.same({ "/etc/b" }, g.variants[2].differs)
    assert.is_false(g.variants[2].deferred_differ)
    assert.same({}, g.variants[3].differs)  -- w4: only the deferred command
    assert.is_true(g.variants[3].deferred_differ)
    assert.equal("differs in /etc/b", variants.what_differs(g.variants[4]))  -- w7: a mode
    assert.equal("deferred commands differ", variants.what_differs(g.variants[3]))
    assert.same({ "unchanged", "unreachable" }, { g.others[1].state, g.others[2].state })
    local text = variants.render(run, g)
    assert.matches("2 hosts: variant A, 3 operations: w1 w2\n", text, 1, true)
    assert.matches("1 host: unreachable: w5\n    w5: cannot connect", text, 1, true)
  end)

  it("keeps a host whose run failed apart, and labels past Z", function()
    local hosts = {}
    for i = 1, 28 do hosts[i] = { "h" .. i, ops = { write("/f", string.format("%064x", i)) } } end
    hosts[29] = { "bad", state = "failed", ops = { write("/f", A) }, error = "exited with code 1" }
    local g = variants.group(run_of(hosts))
    assert.equal(28, #g.variants)
    assert.equal("AB", g.variants[28].label)
    assert.equal("failed", g.others[1].state)
    assert.equal("bad", g.others[1].hosts[1].name)
    assert.equal(g.variants[28], variants.find(g, "ab"))
  end)
end)
