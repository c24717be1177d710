-- config.toml, project overrides, command patterns and Lua policy files,
-- through the real binary where the behaviour is the CLI's.
local cmdpattern = require("shannot.policy.cmdpattern")
local config = require("shannot.config")
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

local function user_config(home, text)
  return h.write(home .. "/config/shannot/config.toml", text)
end

-- A project directory with .shannot/ and a subdirectory to run from.
local function project(text, policy)
  local dir = h.tmpdir()
  assert(fs.mkdir_p(dir .. "/.shannot"))
  assert(fs.mkdir_p(dir .. "/a/b"))
  if text then h.write(dir .. "/.shannot/config.toml", text) end
  if policy then h.write(dir .. "/.shannot/policy.lua", policy) end
  return dir
end

local function show_json(home, cwd)
  local r = h.shannot({ "config", "show", "--json" }, { home = home, cwd = cwd })
  assert.equal(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("config", function()
  local home
  before_each(function() home = h.home() end)
  after_each(h.cleanup)

  describe("files and merge", function()
    it("keeps [groups.NAME] members for fleets", function()
      user_config(home, '[groups.web]\nmembers = ["web1", "deploy@web2:2222"]\n' ..
        '[groups.all]\nmembers = ["@web", "db1"]\n')
      local doc = show_json(home)
      assert.same({ "web1", "deploy@web2:2222" }, doc.config.groups.web.members)
      assert.same({ "@web", "db1" }, doc.config.groups.all.members)
      -- a list with its source per item, as config show and check print it
      assert.equal(home .. "/config/shannot/config.toml:2", doc.sources["groups.web.members"][2])
      local shown = h.shannot({ "config", "check" }, { home = home }).stdout
      assert.matches('groups.web.members = %[\n  "web1",%s+# [^\n]*config.toml:2\n', shown)
    end)

    it("uses the built-in defaults when there is no file", function()
      local doc = show_json(home)
      assert.equal("local", doc.config.default_executor)
      assert.equal(3600, doc.config.session.ttl)
      assert.is_true(contains(doc.config.profile.always_deny, "rm -r /"))
      assert.equal("built-in", doc.sources["session.ttl"])
    end)

    it("has a built-in [capture] ignore list that a file replaces, or empties (issue 18.6)", function()
      local doc = show_json(home)
      assert.same(require("shannot.config").DEFAULT_CAPTURE_IGNORE, doc.config.capture.ignore)
      assert.is_true(contains(doc.config.capture.ignore, "/var/log/**"))
      assert.is_true(contains(doc.config.capture.ignore, "**/__pycache__/**"))
      for _, g in ipairs(doc.config.capture.ignore) do
        assert.is_nil(g:find("^/etc"), "never /etc: " .. g)
        assert.is_nil(g:find("^/var/cache/%*%*"), "not all of /var/cache (debconf): " .. g)
      end
      assert.equal("built-in", doc.sources["capture.ignore"][1])
      user_config(home, '[capture]\nignore = ["/srv/tmp/**"]\n')
      assert.same({ "/srv/tmp/**" }, show_json(home).config.capture.ignore)
      user_config(home, "[capture]\nignore = []\n")
      assert.same({}, show_json(home).config.capture.ignore)
      -- a project file may not: what it leaves out nobody reviews
      user_config(home, "")
      local dir = project('[capture]\nignore = ["/etc/**"]\n')
      assert.same(require("shannot.config").DEFAULT_CAPTURE_IGNORE, show_json(home, dir).config.capture.ignore)
    end)

    it("lets the nearest project file override the user file key by key", function()
      user_config(home, '[session]\nttl = "2h"\n[audit]\nmax_files = 5\nrotation = "none"\n')
      local dir = project('[session]\nttl = "30m"\n')
      local doc = show_json(home, dir .. "/a/b")
      assert.equal(1800, doc.config.session.ttl)           -- project wins (shorter)
      assert.equal("none", doc.config.audit.rotation)      -- user file
      assert.equal(5, doc.config.audit.max_files)          -- user file
      assert.equal(dir .. "/.shannot/config.toml:2", doc.sources["session.ttl"])
      assert.equal(home .. "/config/shannot/config.toml:4", doc.sources["audit.max_files"])
    end)

    it("reads the file SHANNOT_CONFIG names, and refuses a missing one", function()
      local f = h.write(h.tmpdir() .. "/c.toml", '[session]\nttl = 60\n')
      local r = h.shannot({ "config", "show", "--json" }, { home = home, env = { SHANNOT_CONFIG = f } })
      assert.equal(60, json.decode(r.stdout).config.session.ttl)
      local m = h.shannot({ "config", "show" }, { home = home, env = { SHANNOT_CONFIG = f .. ".gone" } })
      assert.equal(2, m.code)
      assert.is_true(h.one_line_error(m), m.stderr)
      assert.matches("c.toml.gone: no such file", m.stderr)
    end)

    it("never lets a project file remove a deny pattern, only add one", function()
      user_config(home, '[profile]\nalways_deny = ["curl *"]\n')
      local dir = project('[profile]\nalways_deny = []\nauto_approve = ["tail *"]\n')
      local doc = show_json(home, dir)
      local deny = doc.config.profile.always_deny
      assert.is_true(contains(deny, "curl *"))
      assert.is_true(contains(deny, "rm -r /"))
      assert.is_false(contains(doc.config.profile.auto_approve, "tail *"))  -- refused
      local p2 = project('[profile]\nalways_deny = ["wget *"]\n')
      local deny2 = show_json(home, p2).config.profile.always_deny
      assert.is_true(contains(deny2, "curl *") and contains(deny2, "wget *") and contains(deny2, "mkfs"))
    end)

    it("resolves ~ and relative paths", function()
      user_config(home, '[executor.box]\ntype = "ssh"\nhost = "h"\nkey_file = "~/k"\n' ..
        'known_hosts = "kh"\n')
      local doc = show_json(home)
      assert.equal(home .. "/k", doc.config.executor.box.key_file)
      assert.equal(home .. "/config/shannot/kh", doc.config.executor.box.known_hosts)
    end)

    it("config path lists every file and whether it exists", function()
      local dir = project('[session]\nttl = 5\n')
      local r = h.shannot({ "config", "path" }, { home = home, cwd = dir .. "/a" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("config%s+" .. home:gsub("%p", "%%%0") .. "/config/shannot/config.toml %(not present%)", r.stdout)
      assert.matches("project%s+" .. dir:gsub("%p", "%%%0") .. "/.shannot/config.toml\n", r.stdout)
      assert.matches("policy%s+.-/.shannot/policy.lua %(not present%)", r.stdout)
    end)
  end)

  describe("project files found by walking up (issue 11)", function()
    local ROOT = require("shannot.core.sys").ids().euid == 0

    it("may only make things stricter: everything else is refused and listed", function()
      local dir = project(table.concat({
        'default_executor = "box"',
        "[executor.local]", 'bwrap_path = "/tmp/evil-bwrap"',
        "[executor.box]", 'type = "ssh"', 'host = "evil.example"',
        "[remotes.web]", 'host = "evil.example"',
        "[audit]", "enabled = false", 'path = "/tmp/elsewhere"',
        "[profile]", 'auto_approve = ["rm *"]', 'always_deny = ["curl *"]', 'defer = ["apachectl"]',
        "[policy]", 'auto_approve = ["/etc/**"]', 'deny = ["/etc/shadow"]', 'review = ["/srv/**"]',
        "[session]", "ttl = 999999",
      }, "\n") .. "\n")
      local doc = show_json(home, dir)
      assert.equal("local", doc.config.default_executor)
      assert.is_nil(doc.config.executor["local"])
      assert.is_nil(doc.config.executor.box)
      assert.is_nil(doc.config.remotes.web)
      assert.is_true(doc.config.audit.enabled)
      assert.equal(home .. "/data/shannot/audit", doc.config.audit.path)
      assert.is_false(contains(doc.config.profile.auto_approve, "rm *"))
      assert.is_false(contains(doc.config.policy.auto_approve, "/etc/**"))
      assert.equal(3600, doc.config.session.ttl)
      -- what it may do, it does
      assert.is_true(contains(doc.config.profile.always_deny, "curl *"))
      assert.is_true(contains(doc.config.profile.defer, "apachectl"))
      assert.is_true(contains(doc.config.policy.deny, "/etc/shadow"))
      assert.is_true(contains(doc.config.policy.review, "/srv/**"))
      local c = h.shannot({ "config", "check" }, { home = home, cwd = dir })
      assert.equal(0, c.code, c.stderr)
      for _, key in ipairs({ "default_executor", "executor.local.bwrap_path", "executor.box.host", "remotes.web.host",
        "audit.enabled", "audit.path", "profile.auto_approve", "policy.auto_approve", "session.ttl" }) do
        assert.matches("# refused " .. key:gsub("%p", "%%%0") .. " = .-config.toml:%d+: ", c.stdout)
      end
      local r = h.shannot({ "sessions" }, { home = home, cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.matches("config.toml: 10 settings ignored: a project file may only make things stricter", r.stderr)
    end)

    it("may choose a profile only among those that capture, never one binding / writable", function()
      h.write(home .. "/config/shannot/profiles/rwroot.json", [[{"name": "rwroot",
        "binds": [{"source": "/", "target": "/", "read_only": false}], "capture": ["/etc"]}]])
      local marker = h.tmpdir() .. "/written-directly"
      for _, case in ipairs({ { "rwroot", "binds / writable" }, { "readonly", "captures nothing" },
        { "/tmp/x.json", "may name a profile, not a profile file" } }) do
        local dir = project('[executor.local]\nprofile = "' .. case[1] .. '"\n')
        local c = h.shannot({ "config", "check" }, { home = home, cwd = dir })
        assert.matches("# refused executor.local.profile = .-" .. case[2]:gsub("%p", "%%%0"), c.stdout)
        local r = h.shannot({ "run", "--json", "-c", "echo x > " .. marker }, { home = home, cwd = dir })
        assert.is_nil(fs.lstat(marker), "the host was written through profile " .. case[1])
        assert.equal("system", json.decode(r.stdout).profile, r.stderr)
      end
      local ok = project('[executor.local]\nprofile = "system"\n')
      assert.equal("system", show_json(home, ok).config.executor["local"].profile)
    end)

    it("may not choose a profile that lets the network in, reaches host sockets or passes bwrap arguments", function()
      h.write(home .. "/config/shannot/profiles/net.json", '{"name": "net", "capture": ["/etc"], ' ..
        '"network_isolation": false}')
      h.write(home .. "/config/shannot/profiles/args.json", '{"name": "args", "capture": ["/etc"], ' ..
        '"additional_args": ["--bind", "/", "/mnt"]}')
      h.write(home .. "/config/shannot/profiles/sock.json", '{"name": "sock", "capture": ["/etc"], ' ..
        '"unix_sockets": ["/run/docker.sock"]}')
      for name, why in pairs({ net = "lets the network in", args = "passes bwrap arguments of its own",
        sock = "reaches host sockets %(unix_sockets%)" }) do
        local dir = project('[executor.local]\nprofile = "' .. name .. '"\n')
        local c = h.shannot({ "config", "check" }, { home = home, cwd = dir })
        assert.matches("# refused executor.local.profile = .-" .. why, c.stdout)
      end
    end)

    it("adds deferred commands ([profile] defer)", function()
      local dir = project('[profile]\ndefer = ["mytool"]\n')
      local r = h.shannot({ "run", "--json", "-c", "mytool reload now" }, { home = home, cwd = dir })
      assert.equal(0, r.code, r.stderr)
      local s = json.decode(r.stdout).session
      assert.is_table(s, r.stderr)
      local show = h.shannot({ "show", s.id, "--json" }, { home = home })
      local ops = json.decode(show.stdout).operations
      assert.equal("exec", ops[#ops].kind)
      assert.same({ "mytool", "reload", "now" }, ops[#ops].argv)
    end)

    it("a project policy.lua may deny or ask for review, never approve", function()
      local approve_all = "return function(op) return 'approve', 'trust me' end\n"
      local function decision(cwd)
        local r = h.shannot({ "run", "--json", "-c", "echo x > /etc/shannot-spec-policy" }, { home = home, cwd = cwd })
        assert.equal(0, r.code, r.stderr)
        local id = json.decode(r.stdout).session.id
        return json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout).operations[1]
      end
      local dir = project(nil, approve_all)
      local op = decision(dir)
      assert.equal("review", op.decision)
      h.write(home .. "/config/shannot/policy.lua", approve_all)   -- the user's own file may
      op = decision(h.tmpdir())
      assert.equal("approve", op.decision)
      assert.equal("trust me", op.reason)
      local c = h.shannot({ "config", "check" }, { home = home, cwd = dir })
      assert.matches("policy.lua: 1 rule %(a project's: its approve decisions are ignored%)", c.stdout)
    end)

    it("is refused, naming it, when someone else owns it or may write it", function()
      if not h.need(ROOT, "root (files owned by another user)") then return end
      local cases = {
        { function(d) assert(fs.lchown(d .. "/.shannot/config.toml", 4242, 4242)) end,
          "config.toml: refused: it is owned by uid 4242, not by you or root" },
        { function(d) assert(fs.chmod(d .. "/.shannot/config.toml", 438)) end,
          "config.toml: refused: group or others may write it" },
        { function(d) assert(fs.lchown(d .. "/.shannot", 4242, 4242)) end,
          "/.shannot: refused: it is owned by uid 4242" },
        { function(d) assert(fs.chmod(d .. "/.shannot", 511)) end, "/.shannot: refused: group or others may write it" },
        { function(d) h.write(d .. "/.shannot/policy.lua", "return function() end\n")
          assert(fs.chmod(d .. "/.shannot/policy.lua", 436)) end,
          "policy.lua: refused: group or others may write it" },
        { function(d) assert(fs.remove(d .. "/.shannot/config.toml"))
          assert(fs.symlink("/etc/hostname", d .. "/.shannot/config.toml")) end,
          "config.toml: refused: it is a symlink" },
      }
      for _, c in ipairs(cases) do
        local dir = project("[session]\nttl = 60\n")
        c[1](dir)
        local r = h.shannot({ "run", "--", "true" }, { home = home, cwd = dir .. "/a" })
        assert.equal(2, r.code, r.stderr)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches(dir:gsub("%p", "%%%0") .. ".-" .. c[2]:gsub("%p", "%%%0"), r.stderr)
      end
    end)

    it("stops at a directory someone else owns, and at the user's home", function()
      if not h.need(ROOT, "root (a directory owned by another user)") then return end
      local dir = project("[session]\nttl = 60\n")
      assert(fs.mkdir_p(dir .. "/theirs/mine"))
      assert(fs.lchown(dir .. "/theirs", 4242, 4242))
      local r = h.shannot({ "config", "path" }, { home = home, cwd = dir .. "/theirs/mine" })
      assert.equal(0, r.code, r.stderr)
      assert.not_matches("project", r.stdout)
      -- a home inside the project: the walk never leaves it upwards
      local inner = dir .. "/a"
      local r2 = h.shannot({ "config", "path" }, { home = home, cwd = inner .. "/b", env = { HOME = inner } })
      assert.not_matches("project", r2.stdout)
      local r3 = h.shannot({ "config", "path" }, { home = home, cwd = inner .. "/b" })
      assert.matches("project", r3.stdout)
    end)
  end)

  describe("bad files", function()
    local cases = {
      { "[profle]\nx = 1\n", ':1:2: unknown key "profle" %(did you mean "profile"%?%)' },
      { "[audit]\nmax_files = \"x\"\n", ':2:1: audit.max_files must be a positive integer, not "x"' },
      { "[audit]\nenabled = 1\n", ":2:1: audit.enabled must be true or false, not 1" },
      { "[remotes.web]\nhost = \"h\"\nport = 70000\n", ":3:1: remotes.web.port must be a port number" },
      { "[executor.x]\ntype = \"docker\"\n", ':2:1: executor.x.type must be one of local, ssh, not "docker"' },
      { "[profile]\nalways_deny = \"rm\"\n", ":2:1: profile.always_deny must be an array of command patterns" },
      { "[policy]\ndeny = [\"etc/*\"]\n",
        ':2:1: policy.deny must be an array of path globs %(item 1: an absolute path glob, not "etc/%*"%)' },
      { "[session]\nttl = \"soon\"\n", ":2:1: session.ttl must be a duration" },
      { "[capture]\nignore = [\"var/log/*\"]\n", ':2:1: capture.ignore must be an array of path globs %(item 1: ' ..
        'an absolute path glob or a "%*%*/" one, not "var/log/%*"%)' },
      { "[capture]\nignore = \"/var/log/**\"\n", ":2:1: capture.ignore must be an array of path globs" },
      { "default_executor = \"nowhere\"\n", ':1: default_executor "nowhere" names no' },
      { "[remotes.web]\nport = 22\n", ":2: %[remotes.web%] needs a host" },
      -- fleets (issue 16.1): members are targets; a group may not include itself
      { "[groups.web]\nmembers = [\"a b\"]\n", ":2:1: groups.web.members must be an array of targets %(item 1" },
      { "[groups.a]\nmembers = [\"h1\", \"@b\"]\n[groups.b]\nmembers = [\"a\"]\n",
        ':%d: %[groups.[ab]%]: group "[ab]" includes itself %([ab] %-> [ab] %-> [ab]%)' },
      { "[groups.web]\nmembers = [\"@nope\"]\n", ':%d: %[groups.web%]: group "web": no group "nope"' },
      { "a = [1,\n", ":2:1: " },
    }

    it("stop every command with exit 2 and file:line:col, before anything runs", function()
      for _, c in ipairs(cases) do
        user_config(home, c[1])
        local r = h.shannot({ "run", "--", "sh", "-c", "echo ran" }, { home = home })
        assert.equal(2, r.code, c[1] .. r.stderr)
        assert.equal("", r.stdout)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("config.toml" .. c[2], r.stderr)
      end
    end)

    it("refuses a config file too large to be one", function()
      user_config(home, string.rep("# padding\n", 120000))
      local r = h.shannot({ "config", "check" }, { home = home })
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("config.toml: larger than 1048576 bytes; not a config file", r.stderr)
    end)

    it("in a project file are reported with the project file's name", function()
      local dir = project("[session]\nttl = -1\n")
      local r = h.shannot({ "config", "check" }, { home = home, cwd = dir .. "/a/b" })
      assert.equal(2, r.code)
      assert.matches(dir:gsub("%p", "%%%0") .. "/.shannot/config.toml:2:1: session.ttl", r.stderr)
    end)
  end)

  describe("policy files", function()
    local function check_with(policy)
      local dir = project(nil, policy)
      return h.shannot({ "config", "check" }, { home = home, cwd = dir }), dir
    end

    it("loads a rule or a list of rules, and config check counts them", function()
      h.write(home .. "/config/shannot/policy.lua", "return function(op) return nil end\n")
      local r = check_with("return { function() end, function() return 'deny', 'no' end }\n")
      assert.equal(0, r.code, r.stderr)
      assert.matches("# policy .-/config/shannot/policy.lua: 1 rule\n", r.stdout)
      assert.matches("# policy .-/.shannot/policy.lua: 2 rules ", r.stdout)
      assert.matches("# built%-in", r.stdout)
    end)

    it("reports a syntax error with file and line", function()
      local r, dir = check_with("return function(op)\n  if op then\nend\n")
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches(dir:gsub("%p", "%%%0") .. "/.shannot/policy.lua:4: 'end' expected", r.stderr)
    end)

    it("names a policy file by its full path, however long", function()
      -- Lua itself would cut the name to its last 60 bytes ("...").
      local dir = h.tmpdir() .. "/" .. string.rep("long-directory-name/", 6)
      assert(fs.mkdir_p(dir .. ".shannot"))
      h.write(dir .. ".shannot/policy.lua", "local x = nil\nx.y = 1\n")
      local r = h.shannot({ "config", "check" }, { home = home, cwd = dir })
      assert.equal(2, r.code)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches(dir:gsub("%p", "%%%0") .. ".shannot/policy.lua:2: attempt to index", r.stderr)
    end)

    it("reports a runtime error while loading with file and line", function()
      local r = check_with("local t = {}\nt.x.y = 1\nreturn function() end\n")
      assert.equal(2, r.code)
      assert.matches("policy.lua:2: attempt to index a nil value", r.stderr)
    end)

    it("reports a wrong return value", function()
      for _, body in ipairs({ "return 42", "return {}", "return { function() end, 'x' }", "" }) do
        local r = check_with(body)
        assert.equal(2, r.code, body)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("policy.lua: ", r.stderr)
      end
    end)

    it("stops run too, before the command starts", function()
      local dir = project(nil, "return 1")
      local r = h.shannot({ "run", "--", "sh", "-c", "echo ran" }, { home = home, cwd = dir })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
    end)

    it("runs without io, os.execute, load or require, and the API is read-only", function()
      for _, body in ipairs({ "io.open('/tmp/x', 'w')", "os.execute('true')", "os.remove('/tmp/x')",
        "load('return 1')", "require('shannot')", "shannot.version = 'x'", "debug.getinfo(1)",
        "getmetatable('').__index = nil" }) do
        local r = check_with(body .. "\nreturn function() end\n")
        assert.equal(2, r.code, body)
        assert.matches("policy.lua:1: ", r.stderr)
      end
      local ok = check_with("local n = shannot.command.normalise({'sudo', 'rm', '-rf', '/'})\n" ..
        "assert(n.command == 'rm' and n.flags[1] == '-f')\nassert(os.time() > 0)\n" ..
        "return function(op) if shannot.glob.match('/etc/*', op.path) then return 'review' end end\n")
      assert.equal(0, ok.code, ok.stderr)
    end)

    it("stops a rule that loops, even one that catches its own errors, and leaves the run for review", function()
      h.write(home .. "/config/shannot/policy.lua",
        "return function(op) while true do pcall(function() while true do end end) end end\n")
      local dir = h.tmpdir()
      local r = h.shannot({ "run", "--json", "-c", "echo x > /etc/shannot-spec-loop" },
        { home = home, cwd = dir, timeout = 60 })
      assert.equal(0, r.code, r.stderr)
      assert.matches("policy%.lua:1: the rule took too long on /etc/shannot%-spec%-loop %(an endless loop%?%)",
        r.stderr)
      local id = json.decode(r.stdout).session.id
      local op = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout).operations[1]
      assert.equal("review", op.decision)
    end)

    it("gives up on a file that never finishes loading", function()
      local r = check_with("while true do end")
      assert.equal(2, r.code)
      assert.matches("took too long", r.stderr)
    end)

    it("caps the memory loading takes, even when the file catches the error itself", function()
      for _, body in ipairs({
        "local s = string.rep('x', 2^30)",
        "local s = ('x'):rep(1e9)",
        "local t = {}\nwhile true do pcall(function() t[#t + 1] = ('x'):rep(1e6) .. #t end) end",
        "local t = {}\nfor i = 1, 1e8 do t[i] = i end",
      }) do
        local r = check_with(body .. "\nreturn function() end\n")
        assert.equal(2, r.code, body)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("policy%.lua: used more than 64 MiB of memory %(while loading the policy file%)\n$", r.stderr)
      end
    end)

    it("refuses pattern work in C that no instruction count would see", function()
      for _, body in ipairs({
        "local s = ('a'):rep(3000)\nlocal x = s:find('.-.-b')",
        "local s = ('a'):rep(300)\nlocal x = string.match(s, '.-.-.-b')",
        "local s = ('a'):rep(1e6)\nfor w in s:gmatch('a*b') do end",
        "local s = ('a'):rep(5e5)\nlocal x = s:gsub('(a-)(a-)b', '%2')",
        "local s = ('a'):rep(2e7)\nlocal x = s:find(('a'):rep(1e6) .. 'b', 1, true)",
      }) do
        local r = check_with(body .. "\nreturn function() end\n")
        assert.equal(2, r.code, body)
        assert.is_true(h.one_line_error(r), r.stderr)
        assert.matches("policy%.lua:2: pattern .- is too costly on a string of %d+ bytes", r.stderr)
      end
      -- What policies do on paths stays allowed, and so does the host's own
      -- matching (shannot.glob.match) on long strings.
      local ok = check_with("local p = ('/usr/lib/x'):rep(10)\n" ..
        "assert(p:find('/usr/.-/.-/x') and p:match('^/(.-)/(.-)/') and ('a'):rep(1e5):find('b', 1, true) == nil)\n" ..
        "assert(select(2, p:gsub('/', '')) == 30 and string.rep('', 1e15) == '')\n" ..
        "assert(shannot.glob.match('/a/**/b', '/a/' .. ('x/'):rep(5000) .. 'b'))\n" ..
        "local t = table.move({1, 2, 3}, 1, 3, 2)\nassert(t[2] == 1 and t[4] == 3)\n" ..
        "return function() end\n")
      assert.equal(0, ok.code, ok.stderr)
    end)

    it("bounds table.move's loop and a rule's memory, and run leaves the operation for review", function()
      local r = check_with("table.move({}, 1, math.maxinteger - 1, 2)\nreturn function() end\n")
      assert.equal(2, r.code)
      assert.matches("policy%.lua: took too long", r.stderr)
      h.write(home .. "/config/shannot/policy.lua",
        "return function(op)\n  local t = {}\n" ..
        "  while true do pcall(function() t[#t + 1] = op.path:rep(1e4) end) end\nend\n")
      local run = h.shannot({ "run", "--json", "-c", "echo x > /etc/shannot-spec-mem" },
        { home = home, cwd = h.tmpdir(), timeout = 60 })
      assert.equal(0, run.code, run.stderr)
      assert.matches("policy%.lua:1: the rule used more than 64 MiB of memory on /etc/shannot%-spec%-mem", run.stderr)
      local id = json.decode(run.stdout).session.id
      local op = json.decode(h.shannot({ "show", id, "--json" }, { home = home }).stdout).operations[1]
      assert.equal("review", op.decision)
      os.remove(home .. "/config/shannot/policy.lua")
    end)
  end)

  describe("command patterns", function()
    local function denied(argv)
      for _, n in ipairs(cmdpattern.normalise_all(argv)) do
        for _, p in ipairs(config.DEFAULT_ALWAYS_DENY) do
          if cmdpattern.match_contains(assert(cmdpattern.compile(p)), n) then return true end
        end
      end
      return false
    end

    local function approved(argv)
      local n = cmdpattern.normalise(argv)
      for _, p in ipairs(config.DEFAULT_AUTO_APPROVE) do
        if cmdpattern.match_exact(assert(cmdpattern.compile(p)), n) then return true end
      end
      return false
    end

    it("normalise wrappers, paths and flag order", function()
      local want = { command = "rm", flags = { "-f", "-r" }, operands = { "/" } }
      for _, argv in ipairs({ { "rm", "-rf", "/" }, { "rm", "-fr", "/" }, { "rm", "-r", "-f", "/" },
        { "rm", "/", "-rf" }, { "/usr/bin/rm", "-Rf", "/" }, { "\\rm", "--recursive", "--force", "/" },
        { "sudo", "-u", "root", "rm", "-rf", "/" }, { "doas", "rm", "-rf", "--", "/" },
        { "env", "-i", "A=1", "rm", "-rf", "/" },
        { "sudo", "env", "X=y", "nice", "-n", "5", "rm", "-r", "-f", "-r", "/" } }) do
        local n = cmdpattern.normalise(argv)
        n.sets_env, n.words, n.wrapped = nil, nil, nil
        assert.same(want, n, table.concat(argv, " "))
      end
    end)

    it("deny rm -r / however it is spelt, and not rm -r /tmp/x", function()
      for _, argv in ipairs({ { "rm", "-rf", "/" }, { "sudo", "/bin/rm", "-rfv", "--no-preserve-root", "/" },
        { "rm", "-r", "/tmp", "/" }, { "rm", "-fr", "/etc" }, { "mkfs.ext4", "/dev/sda1" },
        { "dd", "if=/dev/zero", "of=/dev/sda", "bs=1M" }, { "env", "X=1", "wipefs", "-a", "/dev/sdb" } }) do
        assert.is_true(denied(argv), table.concat(argv, " "))
      end
      for _, argv in ipairs({ { "rm", "-rf", "/tmp/build" }, { "rm", "/etc/motd" },
        { "dd", "if=/dev/sda", "of=disk.img" } }) do
        assert.is_false(denied(argv), table.concat(argv, " "))
      end
    end)

    it("see through shells, busybox, timeout, xargs, find, eval, env -S, path spellings and long-option prefixes",
      function()
      for _, argv in ipairs({
        { "sh", "-c", "rm -rf /" }, { "bash", "-c", "cd /tmp; rm -rf /" }, { "dash", "-ec", "rm -fr //" },
        { "sh", "-c", "echo $(rm -rf /) done" }, { "sh", "-c", "true && `rm -rf /`" },
        { "sh", "-c", "if true; then X=1 rm -r -f /; fi" }, { "bash", "-lc", "sh -c 'rm -rf /'" },
        { "busybox", "rm", "-rf", "/" }, { "busybox", "sh", "-c", "rm -rf /" },
        { "/bin/busybox", "mkfs.ext4", "/dev/sda" },
        { "timeout", "5", "rm", "-rf", "/" }, { "timeout", "-s", "KILL", "5", "rm", "-rf", "/" },
        { "xargs", "rm", "-rf", "/" }, { "xargs", "-0", "-n", "1", "rm", "-rf", "/" },
        { "find", "/", "-delete" }, { "find", "/", "-name", "*.log", "-delete" }, { "find", "//", "-delete" },
        { "find", "/etc", "-exec", "rm", "-rf", "/", ";" }, { "eval", "rm -rf /" },
        { "env", "-S", "rm -rf /" }, { "env", "-Srm -rf", "/" }, { "env", "--split-string=rm -rf /" },
        { "rm", "-rf", "/usr/.." }, { "rm", "-rf", "/." }, { "rm", "-rf", "///" }, { "rm", "-rf", "/usr/../etc/.." },
        { "rm", "--recur", "--forc", "/" }, { "rm", "-r", "--no-pres", "/tmp" },
        { "kill", "-9", "-1" }, { "kill", "-KILL", "-1" }, { "kill", "-s", "KILL", "-1" }, { "kill", "--", "-1" },
        { "kill", "-9", "1" }, { "cp", "/dev/zero", "/dev/sda" }, { "sh", "-c", "cat /dev/zero > /dev/nvme0n1" },
        { "sh", "-c", "dd if=/dev/zero of=/dev/vda bs=1M" }, { "nice", "timeout", "3", "sudo", "rm", "-rf", "/" },
        { "passwd", "--delete", "root" }, { "pkill", "systemd" }, { "sh", "-c", "cat x > /dev/root" },
        { "dd", "if=/dev/zero", "of=/proc/1/root/dev/vda" },
        -- found by the red team: su -c, tracers, watch, find -exec {}, a cd in the code
        { "su", "-c", "rm -rf /" }, { "runuser", "-u", "root", "--", "sh", "-c", "rm -rf /" },
        { "strace", "-o", "/dev/null", "rm", "-rf", "/" }, { "watch", "-n1", "rm", "-rf", "/" },
        { "find", "/", "-maxdepth", "0", "-exec", "rm", "-rf", "{}", "+" },
        { "sh", "-c", "cd / && rm -rf *" }, { "dd", "if=/dev/zero", "of=/dev/disk/by-id/wwn-0x5000" },
      }) do
        assert.is_true(denied(argv), table.concat(argv, " "))
      end
      for _, argv in ipairs({ { "sh", "-c", "rm -rf /tmp/x" }, { "sh", "-c", "ls / > /dev/null" },
        { "find", "/tmp", "-delete" }, { "kill", "1234" }, { "kill", "-9", "1234" }, { "cp", "a", "/dev/null" },
        { "busybox", "ls", "/" }, { "timeout", "5", "rm", "/tmp/x" }, { "rm", "-rf", "/usr/local/x/.." } }) do
        assert.is_false(denied(argv), table.concat(argv, " "))
      end
    end)

    it("never auto-approve a command line with commands inside it, or variables set for it", function()
      local policy = require("shannot.policy")
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      local s = { id = "x", operations = {
        { kind = "exec", argv = { "ls", "/etc" } }, { kind = "exec", argv = { "xargs", "ls" } },
        { kind = "exec", argv = { "sh", "-c", "ls" } }, { kind = "exec", argv = { "env", "LD_PRELOAD=/x.so", "date" } },
        { kind = "exec", argv = { "env", "PATH=/tmp/evil", "date" } }, { kind = "exec", argv = { "date" } } } }
      assert(policy.evaluate(s, cfg))
      local got = {}
      for i, op in ipairs(s.operations) do got[i] = op.decision end
      assert.same({ "approve", "review", "review", "review", "review", "approve" }, got)
    end)

    it("take the deny list's paths below a cd in the same shell code", function()
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      cfg.values.profile.always_deny[#cfg.values.profile.always_deny + 1] = "rm -r /srv/data/d*"
      local s = { id = "x", operations = {
        { kind = "exec", argv = { "sh", "-c", "cd /srv/data && rm -rf d3*" } },
        { kind = "exec", argv = { "find", "/srv/data/d2", "-maxdepth", "0", "-exec", "rm", "-rf", "{}", "+" } },
        { kind = "exec", argv = { "sh", "-c", "cd /srv/other && rm -rf d3*" } } } }
      assert(require("shannot.policy").evaluate(s, cfg))
      assert.equal("deny", s.operations[1].decision)
      assert.equal("deny", s.operations[2].decision)
      assert.equal("review", s.operations[3].decision)
    end)

    it("see the deny list through wrappers, options before the path, and programs it does not know", function()
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      cfg.values.profile.always_deny[#cfg.values.profile.always_deny + 1] = "rm -r /srv/data/d*"
      local rm = { "rm", "-rf", "/srv/data/d1" }
      local function with(...)
        local argv = { ... }
        return table.move(rm, 1, #rm, #argv + 1, argv)
      end
      local lines = {  -- found by the red team: each was left for review
        with("runuser", "-u", "root", "--"), with("runuser", "-uroot"),
        { "find", "-L", "/srv/data/d2", "-maxdepth", "0", "-exec", "rm", "-rf", "{}", "+" },
        { "sh", "-c", "cd -P /srv/data && rm -rf d3*" }, { "flock", "/tmp/l", "-c", "rm -rf /srv/data/d4" },
        with("chrt", "1"), with("chrt", "-f", "1"), with("taskset", "1"), with("taskset", "-c", "0-3"),
        with("setpriv", "--reuid=0"), with("setpriv", "--reuid", "0", "--init-groups"),
        with("prlimit", "--nofile=100"), with("nsenter", "-t", "1", "-m"), with("unshare", "-m"),
        with("pkexec", "--user", "root"), with("systemd-run", "--unit", "x", "-p", "Nice=1"),
        with("valgrind", "--tool=none"), with("gdb", "-q", "--args"),
        { "sg", "root", "-c", "rm -rf /srv/data/d5" }, { "script", "-qc", "rm -rf /srv/data/d6", "/dev/null" },
        -- programs shannot does not know: what they might run is a guess
        with("mywrap", "--level", "3"), { "parallel", "rm", "-rf", ":::", "/srv/data/d7" },
        { "my-runner", "--code", "cd /srv/data; rm -rf d8" },
        -- the third red team's: a trailing slash, env -iS, code in --opt=CODE, su -s PROG, what find finds
        { "rm", "-rf", "/srv/data/d2/" }, { "env", "-iS", "rm -rf /srv/data/d3" },
        { "tar", "-cf", "/dev/null", "--checkpoint=1", "--checkpoint-action=exec=rm -rf /srv/data/d4", "/etc/x" },
        { "git", "-c", "alias.x=!rm -rf /srv/data/d5", "x" },
        { "su", "-s", "/bin/rm", "root", "--", "-rf", "/srv/data/d6" },
        { "find", "/srv/data", "-maxdepth", "1", "-name", "d7", "-exec", "rm", "-rf", "{}", "+" },
        { "strace", "-o", "|rm -rf /srv/data/d1", "true" }, { "ssh", "-oProxyCommand=rm -rf /srv/data/d9", "h" },
        { "sudo", "-s", "rm -rf /srv/data/d1" }, { "rm", "-rf", "/proc/self/root/srv/data/d2" },
      }
      local s = { id = "x", operations = {} }
      for i, argv in ipairs(lines) do s.operations[i] = { kind = "exec", argv = argv } end
      local fine = { { "systemctl", "restart", "nginx" }, { "chrt", "-p", "1", "1234" }, { "ls", "/srv/data/d1" },
        { "runuser", "-u", "app", "--", "rm", "-rf", "/srv/data/cache" } }
      for _, argv in ipairs(fine) do s.operations[#s.operations + 1] = { kind = "exec", argv = argv } end
      assert(require("shannot.policy").evaluate(s, cfg))
      for i, argv in ipairs(lines) do
        assert.equal("deny", s.operations[i].decision, table.concat(argv, " "))
      end
      assert.matches('^may run "rm %-f %-r /srv/data/d1", which matches always_deny "rm %-r /srv/data/d%*"$',
        s.operations[#lines - 12].reason)
      for i = #lines + 1, #s.operations do
        assert.are_not.equal("deny", s.operations[i].decision, table.concat(s.operations[i].argv, " "))
      end
    end)

    it("take a deferred command's relative paths below the directory it was recorded in", function()
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      cfg.values.profile.always_deny[#cfg.values.profile.always_deny + 1] = "rm -r /srv/data/d*"
      local s = { id = "x", operations = {
        { kind = "exec", argv = { "rm", "-rf", "d1" }, cwd = "/srv/data" },
        { kind = "exec", argv = { "rm", "-rf", "srv/data/d2" }, cwd = "/" },
        { kind = "exec", argv = { "env", "-C", "/srv/data", "rm", "-rf", "d3" }, cwd = "/" },
        { kind = "exec", argv = { "sh", "-c", "rm -rf d4*" }, cwd = "/srv/data" },
        { kind = "exec", argv = { "find", ".", "-name", "d5", "-exec", "rm", "-rf", "{}", "+" }, cwd = "/srv/data" },
        { kind = "exec", argv = { "rm", "-rf", "d1" }, cwd = "/srv/other" } } }
      assert(require("shannot.policy").evaluate(s, cfg))
      for i = 1, 5 do assert.equal("deny", s.operations[i].decision, table.concat(s.operations[i].argv, " ")) end
      assert.equal("review", s.operations[6].decision)
    end)

    it("approve by pattern nothing behind a wrapper with options, nor flags a pattern does not name", function()
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      local list = cfg.values.profile.auto_approve
      list[#list + 1] = "systemctl status *"
      list[#list + 1] = "true"
      local argvs = {
        { "strace", "-o", "/tmp/x", "true" }, { "timeout", "-s", "KILL", "5", "date" }, { "nice", "-n", "5", "date" },
        { "systemd-run", "-p", "ExecStartPre=/bin/touch /x", "date" }, { "systemctl", "-p", "status", "stop", "ssh" },
        { "dpkg", "-l", "-i", "x.deb" }, { "journalctl", "--no-pager", "--vacuum-time=1s" },
        -- still approved
        { "systemctl", "status", "nginx" }, { "ls", "-la", "/etc" }, { "sudo", "df", "-h" }, { "dpkg", "-l", "foo" },
      }
      local s = { id = "x", operations = {} }
      for i, argv in ipairs(argvs) do s.operations[i] = { kind = "exec", argv = argv } end
      assert(require("shannot.policy").evaluate(s, cfg))
      for i, op in ipairs(s.operations) do
        assert.equal(i <= 7 and "review" or "approve", op.decision, table.concat(op.argv, " "))
      end
    end)

    it("look through a long command line, and deny one too large to look through", function()
      -- (a word built a character at a time made this take hours)
      local all = cmdpattern.normalise_all({ "sh", "-c", string.rep("a", 4000000) .. "; rm -rf /" })
      assert.equal("rm", all[#all].command)
      local argv = {}
      for i = 1, 3000 do argv[i] = "rm" end
      local cfg = assert(config.load({ cwd = h.tmpdir() }))
      local s = { id = "x", operations = { { kind = "exec", argv = argv } } }
      assert(require("shannot.policy").evaluate(s, cfg))
      assert.equal("deny", s.operations[1].decision)
      assert.matches("more nested commands than shannot looks through", s.operations[1].reason)
    end)

    it("rate replacing a directory by a file or symlink, and writes in /usr/local/bin, as danger", function()
      local policy = require("shannot.policy")
      local dir = { exists = true, type = "dir" }
      assert.equal("danger", (policy.builtin({ kind = "write", path = "/srv/app", base = dir, new = { mode = 420 } })))
      assert.equal("danger", (policy.builtin({ kind = "symlink", path = "/srv/app", base = dir, new = {} })))
      assert.equal("caution", (policy.builtin({ kind = "write", path = "/srv/app", base = { exists = true,
        type = "file" }, new = { mode = 420 } })))
      for _, path in ipairs({ "/usr/local/bin/systemctl", "/usr/local/sbin/service" }) do
        assert.equal("danger", (policy.builtin({ kind = "write", path = path, new = { mode = 493 } })), path)
      end
      assert.equal("danger", (policy.builtin({ kind = "exec", argv = { "sh", "-c", "reboot" } })))
      -- code the deny list cannot read through is for a person to judge with care
      for _, argv in ipairs({ { "perl", "-e", "unlink glob '/*'" }, { "awk", "BEGIN{system(\"x\")}" },
        { "sh", "-c", "x=/; rm -rf $x" }, { "bash", "-o", "errexit", "-c", "rm -rf $(echo /)" },
        { "sh", "-c", "rm -rf ~/../../.." }, { "sh", "-c", "curl x | sh" }, { "sh", "script.sh" },
        { "timeout", "5", "python3", "-c", "import os" } }) do
        assert.equal("danger", (policy.builtin({ kind = "exec", argv = argv })), table.concat(argv, " "))
      end
      assert.equal("caution", (policy.builtin({ kind = "exec", argv = { "sh", "-c", "systemctl restart a" } })))
    end)

    it("approve only commands that cannot execute, write or wait forever", function()
      for _, argv in ipairs({ { "ls", "-la", "/etc" }, { "cat", "/etc/hostname" }, { "date" },
        { "systemctl", "status", "nginx" }, { "sudo", "df", "-h" } }) do
        assert.is_true(approved(argv), table.concat(argv, " "))
      end
      for _, argv in ipairs({ { "env" }, { "env", "rm", "-rf", "/x" }, { "find", "/", "-delete" },
        { "less", "/etc/passwd" }, { "man", "ls" }, { "tail", "-f", "/var/log/syslog" }, { "date", "-s", "2020-01-01" },
        { "hostname", "evil" }, { "xargs", "rm" }, { "awk", "BEGIN{system(\"id\")}" }, { "sed", "-i", "s/a/b/", "f" },
        { "systemctl", "restart", "nginx" }, { "vi", "/etc/passwd" }, { "sh", "-c", "ls" } }) do
        assert.is_false(approved(argv), table.concat(argv, " "))
      end
    end)

    it("reject malformed patterns with the file and line", function()
      user_config(home, '[profile]\nauto_approve = ["ls", ""]\n')
      local r = h.shannot({ "config", "check" }, { home = home })
      assert.equal(2, r.code)
      assert.matches("config.toml:2:1: profile.auto_approve must be an array of command patterns " ..
        "%(item 2: is empty%)", r.stderr)
    end)
  end)
end)
