-- The command line of the real binary: version, help, profile, status, lua,
-- SHANNOT_LUA_DIR, and one-line errors with the right exit codes.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

describe("shannot cli", function()
  local home
  before_each(function() home = h.home() end)
  after_each(h.cleanup)

  it("prints its version", function()
    local r = h.shannot({ "--version" }, { home = home })
    assert.equal(0, r.code)
    assert.matches("^shannot %d+%.%d+%.%d+\n$", r.stdout)
  end)

  it("lists commands and shows help per command", function()
    local r = h.shannot({ "help" }, { home = home })
    assert.equal(0, r.code)
    for _, c in ipairs({ "run", "profile", "status", "lua" }) do
      assert.truthy(r.stdout:find("\n  " .. c .. " ", 1, true), c)
    end
    local run = h.shannot({ "help", "run" }, { home = home })
    assert.matches("^usage: shannot run", run.stdout)
    assert.matches("%-%-timeout S", run.stdout)
    assert.equal(run.stdout, h.shannot({ "run", "--help" }, { home = home }).stdout)
  end)

  it("with no command prints help to stderr and exits 2", function()
    local r = h.shannot({}, { home = home })
    assert.equal(2, r.code)
    assert.matches("usage: shannot COMMAND", r.stderr)
  end)

  it("names an unknown command with a suggestion", function()
    local r = h.shannot({ "stauts" }, { home = home })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r))
    assert.matches('unknown command "stauts" %(did you mean "status"%?%)', r.stderr)
    local e = h.shannot({ "help", "nope" }, { home = home })
    assert.equal(2, e.code)
  end)

  it("renders hostile input inert in messages", function()
    local r = h.shannot({ "\27]0;pwned\7" }, { home = home })
    assert.equal(2, r.code)
    assert.falsy(r.stderr:find("\27", 1, true))
    assert.truthy(r.stderr:find("\\x1b]0;pwned\\x07", 1, true))
  end)

  it("shows invisible code points escaped: soft hyphen, fillers, variation selectors, tags, blanks, marks", function()
    local text = require("shannot.text")
    for _, cp in ipairs({ 0xad, 0x115f, 0x3164, 0xfe0f, 0xffa0, 0xe0041, 0xe0100, 0x200b, 0x202e,
      0xa0, 0x2800, 0x3000, 0x2007, 0x202f, 0x301, 0x20e3, 0x1ab0, 0x61c, 0x1bca0 }) do
      local shown = text.inert("a" .. utf8.char(cp) .. "b")
      assert.equal(string.format("a\\u{%x}b", cp), shown)
    end
    assert.equal("caf\u{e9}", text.inert("caf\u{e9}"))  -- visible text stays as it is
    -- strings are left out of output in one pass (an opener without an end
    -- searched the whole rest each time: 900 kB of them took minutes)
    assert.equal(string.rep("x", 300000), text.without_strings(string.rep("\27]x", 300000)))
    assert.equal("ab\u{201d}c", text.without_strings("a\27]0;t\7b\194\1570;t\194\156\u{201d}c"))
    -- and JSON on a terminal carries no C1 control raw
    assert.equal('"a\\u009d0;x\\u0007b\u{e9}"', require("shannot.json").encode("a\u{9d}0;x\7b\u{e9}"))
  end)

  it("reads its test hooks (SHANNOT_TEST_*) in one module only", function()
    local r = assert(require("shannot.proc").run({ "grep", "-rl", "SHANNOT_TEST_", h.ROOT .. "/lua",
      h.ROOT .. "/src" }))
    assert.equal(h.ROOT .. "/lua/shannot/testhooks.lua\n", r.stdout)
  end)

  describe("profile", function()
    it("lists built-in and user profiles, and reports a broken one", function()
      h.write(home .. "/config/shannot/profiles/mine.json", '{"name": "mine", "description": "my own"}')
      h.write(home .. "/config/shannot/profiles/broken.json", '{"name": ')
      local r = h.shannot({ "profile", "list" }, { home = home })
      for _, name in ipairs({ "diagnostics", "minimal", "readonly", "system", "systemd", "mine" }) do
        assert.truthy(r.stdout:find("\n" .. name .. " ", 1, true) or r.stdout:find("^" .. name .. " "), name)
      end
      assert.matches("BROKEN: .*broken%.json:1:", r.stdout)
      assert.equal(2, r.code)
      local j = h.shannot({ "profile", "list", "--json" }, { home = home })
      local list = json.decode(j.stdout)
      assert.equal(7, #list)
    end)

    it("lets a user profile override a built-in one", function()
      h.write(home .. "/config/shannot/profiles/minimal.json", '{"name": "minimal", "description": "mine"}')
      local r = h.shannot({ "profile", "show", "minimal" }, { home = home })
      local doc = json.decode(r.stdout)
      assert.equal("mine", doc.description)
      assert.truthy(doc.source:find("minimal.json", 1, true))
    end)

    it("shows a profile with its defaults", function()
      local r = h.shannot({ "profile", "show", "system" }, { home = home })
      assert.equal(0, r.code)
      local doc = json.decode(r.stdout)
      assert.equal("system", doc.name)
      assert.equal("built-in", doc.source)
      assert.is_true(doc.network_isolation)
      assert.truthy(#doc.capture > 0)
      assert.truthy(#doc.defer > 0)
    end)

    it("checks a file and prints the bwrap command line", function()
      local path = h.write(home .. "/p.json", [[{"name": "p", "binds": [
        {"source": "/usr", "target": "/usr"}, {"source": "/proc", "target": "/proc"},
        {"source": "/nonexistent", "target": "/x"}]}]])
      local r = h.shannot({ "profile", "check", path }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find(path .. ": ok (profile p)", 1, true))
      assert.matches("warning: bind of /proc is ignored", r.stdout)
      assert.matches("warning: bind source /nonexistent does not exist", r.stdout)
      assert.matches("\nbwrap \\\n    %-%-ro%-bind /usr /usr", r.stdout)
      assert.matches("%-%-cap%-drop ALL", r.stdout)
    end)

    it("check fails with exit 2 on a bad file", function()
      local path = h.write(home .. "/p.json", '{"name": "p", "binds": "all"}')
      local r = h.shannot({ "profile", "check", path }, { home = home })
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      local missing = h.shannot({ "profile", "check", home .. "/missing.json" }, { home = home })
      assert.equal(2, missing.code)
      assert.matches("missing%.json: No such file", missing.stderr)
      assert.equal(2, h.shannot({ "profile", "frob" }, { home = home }).code)
      assert.equal(2, h.shannot({ "profile" }, { home = home }).code)
    end)
  end)

  it("status reports what works here, tried", function()
    local r = h.shannot({ "status", "--json" }, { home = home })
    local s = json.decode(r.stdout)
    assert.is_true(s.bwrap.ok)
    assert.matches("^bubblewrap ", s.bwrap.version)
    assert.is_true(s.sandbox.ok)
    assert.is_boolean(s.user_namespaces.ok)
    assert.is_boolean(s.overlayfs.ok)
    assert.equal(home .. "/data/shannot", s.paths.data_dir)
    assert.equal(home .. "/config/shannot/config.toml", s.paths.config_file)
    assert.equal(0, r.code)
    -- the overlay probe leaves nothing behind
    assert.same({}, fs.readdir(home .. "/data/shannot/staging"))
    local text = h.shannot({ "status" }, { home = home })
    assert.matches("sandbox works%s+yes", text.stdout)
    local missing = h.shannot({ "status" }, { home = home, env = { SHANNOT_BWRAP = "/nonexistent/bwrap" } })
    assert.equal(4, missing.code)
    assert.matches("apt%-get install bubblewrap", missing.stdout)
  end)

  describe("lua", function()
    it("runs a file with arg and ... as the lua interpreter does", function()
      local script = h.write(home .. "/s.lua", [[
        local shannot = require("shannot")
        print(arg[0]:match("s%.lua$"), arg[1], arg[2], select("#", ...), shannot.version)
        print(shannot.profile.load("minimal").name)
      ]])
      local r = h.shannot({ "lua", script, "a", "--b" }, { home = home })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^s%.lua\ta\t%-%-b\t2\t%d+%.%d+%.%d+\nminimal\n$", r.stdout)
    end)

    it("reports script errors with a traceback and exit 1", function()
      local script = h.write(home .. "/e.lua", "local x = nil\nreturn x.y\n")
      local r = h.shannot({ "lua", script }, { home = home })
      assert.equal(1, r.code)
      assert.matches("e%.lua:2: attempt to index", r.stderr)
      assert.matches("stack traceback", r.stderr)
    end)

    it("reports a syntax error and a missing file with exit 2", function()
      local script = h.write(home .. "/bad.lua", "if then\n")
      local r = h.shannot({ "lua", script }, { home = home })
      assert.equal(2, r.code)
      assert.matches("bad%.lua:1:", r.stderr)
      assert.equal(2, h.shannot({ "lua", home .. "/none.lua" }, { home = home }).code)
      assert.equal(2, h.shannot({ "lua" }, { home = home }).code)
    end)

    it("reads the script from stdin with -", function()
      local r = h.shannot({ "lua", "-", "x" }, { home = home, input = "print(arg[1])" })
      assert.equal("x\n", r.stdout)
    end)
  end)

  it("SHANNOT_LUA_DIR puts Lua modules from disk before the embedded ones", function()
    local dir = h.tmpdir()
    assert(fs.mkdir_p(dir .. "/shannot"))
    h.write(dir .. "/shannot/const.lua", [[
      return { VERSION = "9.9.9-patched",
        EXIT = { OK = 0, FAILED = 1, USAGE = 2, REFUSED = 3, ENV = 4, INTERNAL = 70 } }
    ]])
    local r = h.shannot({ "--version" }, { home = home, env = { SHANNOT_LUA_DIR = dir } })
    assert.equal("shannot 9.9.9-patched\n", r.stdout)
    local real = h.shannot({ "--version" }, { home = home, env = { SHANNOT_LUA_DIR = h.ROOT .. "/lua" } })
    assert.matches("^shannot %d", real.stdout)
  end)

  -- `shannot status` with its module replaced by one whose run does body
  local function status_doing(body)
    local dir = h.tmpdir()
    assert(fs.mkdir_p(dir .. "/shannot/cmd"))
    h.write(dir .. "/shannot/cmd/status.lua", "return { run = function() " .. body .. " end }")
    return h.shannot({ "status" }, { home = home, env = { SHANNOT_LUA_DIR = dir } })
  end

  it("reports a bug as an internal error with exit 70", function()
    local r = status_doing("error('boom')")
    assert.equal(70, r.code)
    assert.matches("internal error", r.stderr)
    assert.matches("boom", r.stderr)
  end)

  it("names the file and line of a bug in the embedded modules (their bytecode keeps lines)", function()
    local r = status_doing("return require('shannot.text').command_line(42)")
    assert.equal(70, r.code)
    assert.matches("lua/shannot/text%.lua:%d+: in function 'shannot%.text%.command_line'", r.stderr)
  end)

  it("reports a command that ends without an exit code as an internal error", function()
    local r = status_doing("return 'done'")
    assert.equal(70, r.code)
    assert.matches("internal error: the command ended with \"done\", not an exit code", r.stderr, 1, true)
  end)
end)
