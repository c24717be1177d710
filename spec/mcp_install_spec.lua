-- shannot mcp install: the text edit of a client's JSON config (everything
-- outside the shannot entry kept byte for byte), through the real binary
-- with a private HOME, and the module's functions with explicit paths.
local fs = require("shannot.fs")
local json = require("shannot.json")
local mi = require("shannot.mcp.install")
local toml = require("shannot.toml")
local h = require("support.h")

local function desktop(home) return home .. "/config/Claude/claude_desktop_config.json" end
local function code(home) return home .. "/.claude.json" end
local function codex(home) return home .. "/.codex/config.toml" end
local function lmstudio(home) return home .. "/.lmstudio/mcp.json" end

local function install(home, ...)
  return h.shannot({ "mcp", "install", ... }, { home = home })
end

local function read(path) return assert(fs.read_file(path)) end

local function put(path, data)
  assert(fs.mkdir_p(path:match("^(.*)/")))
  return h.write(path, data)
end

local function entry_of(path)
  return assert(json.decode(read(path), path)).mcpServers.shannot
end

-- The shannot entry as this file's style writes it, at 4 spaces.
local function pretty_entry(bin, ind, unit, extra)
  local i1, i2 = ind .. unit, ind .. unit .. unit
  return '"shannot": {\n' .. i1 .. '"command": ' .. json.encode(bin) .. ",\n" .. i1 .. '"args": [\n' ..
    i2 .. '"mcp"' .. (extra or "") .. "\n" .. i1 .. "]\n" .. ind .. "}"
end

-- Claude Code's own shape: other keys, a project with its own
-- mcpServers (not ours to touch), another user server, odd numbers.
local CLAUDE_JSON = [[
{
  "numStartups": 12,
  "projects": {
    "/home/u/p": {
      "mcpServers": {},
      "allowedTools": []
    }
  },
  "mcpServers": {
    "other": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "other-server"],
      "env": {"TOKEN": "x\"y\u00e9"}
    }
  },
  "zeta": [1, 2.50, 1e3, {"b": null, "a": true}],
  "userID": "abc"
}
]]

describe("mcp install", function()
  local home
  before_each(function() home = h.home() end)
  after_each(h.cleanup)

  describe("through the binary", function()
    it("creates both missing files (and Claude Desktop's directory) with their modes", function()
      local r = install(home, "--client", "claude-desktop")
      assert.equal(0, r.code, r.stderr)
      assert.matches("added shannot to " .. desktop(home) .. " (Claude Desktop); created it", r.stdout, 1, true)
      r = install(home, "--client", "claude-code")
      assert.equal(0, r.code, r.stderr)
      assert.matches("added shannot to " .. code(home) .. " (Claude Code); created it", r.stdout, 1, true)
      for _, f in ipairs({ desktop(home), code(home) }) do
        local e = entry_of(f)
        assert.equal(h.BIN, e.command)
        assert.same({ "mcp" }, e.args)
      end
      assert.equal(420, fs.stat(desktop(home)).mode)
      assert.equal(384, fs.stat(code(home)).mode)
      assert.equal(read(code(home)), mi.edit(nil, mi.entry(h.BIN), "x"))
    end)

    it("adds to an existing mcpServers, keeping the rest byte for byte and the mode", function()
      h.write(code(home), CLAUDE_JSON)
      assert(fs.chmod(code(home), 416))  -- 0640
      local r = install(home, "--client", "claude-code")
      assert.equal(0, r.code, r.stderr)
      assert.equal("added shannot to " .. code(home) .. " (Claude Code)\n", r.stdout)
      local want = CLAUDE_JSON:gsub('("env": {"TOKEN": "x\\"y\\u00e9"}\n    })',
        function(s) return s .. ",\n    " .. pretty_entry(h.BIN, "    ", "  ") end)
      assert.are_not.equal(CLAUDE_JSON, want)
      assert.equal(want, read(code(home)))
      assert.equal(416, fs.stat(code(home)).mode)
      assert.is_false(fs.exists(desktop(home)))
    end)

    it("adds mcpServers as the last member when there is none, in the file's indent", function()
      local old = '{\n\t"a": {"x": [1, 2]},\n\t"b": "c"\n}\n'
      put(desktop(home), old)
      local r = install(home, "--client", "claude-desktop")
      assert.equal(0, r.code, r.stderr)
      assert.equal('{\n\t"a": {"x": [1, 2]},\n\t"b": "c",\n\t"mcpServers": {\n\t\t' ..
        pretty_entry(h.BIN, "\t\t", "\t") .. '\n\t}\n}\n', read(desktop(home)))
    end)

    it("updates an existing shannot entry in place, keeping its other members", function()
      local old = '{\n  "mcpServers": {\n    "a": {"command": "a"},\n    "shannot": {\n' ..
        '      "command": "/old/shannot",\n      "env": {"X": "1"},\n      "args": ["mcp"]\n    },\n' ..
        '    "z": {"command": "z"}\n  },\n  "k": 1\n}\n'
      put(desktop(home), old)
      local r = install(home, "--client", "claude-desktop")
      assert.equal(0, r.code, r.stderr)
      assert.equal("updated shannot in " .. desktop(home) .. " (Claude Desktop)\n", r.stdout)
      assert.equal((old:gsub("/old/shannot", h.BIN):gsub('"args": %["mcp"%]',
        '"args": [\n        "mcp"\n      ]')), read(desktop(home)))
    end)

    it("is idempotent: a second install leaves the file alone", function()
      h.write(code(home), CLAUDE_JSON)
      assert(fs.mkdir_p(home .. "/config/Claude"))
      assert.equal(0, install(home).code)
      local before, st = read(code(home)), fs.stat(code(home))
      local r = install(home)
      assert.equal(0, r.code, r.stderr)
      assert.matches("shannot in " .. code(home) .. " is already up to date (Claude Code)", r.stdout, 1, true)
      assert.matches("is already up to date (Claude Desktop)", r.stdout, 1, true)
      assert.equal(before, read(code(home)))
      assert.equal(st.ino, fs.stat(code(home)).ino)  -- not even rewritten
    end)

    it("reports a malformed file in one line, naming it, and changes no file", function()
      local cases = {
        { "garbage {", ":1:1: expected value" },
        { "[1, 2]\n", ": the top level is not a JSON object (it is an array)" },
        { '{"mcpServers": "shannot"}', ': "mcpServers" is not a JSON object (it is a string)' },
        { '{"a": 1,}', ":1:" },
      }
      assert(fs.mkdir_p(home .. "/config/Claude"))
      for _, c in ipairs(cases) do
        h.write(code(home), c[1])
        local st = fs.stat(code(home))
        local r = install(home)
        assert.equal(2, r.code, c[1])
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("shannot: " .. code(home) .. c[2], r.stderr, 1, true)
        assert.matches("not changed (Claude Code)", r.stderr, 1, true)
        assert.equal(c[1], read(code(home)))
        assert.equal(st.ino, fs.stat(code(home)).ino)
        assert.is_false(fs.exists(desktop(home)))  -- --client all: neither is written
        assert.equal("", r.stdout)
      end
    end)

    it("--dry-run shows the change as a diff and changes nothing", function()
      h.write(code(home), CLAUDE_JSON)
      assert(fs.mkdir_p(home .. "/config/Claude"))
      local r = install(home, "--dry-run")
      assert.equal(0, r.code, r.stderr)
      assert.matches("would add shannot to " .. code(home) .. " (Claude Code)\n--- " .. code(home) ..
        "\n+++ " .. code(home) .. "\n", r.stdout, 1, true)
      assert.matches('+      "command": ' .. json.encode(h.BIN) .. ",", r.stdout, 1, true)
      assert.matches("would add shannot to " .. desktop(home) .. " (Claude Desktop); would create it\n" ..
        "--- /dev/null\n", r.stdout, 1, true)
      assert.equal(CLAUDE_JSON, read(code(home)))
      assert.is_false(fs.exists(desktop(home)))
    end)

    it("--json says what was done", function()
      local r = install(home, "--client", "claude-code", "--json")
      assert.equal(0, r.code, r.stderr)
      local doc = assert(json.decode(r.stdout))
      assert.equal(1, #doc.clients)
      assert.equal("added", doc.clients[1].status)
      assert.is_true(doc.clients[1].created)
      assert.equal(code(home), doc.clients[1].path)
      assert.same({ command = h.BIN, args = { "mcp" } }, doc.entry)
    end)

    it("--target must name a configured remote or ssh executor", function()
      local r = install(home, "--target", "nowhere")
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches('unknown target "nowhere"', r.stderr, 1, true)
      assert.is_false(fs.exists(code(home)))
      h.write(home .. "/config/shannot/config.toml",
        '[remotes.web]\nhost = "example.com"\n[executor.box]\ntype = "ssh"\nhost = "h"\n')
      r = install(home, "--client", "claude-code", "--target", "web")
      assert.equal(0, r.code, r.stderr)
      assert.same({ "mcp", "--target", "web" }, entry_of(code(home)).args)
      r = install(home, "--client", "claude-code", "--target", "box")
      assert.equal(0, r.code, r.stderr)
      assert.matches("updated shannot", r.stdout, 1, true)
      assert.same({ "mcp", "--target", "box" }, entry_of(code(home)).args)
    end)

    it("refuses an unknown client and extra words", function()
      local r = install(home, "--client", "claude-dekstop")
      assert.equal(2, r.code)
      assert.matches('did you mean "claude-desktop"', r.stderr, 1, true)
      r = install(home, "now")
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
    end)
  end)

  describe("codex, lmstudio and --client all", function()
    -- Codex's own shape: top-level keys, comments, other servers, a
    -- profile, an inline table, a trailing comment.
    local CODEX_TOML = table.concat({
      "# Codex settings",
      'model = "o3"  # the default',
      'approval_policy = "on-request"',
      "",
      "[mcp_servers.docs]",
      'command = "npx"',
      'args = ["-y", "docs-server"]',
      'env = { TOKEN = "s3cr\\u00e9t" }',
      "",
      "# a profile",
      "[profiles.fast]",
      "model = 'o4-mini'",
      "",
      "# the end",
      "",
    }, "\n")

    local function block(bin, ...)
      local args = { '"mcp"' }
      for _, a in ipairs({ ... }) do args[#args + 1] = json.encode(a) end
      return "[mcp_servers.shannot]\ncommand = " .. json.encode(bin) .. "\nargs = [" .. table.concat(args, ", ") ..
        "]\n"
    end

    local function codex_entry(path)
      return assert(toml.parse(read(path), path)).mcp_servers.shannot
    end

    it("creates a missing config.toml (and ~/.codex), mode 0600", function()
      local r = install(home, "--client", "codex")
      assert.equal(0, r.code, r.stderr)
      assert.equal("added shannot to " .. codex(home) .. " (Codex); created it\n", r.stdout)
      assert.equal(block(h.BIN), read(codex(home)))
      assert.equal(384, fs.stat(codex(home)).mode)
      local e = codex_entry(codex(home))
      assert.equal(h.BIN, e.command)
      assert.same({ "mcp" }, { table.unpack(e.args) })
    end)

    it("adds a table to an existing config.toml, keeping the rest byte for byte and the mode", function()
      put(codex(home), CODEX_TOML)
      assert(fs.chmod(codex(home), 416))  -- 0640
      local r = install(home, "--client", "codex")
      assert.equal(0, r.code, r.stderr)
      assert.equal("added shannot to " .. codex(home) .. " (Codex)\n", r.stdout)
      assert.equal(CODEX_TOML .. "\n" .. block(h.BIN), read(codex(home)))
      assert.equal(416, fs.stat(codex(home)).mode)
      local doc = assert(toml.parse(read(codex(home))))
      assert.equal("o3", doc.model)
      assert.equal("s3cr\u{e9}t", doc.mcp_servers.docs.env.TOKEN)
      assert.equal("o4-mini", doc.profiles.fast.model)
      assert.equal(h.BIN, doc.mcp_servers.shannot.command)
    end)

    it("is idempotent, and updates a different entry in place, keeping its other keys and comments", function()
      put(codex(home), CODEX_TOML)
      assert.equal(0, install(home, "--client", "codex").code)
      local before, st = read(codex(home)), fs.stat(codex(home))
      local r = install(home, "--client", "codex")
      assert.equal(0, r.code, r.stderr)
      assert.equal("shannot in " .. codex(home) .. " is already up to date (Codex)\n", r.stdout)
      assert.equal(before, read(codex(home)))
      assert.equal(st.ino, fs.stat(codex(home)).ino)

      local old = '[mcp_servers.shannot]  # ours\ncommand = "/old/shannot"  # moved\n' ..
        'startup_timeout_sec = 20\nargs = [\n  "mcp",\n]\n\n[other]\nx = 1\n'
      put(codex(home), old)
      r = install(home, "--client", "codex", "--profile", "system")
      assert.equal(0, r.code, r.stderr)
      assert.equal("updated shannot in " .. codex(home) .. " (Codex)\n", r.stdout)
      assert.equal('[mcp_servers.shannot]  # ours\ncommand = ' .. json.encode(h.BIN) .. '  # moved\n' ..
        'startup_timeout_sec = 20\nargs = ["mcp", "--profile", "system"]\n\n[other]\nx = 1\n', read(codex(home)))
    end)

    it("reports a malformed or uneditable config.toml in one line with FILE:LINE and changes nothing", function()
      assert(fs.mkdir_p(home .. "/.lmstudio"))
      local cases = {
        { 'model = "o3"\n[mcp_servers\n', ":2:13: expected ']' to close the table header" },
        { 'a = 1\na = 2\n', ':2:1: duplicate key "a"' },
        { 'mcp_servers = { shannot = { command = "x" } }\n',
          ":1:1: cannot edit table [mcp_servers.shannot]: mcp_servers is an inline table" },
      }
      for _, c in ipairs(cases) do
        put(codex(home), c[1])
        local st = fs.stat(codex(home))
        local r = install(home)
        assert.equal(2, r.code, c[1])
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("shannot: " .. codex(home) .. c[2], r.stderr, 1, true)
        assert.matches("; not changed (Codex)", r.stderr, 1, true)
        assert.equal(c[1], read(codex(home)))
        assert.equal(st.ino, fs.stat(codex(home)).ino)
        assert.is_false(fs.exists(lmstudio(home)))  -- --client all: none is written
        assert.equal("", r.stdout)
      end
    end)

    it("honours CODEX_HOME", function()
      local dir = home .. "/elsewhere"
      assert(fs.mkdir_p(dir))
      local r = h.shannot({ "mcp", "install" }, { home = home, env = { CODEX_HOME = dir } })
      assert.equal(0, r.code, r.stderr)
      assert.matches("added shannot to " .. dir .. "/config.toml (Codex); created it", r.stdout, 1, true)
      assert.equal(block(h.BIN), read(dir .. "/config.toml"))
      assert.is_false(fs.exists(home .. "/.codex"))
    end)

    it("lmstudio: creates ~/.lmstudio/mcp.json and adds to an existing one, keeping the rest", function()
      local r = install(home, "--client", "lmstudio")
      assert.equal(0, r.code, r.stderr)
      assert.equal("added shannot to " .. lmstudio(home) .. " (LM Studio); created it\n", r.stdout)
      assert.equal(mi.edit(nil, mi.entry(h.BIN), "x"), read(lmstudio(home)))
      assert.equal(384, fs.stat(lmstudio(home)).mode)
      local old = '{\n  "mcpServers": {\n    "other": {"command": "o", "env": {"K": "v"}}\n  }\n}\n'
      h.write(lmstudio(home), old)
      r = install(home, "--client", "lmstudio")
      assert.equal(0, r.code, r.stderr)
      assert.equal(old:gsub('"K": "v"}}', function(x) return x .. ",\n    " .. pretty_entry(h.BIN, "    ", "  ") end),
        read(lmstudio(home)))
      assert.equal(0, install(home, "--client", "lmstudio").code)
      assert.matches("already up to date (LM Studio)", install(home, "--client", "lmstudio").stdout, 1, true)
    end)

    it("--client all touches only the clients whose config directory exists, and says which it skipped", function()
      assert(fs.mkdir_p(home .. "/.codex"))
      local r = install(home, "--client", "all")
      assert.equal(0, r.code, r.stderr)
      assert.equal("added shannot to " .. codex(home) .. " (Codex); created it\n" ..
        "skipped Claude Desktop: no " .. home .. "/config/Claude\n" ..
        "skipped Claude Code: no " .. code(home) .. " or " .. home .. "/.claude\n" ..
        "skipped LM Studio: no " .. home .. "/.lmstudio\n", r.stdout)
      assert.equal(block(h.BIN), read(codex(home)))
      for _, f in ipairs({ home .. "/config/Claude", code(home), home .. "/.claude", home .. "/.lmstudio" }) do
        assert.is_false(fs.exists(f), f)
      end
      r = install(home, "--json")
      local doc = assert(json.decode(r.stdout))
      assert.equal("codex", doc.clients[1].client)
      assert.equal(3, #doc.skipped)
      assert(fs.mkdir_p(home .. "/.claude"))
      assert.matches("added shannot to " .. code(home) .. " (Claude Code); created it", install(home).stdout, 1, true)
    end)

    it("--client all with no client found is an error naming what it looked for", function()
      local r = install(home)
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("found no MCP client (Claude Desktop: no " .. home .. "/config/Claude;", r.stderr, 1, true)
      assert.matches("name one with --client (claude-desktop, claude-code, codex, lmstudio)", r.stderr, 1, true)
      assert.equal("", r.stdout)
    end)
  end)

  describe("edit", function()
    local e = mi.entry("/opt/bin/shannot", "web")

    it("keeps a one-line file on one line", function()
      local new, status = mi.edit('{"a":1,"mcpServers":{"x":{}}}', e, "f")
      assert.equal("added", status)
      assert.equal('{"a":1,"mcpServers":{"x":{},"shannot":{"command":"/opt/bin/shannot",' ..
        '"args":["mcp","--target","web"]}}}', new)
    end)

    it("fills an empty object and keeps a byte order mark", function()
      local new = mi.edit('\239\187\191{}', e, "f")
      assert.equal('\239\187\191{\n  "mcpServers": {\n    ' .. pretty_entry("/opt/bin/shannot", "    ", "  ",
        ',\n        "--target",\n        "web"') .. "\n  }\n}", new)
      assert.equal("added", select(2, mi.edit(" \n", e, "f")))
    end)

    it("replaces a shannot entry that is not an object, and edits the last of duplicate keys", function()
      local new, status = mi.edit('{"mcpServers": {"shannot": "x"}, "mcpServers": {"shannot": 1}}', e, "f")
      assert.equal("updated", status)
      assert.equal('{"mcpServers": {"shannot": "x"}, "mcpServers": {"shannot": {"command": "/opt/bin/shannot", ' ..
        '"args": ["mcp", "--target", "web"]}}}', new)
      assert.equal("same", select(2, mi.edit(new, e, "f")))
    end)

    it("treats changed args as an update", function()
      local old = mi.edit(nil, mi.entry("/opt/bin/shannot"), "f")
      assert.equal("updated", select(2, mi.edit(old, e, "f")))
      assert.equal("same", select(2, mi.edit(old, mi.entry("/opt/bin/shannot"), "f")))
    end)

    it("names the file and the problem", function()
      assert.same({ nil, 'f: "mcpServers" is not a JSON object (it is null); not changed' },
        { mi.edit('{"mcpServers": null}', e, "f") })
      assert.same({ nil, "f: the top level is not a JSON object (it is a number); not changed" },
        { mi.edit("3", e, "f") })
    end)
  end)

  describe("plan and write", function()
    it("finds the files from HOME, XDG_CONFIG_HOME and CLAUDE_CONFIG_DIR", function()
      local env = { HOME = "/h" }
      local function getenv(k) return env[k] end
      assert.equal("/h/.config/Claude/claude_desktop_config.json", mi.config_path("claude-desktop", getenv))
      assert.equal("/h/.claude.json", mi.config_path("claude-code", getenv))
      assert.equal("/h/.codex/config.toml", mi.config_path("codex", getenv))
      assert.equal("/h/.lmstudio/mcp.json", mi.config_path("lmstudio", getenv))
      env.XDG_CONFIG_HOME, env.CLAUDE_CONFIG_DIR, env.CODEX_HOME = "/x", "/c", "/cx"
      assert.equal("/x/Claude/claude_desktop_config.json", mi.config_path("claude-desktop", getenv))
      assert.equal("/c/.claude.json", mi.config_path("claude-code", getenv))
      assert.equal("/cx/config.toml", mi.config_path("codex", getenv))
    end)

    it("writes through a symlink, keeping the link", function()
      local dir = h.tmpdir()
      h.write(dir .. "/real.json", '{"k": 1}\n')
      assert(fs.symlink("real.json", dir .. "/link.json"))
      local p = assert(mi.plan(dir .. "/link.json", mi.entry("/b")))
      assert(mi.write(p))
      assert.equal("link", fs.lstat(dir .. "/link.json").type)
      assert.equal("/b", entry_of(dir .. "/real.json").command)
    end)

    it("refuses to write a file that changed after it was read", function()
      local f = h.write(h.tmpdir() .. "/c.json", "{}")
      local p = assert(mi.plan(f, mi.entry("/b")))
      h.write(f, '{"new": true}')
      local ok, e = mi.write(p)
      assert.is_nil(ok)
      assert.equal(3, e.exit)
      assert.matches("changed while shannot was editing it", e.message, 1, true)
      assert.equal('{"new": true}', read(f))
    end)

    it("reports what is not a regular file", function()
      local p, e = mi.plan(h.tmpdir(), mi.entry("/b"))
      assert.is_nil(p)
      assert.equal(2, e.exit)
      assert.matches("not a regular file", e.message, 1, true)
    end)
  end)
end)
