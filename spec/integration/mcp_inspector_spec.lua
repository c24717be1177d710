-- The MCP server driven by a second, independent client: the MCP Inspector
-- CLI (installed from npm into a throw-away directory), one Inspector run
-- per request, each starting `shannot mcp` afresh, all on one test bed so
-- the session run_script makes is there for get_session and
-- resources/read.
--
-- How the Inspector passes tool arguments (cli/build/client/tools.js):
-- `--tool-arg key=value ...` (variadic; the value is what follows the
-- first "="), converted by the property's type in the tool's inputSchema:
-- number/integer -> Number(value), boolean -> value == "true",
-- array/object -> JSON.parse(value) (kept as the string when it is not
-- JSON), anything else, and an argument the schema does not name, a string.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")
local cap = require("support.cap")

-- The newest 0.15.x (`npm view @modelcontextprotocol/inspector@0.15
-- version`): the line that runs on node 20.
local INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
-- The Inspector's tools/list answer, kept whole for whoever reads it.
local TOOLS_LIST = "build/inspector-tools-list.json"

local HINTS = { "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint" }
local function hints(ro, destructive, idempotent, open)
  return { readOnlyHint = ro, destructiveHint = destructive, idempotentHint = idempotent, openWorldHint = open }
end
local ANNOTATIONS = {
  { "run_command", hints(true, false, true, true) },
  { "run_script", hints(false, false, false, true) },
  { "list_sessions", hints(true, false, true, false) },
  { "get_session", hints(true, false, true, false) },
  { "list_profiles", hints(true, false, true, false) },
  { "list_remotes", hints(true, false, true, false) },
}

describe("the MCP server under the MCP Inspector CLI", function()
  local dir, e, env, listed, captured

  setup(function()
    -- one throw-away npm project for the whole file
    dir = assert(fs.mkdtemp(h.ROOT .. "/build/spec-mcp-inspector-"))
    local r = assert(proc.run({ "npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--silent",
      INSPECTOR }, { timeout = 600, stdin = "null" }))
    assert(r.code == 0, "npm install " .. INSPECTOR .. " failed: " .. (r.stderr or ""))
    -- one test bed for the whole file (cleaned in teardown, not after each)
    e = cap.env()
    env = { "HOME=" .. e.home, "XDG_CONFIG_HOME=" .. e.home .. "/config",
      "XDG_DATA_HOME=" .. e.home .. "/data", "PATH=" .. os.getenv("PATH"),
      -- no browser, no update check (the CLI mode needs neither)
      "MCP_AUTO_OPEN_ENABLED=false", "BROWSER=none", "NO_UPDATE_NOTIFIER=1", "npm_config_update_notifier=false" }
  end)
  teardown(function()
    h.cleanup()
    if dir then fs.rmtree(dir) end
  end)

  -- inspect(args) -> result, decoded stdout (nil when it is not JSON)
  local function inspect(args)
    local argv = { dir .. "/node_modules/.bin/mcp-inspector", "--cli", h.BIN, "mcp", "--profile", e.profile }
    table.move(args, 1, #args, #argv + 1, argv)
    local r = assert(proc.run(argv, { env = env, timeout = 180, stdin = "null", cwd = dir }))
    return r, json.decode(r.stdout)
  end

  -- ok(args) -> the decoded answer of a run that must succeed
  local function ok(args)
    local r, out = inspect(args)
    assert(r.code == 0, table.concat(args, " ") .. ": exit " .. tostring(r.code) .. ": " .. r.stderr)
    assert(type(out) == "table", table.concat(args, " ") .. ": not JSON: " .. r.stdout)
    return out
  end

  local function call(tool, targs)
    local args = { "--method", "tools/call", "--tool-name", tool }
    if targs and #targs > 0 then
      args[#args + 1] = "--tool-arg"
      table.move(targs, 1, #targs, #args + 1, args)
    end
    return ok(args)
  end

  -- tools() -> the tools, the tools by name: one tools/list for the whole file
  local function tools()
    if not listed then
      local r, out = inspect({ "--method", "tools/list" })
      assert(r.code == 0 and type(out) == "table", "tools/list: " .. r.stderr)
      h.write(h.ROOT .. "/" .. TOOLS_LIST, r.stdout)
      listed = out.tools
    end
    local by = {}
    for _, t in ipairs(listed) do by[t.name] = t end
    return listed, by
  end

  -- capture() -> the run_script answer: one capture for the whole file
  local function capture()
    if not captured then
      captured = call("run_script", { "script=echo from-inspector > " .. e.host .. "/made\n", "interpreter=sh" })
    end
    return captured
  end

  local function session_id()
    local id = capture().structuredContent.session
    assert.is_string(id)
    return id
  end

  describe("tools/list", function()
    it("names the six tools (its whole answer kept in " .. TOOLS_LIST .. ")", function()
      local list = tools()
      local names = {}
      for i, t in ipairs(list) do names[i] = t.name end
      table.sort(names)
      assert.same({ "get_session", "list_profiles", "list_remotes", "list_sessions", "run_command", "run_script" },
        names)
      assert.is_true(fs.exists(h.ROOT .. "/" .. TOOLS_LIST))
      for _, t in ipairs(list) do
        assert.equal("object", t.inputSchema.type, t.name)
        assert.is_string(t.description, t.name)
      end
    end)

    it("annotates every tool with all four hints, as booleans", function()
      local _, by = tools()
      for _, tool in ipairs(ANNOTATIONS) do
        local name, want = tool[1], tool[2]
        local a = assert(by[name], "no tool " .. name).annotations
        assert.is_table(a, name .. " has no annotations")
        local got = {}
        for _, k in ipairs(HINTS) do
          assert.is_boolean(a[k], name .. "." .. k)
          got[k] = a[k]
        end
        assert.same(want, got, name)
      end
    end)

    -- (with one, the Inspector's SDK client checks every call's
    -- structuredContent against it, so the calls below test it too)
    it("gives every tool an output schema of type object", function()
      local list = tools()
      for _, t in ipairs(list) do
        assert.is_table(t.outputSchema, t.name .. " has no outputSchema")
        assert.equal("object", t.outputSchema.type, t.name)
      end
    end)
  end)

  describe("tools/call", function()
    it("run_command runs an argv array and answers its output, structured and as text", function()
      local out = call("run_command", { 'argv=["echo","hello"]', "timeout=30" })
      assert.is_not_true(out.isError)
      assert.equal("hello\n", out.structuredContent.stdout)
      assert.equal(0, out.structuredContent.exit_code)
      assert.equal("text", out.content[1].type)
      assert.equal("hello\n", json.decode(out.content[1].text).stdout)
    end)

    it("run_command: a failing command is a tool error with its exit code", function()
      local out = call("run_command", { 'argv=["sh","-c","echo oops >&2; exit 3"]' })
      assert.is_true(out.isError)
      assert.equal(3, out.structuredContent.exit_code)
      assert.equal("oops\n", out.structuredContent.stderr)
    end)

    it("run_script captures a session and applies nothing", function()
      local out = capture()
      assert.is_not_true(out.isError)
      local s = out.structuredContent
      assert.matches("^%d+%-%d+%-mcp%-script%-%x+$", s.session)
      assert.is_false(fs.exists(e.host .. "/made"), "run_script must not apply anything")
      assert.equal(1, #s.operations)
      assert.equal("write", s.operations[1].kind)
      assert.equal(e.host .. "/made", s.operations[1].path)
      assert.matches("Nothing was applied", s.summary, 1, true)
      assert.equal("shannot approve " .. s.session, s.approve)
      assert.equal("text", out.content[1].type)
      assert.equal(s.session, json.decode(out.content[1].text).session)
    end)

    it("list_sessions lists the captured session, pending", function()
      local id = session_id()
      local out = call("list_sessions")
      local found
      for _, s in ipairs(out.structuredContent.sessions) do
        if s.id == id then found = s end
      end
      assert.is_table(found, "no session " .. id)
      assert.equal("pending", found.status)
      assert.equal(1, found.operations)
      -- a filter by status, an enum argument passed as a string
      assert.equal(0, #call("list_sessions", { "status=executed" }).structuredContent.sessions)
    end)

    it("get_session shows the captured write with its diff (a boolean argument)", function()
      local id = session_id()
      local s = call("get_session", { "id=" .. id, "diff=true" }).structuredContent
      assert.equal(id, s.id)
      assert.equal("pending", s.status)
      assert.equal(1, #s.operations)
      assert.equal(e.host .. "/made", s.operations[1].path)
      assert.matches("%+from%-inspector", s.operations[1].diff)
      assert.is_false(fs.exists(e.host .. "/made"))
    end)

    it("get_session of an unknown id is a tool error", function()
      local out = call("get_session", { "id=20000101-000000-absent-0000" })
      assert.is_true(out.isError)
      assert.equal("text", out.content[1].type)
    end)

    it("list_profiles lists the built-in profiles", function()
      local names = {}
      for _, p in ipairs(call("list_profiles").structuredContent.profiles) do names[p.name] = true end
      assert.is_true(names.readonly, "no readonly profile")
      assert.is_true(names.minimal, "no minimal profile")
    end)

    it("list_remotes answers empty lists on a machine with none configured", function()
      local out = call("list_remotes")
      assert.is_not_true(out.isError)
      assert.same({}, out.structuredContent.remotes)
      assert.same({}, out.structuredContent.groups)
    end)

    it("an argv given as a string is a tool result with isError, not a JSON-RPC error", function()
      -- not JSON, so the Inspector passes the string itself
      local r, out = inspect({ "--method", "tools/call", "--tool-name", "run_command", "--tool-arg", "argv=ls -l" })
      assert.equal(0, r.code, r.stderr)
      assert.is_true(out.isError)
      assert.equal("text", out.content[1].type)
      assert.matches("argv", out.content[1].text, 1, true)
    end)

    it("an unknown argument is a tool result with isError, not a JSON-RPC error", function()
      local r, out = inspect({ "--method", "tools/call", "--tool-name", "run_command", "--tool-arg", 'argv=["true"]',
        "bogus=1" })
      assert.equal(0, r.code, r.stderr)
      assert.is_true(out.isError)
      assert.equal("text", out.content[1].type)
      assert.matches("bogus", out.content[1].text, 1, true)
    end)
  end)

  describe("resources", function()
    it("resources/list lists the fixed resources", function()
      local uris = {}
      for _, r in ipairs(ok({ "--method", "resources/list" }).resources) do
        uris[#uris + 1] = r.uri
        assert.equal("application/json", r.mimeType, r.uri)
      end
      table.sort(uris)
      assert.same({ "shannot://profiles", "shannot://remotes", "shannot://status" }, uris)
    end)

    it("resources/templates/list lists a session and a profile by name", function()
      local by = {}
      for _, t in ipairs(ok({ "--method", "resources/templates/list" }).resourceTemplates) do by[t.uriTemplate] = t end
      for _, uri in ipairs({ "shannot://sessions/{id}", "shannot://profiles/{name}" }) do
        assert.is_table(by[uri], "no template " .. uri)
        assert.equal("application/json", by[uri].mimeType, uri)
        assert.is_string(by[uri].name, uri)
      end
    end)

    it("resources/read of shannot://sessions/ID is the session as JSON", function()
      local id = session_id()
      local uri = "shannot://sessions/" .. id
      local c = ok({ "--method", "resources/read", "--uri", uri }).contents
      assert.equal(1, #c)
      assert.equal(uri, c[1].uri)
      assert.equal("application/json", c[1].mimeType)
      local s = assert(json.decode(c[1].text), c[1].text)
      assert.equal(id, s.id)
      assert.equal("pending", s.status)
      assert.equal(1, #s.operations)
      assert.equal(e.host .. "/made", s.operations[1].path)
    end)

    it("resources/read of shannot://profiles/readonly is that profile as JSON", function()
      local c = ok({ "--method", "resources/read", "--uri", "shannot://profiles/readonly" }).contents
      assert.equal("shannot://profiles/readonly", c[1].uri)
      assert.equal("application/json", c[1].mimeType)
      assert.equal("readonly", assert(json.decode(c[1].text), c[1].text).name)
    end)

    it("resources/read of an unknown session is an error", function()
      local uri = "shannot://sessions/20000101-000000-absent-0000"
      local r, out = inspect({ "--method", "resources/read", "--uri", uri })
      assert.is_not.equal(0, r.code)
      assert.is_nil(out)
      assert.matches("MCP error", r.stderr, 1, true)
    end)
  end)

  describe("prompts", function()
    it("prompts/list lists both prompts with their arguments", function()
      local by = {}
      for _, p in ipairs(ok({ "--method", "prompts/list" }).prompts) do by[p.name] = p end
      assert.equal("path", by["diagnose-disk"].arguments[1].name)
      assert.equal("service", by["check-service"].arguments[1].name)
      assert.is_true(by["check-service"].arguments[1].required)
    end)

    it("prompts/get diagnose-disk path=/var asks about /var", function()
      local out = ok({ "--method", "prompts/get", "--prompt-name", "diagnose-disk", "--prompt-args", "path=/var" })
      assert.equal(1, #out.messages)
      assert.equal("user", out.messages[1].role)
      assert.equal("text", out.messages[1].content.type)
      assert.matches("under /var", out.messages[1].content.text, 1, true)
      assert.matches("run_command", out.messages[1].content.text, 1, true)
    end)
  end)
end)
