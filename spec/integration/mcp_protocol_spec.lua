-- The MCP server against the 2025-11-25 specification, by raw JSON-RPC
-- lines: tool annotations and output schemas, argument errors as tool
-- results, resource templates, progress notifications, the framing of
-- long lines, and what the audit log says of the client.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")
local cap = require("support.cap")

local INIT = '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
  '"capabilities":{},"clientInfo":{"name":"spec-client","version":"4.5.6"}}}'

local function call(id, name, arguments, meta)
  return json.encode({ jsonrpc = "2.0", id = id, method = "tools/call",
    params = { name = name, arguments = arguments, _meta = meta } })
end

local function request(id, method, params)
  return json.encode({ jsonrpc = "2.0", id = id, method = method, params = params })
end

-- serve(lines [, opts]) -> the messages the server wrote, in order, and
-- the answers by id.  opts: home, linger (seconds stdin stays open after
-- the lines, so running calls finish while it reads), env, args (of
-- `shannot mcp`).
local function serve(lines, opts)
  opts = opts or {}
  local home = opts.home or h.home()
  local input = h.write(h.tmpdir() .. "/input", table.concat(lines, "\n") .. "\n")
  local prefix = opts.linger and { "sh", "-c", 'f=$1 t=$2; shift 2; (cat "$f"; sleep "$t") | "$@"', "sh", input,
    tostring(opts.linger) } or nil
  local r = h.shannot({ "mcp", table.unpack(opts.args or {}) }, { home = home, prefix = prefix, env = opts.env,
    input = not prefix and fs.read_file(input, 64 * 1024 * 1024) or nil, timeout = 120 })
  assert.equal(0, r.code, r.stderr)
  local all, by_id = {}, {}
  for line in r.stdout:gmatch("[^\n]+") do
    local m = assert(json.decode(line), line)
    all[#all + 1] = m
    if m.id ~= nil and m.id ~= json.null then by_id[math.tointeger(m.id)] = m end
  end
  return all, by_id, r
end

describe("the MCP server (2025-11-25)", function()
  after_each(function()
    cap.cleanup()
    h.cleanup()
  end)

  it("lists tools with truthful annotations and an output schema each", function()
    local _, a = serve({ INIT, request(1, "tools/list") })
    local hints = {}
    for _, t in ipairs(a[1].result.tools) do
      local an = t.annotations
      for _, k in ipairs({ "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint" }) do
        assert.is_boolean(an[k], t.name .. " " .. k)
      end
      assert.is_false(an.destructiveHint, t.name .. ": nothing here applies anything")
      assert.equal("object", t.outputSchema.type, t.name)
      hints[t.name] = { an.readOnlyHint, an.idempotentHint, an.openWorldHint }
    end
    assert.same({ false, false, true }, hints.run_script)  -- it stores a session; a new one each call
    assert.same({ true, true, true }, hints.run_command)   -- it may reach a configured remote
    for _, name in ipairs({ "list_sessions", "get_session", "list_profiles", "list_remotes" }) do
      assert.same({ true, true, false }, hints[name], name)
    end
    -- a client of 2024-11-05 gets neither (they came later)
    local _, old = serve({ INIT:gsub("2025%-11%-25", "2024-11-05"), request(1, "tools/list") })
    assert.is_nil(old[1].result.tools[1].annotations)
    assert.is_nil(old[1].result.tools[1].outputSchema)
  end)

  it("answers arguments that do not fit a tool's schema with a tool error the model can act on", function()
    local _, a = serve({ INIT,
      call(1, "run_command", { argv = "ls -l" }),
      call(2, "run_command", { argv = { "ls" }, bogus = 1 }),
      call(3, "run_command", {}),
      call(4, "run_command", { argv = { "echo", 5 } }),
      call(5, "run_command", { argv = { "true" }, timeout = 0 }),
      call(6, "list_sessions", { status = "nonsense" }),
      call(7, "run_script", { script = "true", rationale = 42 }),
      call(8, "no_such_tool", {}),
      request(9, "tools/call", "not an object"),
    })
    local function tool_error(id, says)
      assert.is_true(a[id].result.isError, "call " .. id)
      assert.matches(says, a[id].result.content[1].text, 1, true)
    end
    tool_error(1, '"argv" must be an array, not a string')
    tool_error(2, 'unknown argument "bogus" (this tool takes: argv, target, timeout)')
    tool_error(3, 'missing required argument "argv"')
    tool_error(4, '"argv[1]" must be a string')
    tool_error(5, '"timeout" must be at least 0.1')
    tool_error(6, '"status" must be one of pending')
    tool_error(7, '"rationale" must be a string')
    -- an unknown tool and a malformed request stay protocol errors
    assert.equal(-32602, a[8].error.code)
    assert.equal(-32602, a[9].error.code)
  end)

  it("serves sessions and profiles through resource templates, never a path", function()
    local e = cap.env()
    local _, a = serve({ INIT,
      call(1, "run_script", { script = "echo templated > " .. e.host .. "/t\n",
        rationale = "the spec wants a file" }),
    }, { home = e.home, linger = 0, args = { "--profile", e.profile } })
    local id = a[1].result.structuredContent.session
    assert.is_string(id, a[1].result.content[1].text)
    local _, b = serve({ INIT,
      request(1, "resources/templates/list"),
      request(2, "resources/read", { uri = "shannot://sessions/" .. id }),
      request(3, "resources/read", { uri = "shannot://profiles/readonly" }),
      request(4, "resources/read", { uri = "shannot://profiles/../../etc/passwd" }),
      request(5, "resources/read", { uri = "shannot://profiles/x.json" }),
      request(6, "resources/read", { uri = "shannot://sessions/20990101-000000-nope-0000" }),
      call(7, "get_session", { id = id, script = true }),
    }, { home = e.home })
    local uris = {}
    for _, t in ipairs(b[1].result.resourceTemplates) do uris[#uris + 1] = t.uriTemplate end
    table.sort(uris)
    assert.same({ "shannot://profiles/{name}", "shannot://sessions/{id}" }, uris)
    local doc = json.decode(b[2].result.contents[1].text)
    assert.equal(id, doc.id)
    assert.equal("the spec wants a file", doc.rationale)
    assert.equal("echo templated > " .. e.host .. "/t\n", doc.script.text)
    assert.same({ name = "spec-client", version = "4.5.6" }, doc.client)
    assert.equal("readonly", json.decode(b[3].result.contents[1].text).name)
    for i = 4, 6 do assert.equal(-32002, b[i].error.code, "request " .. i) end
    local got = b[7].result.structuredContent
    assert.equal("the spec wants a file", got.rationale)
    assert.equal(#"echo templated > " + #e.host + 3, got.script.size)
    assert.matches("^%x+$", got.script.sha256)
    -- the audit log names the server and its client
    local log = json.decode(h.shannot({ "audit", "--json", "--session", id }, { home = e.home }).stdout)
    assert.equal("mcp", log[1].actor)
    assert.equal("spec-client 4.5.6", log[1].payload.client)
  end)

  it("sends progress for a long call that asked for it, and none for one that did not", function()
    local all, a = serve({ INIT,
      call(1, "run_command", { argv = { "sleep", "2.2" } }, { progressToken = "tok-1" }),
      call(2, "run_command", { argv = { "sleep", "1.2" } }),
    }, { linger = 4 })
    local seen, last, answered_at = {}, -1, nil
    for i, m in ipairs(all) do
      if m.method == "notifications/progress" then
        assert.equal("tok-1", m.params.progressToken)
        assert.is_true(m.params.progress > last, "progress must rise")
        last = m.params.progress
        seen[#seen + 1] = i
      elseif m.id == 1 then
        answered_at = i
      end
    end
    assert.is_true(#seen >= 3, "notifications: " .. #seen)  -- at start, after 1 s and 2 s
    assert.is_true(seen[#seen] < answered_at, "every notification comes before the result")
    assert.equal(0, a[1].result.structuredContent.exit_code)
    assert.equal(0, a[2].result.structuredContent.exit_code)
  end)

  it("refuses a line over the limit once and never reads what follows the cut as a message", function()
    local limit = 16 * 1024 * 1024
    -- a request hidden past the cut of an overlong line: once executed
    local hidden = call(66, "run_command", { argv = { "echo", "smuggled" } })
    local long = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"pad":"' ..
      string.rep("x", limit) .. '"}}}' .. hidden
    local big = '{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"pad":"' ..
      string.rep("y", 4 * 1024 * 1024) .. '"}}}'
    local all, a = serve({ INIT, long, big, request(3, "ping") })
    assert.is_nil(a[66], "the text after the cut was run as a request")
    assert.is_nil(a[1])
    local refused = 0
    for _, m in ipairs(all) do
      if m.error and m.error.code == -32700 then refused = refused + 1 end
    end
    assert.equal(1, refused)
    assert.same({}, a[2].result)  -- a 4 MiB request is read whole and answered
    assert.same({}, a[3].result)
  end)
end)
