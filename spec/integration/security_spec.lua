-- Issue 11: what a sandboxed script, a hostile file or a hostile client
-- must never reach.  Each spec tries the escape for real, against real
-- bwrap (and a real sshd and MCP server where they are the way in).
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")
local cap = require("support.cap")
local sshd = require("support.sshd")

local function run(args, opts)
  local argv = { "run" }
  table.move(args, 1, #args, 2, argv)
  return h.shannot(argv, opts)
end

-- One MCP tools/call over stdio -> the tool's text result.
local function mcp_call(home, tool, arguments, env)
  local lines = {
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
      '"capabilities":{},"clientInfo":{"name":"spec","version":"0"}}}',
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    json.encode({ jsonrpc = "2.0", id = 2, method = "tools/call", params = { name = tool, arguments = arguments } }),
  }
  local r = h.shannot({ "mcp" }, { home = home, env = env, input = table.concat(lines, "\n") .. "\n" })
  assert.equal(0, r.code, r.stderr)
  for line in r.stdout:gmatch("[^\n]+") do
    local msg = assert(json.decode(line))
    if msg.id == 2 then
      local out = {}
      for _, c in ipairs(msg.result.content) do out[#out + 1] = c.text end
      return table.concat(out, "\n"), msg.result
    end
  end
  error("no answer to the tool call: " .. r.stdout .. r.stderr)
end

describe("security (issue 11)", function()
  local home
  before_each(function() home = h.home() end)
  after_each(function()
    h.cleanup()
    cap.cleanup()
  end)

  describe("environment", function()
    local secret = "hunter2-" .. math.random(1e9)
    local env = { SHANNOT_SPEC_SECRET = secret }

    it("shows nothing of the host's as /proc/1/environ, capturing or not", function()
      for _, prof in ipairs({ "readonly", "system" }) do
        local r = run({ "--profile", prof, "--json", "--", "sh", "-c",
          "tr '\\0' '\\n' < /proc/1/environ; echo ---; env" }, { home = home, env = env })
        assert.equal(0, r.code, r.stderr)
        local out = json.decode(r.stdout).stdout
        assert.falsy(out:find(secret, 1, true), prof .. ": " .. out)
        assert.equal("---", out:match("^([^\n]*)"), prof .. ": pid 1 has an environment: " .. out)
      end
    end)

    it("leaks nothing through MCP run_command either", function()
      local out = mcp_call(home, "run_command", { argv = { "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; env" } }, env)
      assert.falsy(out:find(secret, 1, true), out)
      assert.truthy(out:find("PATH=", 1, true), out)
    end)

    it("shows nothing of the SSH session's on a remote host", function()
      if not h.need(sshd.available(), "sshd") then return end
      if not cap.ROOT then return pending("the spec sshd runs as root") end
      local server = sshd.start()
      finally(server.stop)
      assert(fs.mkdir_p(home .. "/.ssh"))
      local target = server.user .. "@127.0.0.1:" .. server.port
      local a = h.shannot({ "remote", "add", "box", target, "--key", server.key }, { home = home })
      assert.equal(0, a.code, a.stderr)
      local r = run({ "--target", "box", "--accept-new", "--profile", "readonly", "--json", "--", "sh", "-c",
        "tr '\\0' '\\n' < /proc/1/environ; echo ---; env" }, { home = home })
      assert.equal(0, r.code, r.stderr)
      local out = json.decode(r.stdout).stdout
      assert.equal("---", out:match("^([^\n]*)"), "pid 1 has an environment: " .. out)
      assert.falsy(out:find("SSH_CONNECTION", 1, true), out)
    end)
  end)
end)
