-- The MCP server driven by the official TypeScript SDK (installed from
-- npm into a throw-away directory) and by raw JSON-RPC lines.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")
local cap = require("support.cap")

local CLIENT = [[
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
const [bin, profile, host] = process.argv.slice(2);
const transport = new StdioClientTransport({ command: bin, args: ["mcp", "--profile", profile],
  env: { ...process.env }, stderr: "pipe" });
const client = new Client({ name: "shannot-spec", version: "1.0.0" });
await client.connect(transport);
const out = { server: client.getServerVersion() };
out.tools = (await client.listTools()).tools.map(t => t.name).sort();
out.run = await client.callTool({ name: "run_command", arguments: { argv: ["echo", "hello"] } });
out.failing = await client.callTool({ name: "run_command", arguments: { argv: ["sh", "-c", "exit 3"] } });
out.script = await client.callTool({ name: "run_script",
  arguments: { script: "echo from-mcp > " + host + "/made\n", interpreter: "sh" } });
const id = out.script.structuredContent.session;
out.sessions = await client.callTool({ name: "list_sessions", arguments: {} });
out.get = await client.callTool({ name: "get_session", arguments: { id, diff: true } });
out.profiles = await client.callTool({ name: "list_profiles", arguments: {} });
out.remotes = await client.callTool({ name: "list_remotes", arguments: {} });
out.badTarget = await client.callTool({ name: "run_command", arguments: { argv: ["true"], target: "root@evil" } });
out.resources = (await client.listResources()).resources.map(r => r.uri).sort();
out.status = await client.readResource({ uri: "shannot://status" });
out.prompts = (await client.listPrompts()).prompts.map(p => p.name).sort();
const ac = new AbortController();
const started = Date.now();
const long = client.callTool({ name: "run_command", arguments: { argv: ["sleep", "30"] } }, undefined,
  { signal: ac.signal, timeout: 60000 });
await new Promise(r => setTimeout(r, 500));
const t0 = Date.now(); await client.ping(); out.pingMs = Date.now() - t0;
ac.abort();
try { await long; out.cancelled = false; } catch (e) { out.cancelled = true; }
out.cancelMs = Date.now() - started;
out.afterCancel = await client.callTool({ name: "list_remotes", arguments: {} });
await client.close();
console.log(JSON.stringify(out));
]]

describe("the MCP server", function()
  local sdk

  setup(function()
    -- one throw-away npm project for the whole file
    sdk = assert(fs.mkdtemp(h.ROOT .. "/build/spec-mcp-sdk-"))
    local r = assert(proc.run({ "npm", "install", "--prefix", sdk, "--no-audit", "--no-fund", "--silent",
      "@modelcontextprotocol/sdk" }, { timeout = 600, stdin = "null" }))
    assert(r.code == 0, "npm install @modelcontextprotocol/sdk failed: " .. (r.stderr or ""))
    h.write(sdk .. "/client.mjs", CLIENT)
  end)
  teardown(function() if sdk then fs.rmtree(sdk) end end)
  after_each(h.cleanup)

  it("serves the official SDK client: every tool, resources, prompts, a capture a person then applies", function()
    local e = cap.env()
    local argv = { "node", sdk .. "/client.mjs", h.BIN, e.profile, e.host }
    local env = { "HOME=" .. e.home, "XDG_CONFIG_HOME=" .. e.home .. "/config",
      "XDG_DATA_HOME=" .. e.home .. "/data", "PATH=" .. os.getenv("PATH") }
    local r = assert(proc.run(argv, { env = env, timeout = 120, stdin = "null", cwd = sdk }))
    assert.equal(0, r.code, r.stderr)
    local out = assert(json.decode(r.stdout), r.stdout)
    assert.equal("shannot", out.server.name)
    assert.same({ "get_session", "list_profiles", "list_remotes", "list_sessions", "run_command", "run_script" },
      out.tools)
    assert.equal("hello\n", out.run.structuredContent.stdout)
    assert.is_nil(out.run.isError)
    assert.is_true(out.failing.isError)
    assert.equal(3, out.failing.structuredContent.exit_code)
    local id = out.script.structuredContent.session
    assert.matches("^%d+%-%d+%-mcp%-script%-%x+$", id)
    assert.matches("shannot approve " .. id, out.script.structuredContent.summary, 1, true)
    assert.is_false(fs.exists(e.host .. "/made"), "run_script must not apply anything")
    assert.equal(id, out.sessions.structuredContent.sessions[1].id)
    assert.matches("%+from%-mcp", out.get.structuredContent.operations[1].diff)
    assert.is_true(#out.profiles.structuredContent.profiles >= 5)
    assert.is_true(out.badTarget.isError)
    assert.matches("unknown target", out.badTarget.content[1].text)
    assert.same({ "shannot://profiles", "shannot://remotes", "shannot://status" }, out.resources)
    assert.matches("bwrap", out.status.contents[1].text)
    assert.same({ "check-service", "diagnose-disk" }, out.prompts)
    assert.is_true(out.cancelled)
    assert.is_true(out.pingMs < 2000, "ping took " .. out.pingMs .. " ms during a long call")
    assert.is_true(out.cancelMs < 10000, "cancel took " .. out.cancelMs .. " ms")
    assert.is_table(out.afterCancel.structuredContent.remotes)
    -- a person applies what the agent captured
    assert.equal(0, h.shannot({ "approve", id, "--yes" }, { home = e.home }).code)
    assert.equal(0, h.shannot({ "execute", id }, { home = e.home }).code)
    assert.equal("from-mcp\n", fs.read_file(e.host .. "/made"))
    -- the audit log names who did what: the agent's server made it, a person approved it
    local log = json.decode(h.shannot({ "audit", "--json", "--session", id }, { home = e.home }).stdout)
    local who = {}
    for _, ev in ipairs(log) do who[#who + 1] = ev.event_type .. ":" .. ev.actor end
    assert.same({ "session_created:mcp", "session_approved:cli", "session_executed:cli" }, who)
  end)

  it("answers JSON-RPC errors and keeps serving", function()
    local lines = {
      "this is not json",
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01",' ..
        '"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}',
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      '{"jsonrpc":"2.0","id":2,"method":"no/such/method"}',
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"run_command","arguments":{"argv":"ls -l"}}}',
      '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"not an object"}',
      '[{"jsonrpc":"2.0","id":5,"method":"ping"}]',
      '{"id":6,"method":"ping"}',
      '{"jsonrpc":"2.0","id":7,"method":"ping"}',
    }
    local home = h.tmpdir()
    local r = h.shannot({ "mcp" }, { home = home, input = table.concat(lines, "\n") .. "\n" })
    assert.equal(0, r.code, r.stderr)
    local answers = {}
    for line in r.stdout:gmatch("[^\n]+") do answers[#answers + 1] = assert(json.decode(line)) end
    assert.equal(8, #answers)  -- the notification is never answered
    assert.equal(-32700, answers[1].error.code)
    assert.equal(json.null, answers[1].id)
    assert.equal("2025-11-25", answers[2].result.protocolVersion)  -- never an unknown version echoed
    assert.equal(-32601, answers[3].error.code)
    -- arguments that do not fit the schema: the tool's error, for the model to correct
    assert.is_true(answers[4].result.isError)
    assert.matches('"argv" must be an array, not a string', answers[4].result.content[1].text, 1, true)
    assert.equal(-32602, answers[5].error.code)
    assert.equal(-32600, answers[6].error.code)
    assert.equal(-32600, answers[7].error.code)
    assert.same({}, answers[8].result)
    assert.equal(7, answers[8].id)
  end)

  it("answers each supported protocol version with itself", function()
    for _, v in ipairs({ "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25" }) do
      local r = h.shannot({ "mcp" }, { home = h.tmpdir(), input = '{"jsonrpc":"2.0","id":1,"method":"initialize",' ..
        '"params":{"protocolVersion":"' .. v .. '","capabilities":{},"clientInfo":{"name":"v","version":"0"}}}\n' })
      assert.equal(v, json.decode(r.stdout).result.protocolVersion)
    end
  end)
end)
