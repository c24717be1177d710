-- shannot remote add / list / remove: config.toml edited in place, the
-- rest of the file kept byte for byte, bad input refused in one line.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

describe("remote", function()
  local home, file
  local ORIGINAL = '# my settings\ndefault_executor = "local"   # keep this comment\n\n' ..
    '[profile]\nauto_approve = ["ls", "uname -a"]\n'
  before_each(function()
    home = h.tmpdir()
    assert(fs.mkdir_p(home .. "/config/shannot"))
    file = h.write(home .. "/config/shannot/config.toml", ORIGINAL)
  end)
  after_each(h.cleanup)

  local function remote(args)
    local argv = { "remote" }
    table.move(args, 1, #args, 2, argv)
    return h.shannot(argv, { home = home })
  end

  it("adds remotes, lists them with their source, and removes them leaving the file as it was", function()
    local key = h.write(home .. "/id_test", "not really a key\n")
    assert.equal(0, remote({ "add", "web", "admin@web.example.com:2222", "--key", key, "--profile", "system" }).code)
    local r = remote({ "add", "v6", "[::1]:2200" })
    assert.equal(0, r.code, r.stderr)
    local text = fs.read_file(file)
    assert.equal(ORIGINAL, text:sub(1, #ORIGINAL))
    assert.matches('%[remotes%.web%]\nhost = "web%.example%.com"\nuser = "admin"\nport = 2222\n', text)
    local list = json.decode(remote({ "list", "--json" }).stdout)
    assert.equal(2, #list)
    assert.same({ "v6", "::1", 2200 }, { list[1].name, list[1].host, list[1].port })
    assert.equal(key, list[2].key_file)
    assert.matches("config%.toml:%d+", list[2].source)
    -- the config is valid for every other command too
    assert.equal(0, h.shannot({ "config", "check" }, { home = home }).code)
    assert.equal(0, remote({ "remove", "web" }).code)
    assert.equal(0, remote({ "remove", "v6" }).code)
    assert.equal(ORIGINAL, fs.read_file(file))
  end)

  it("refuses bad names, hosts, ports, missing keys, duplicates and unknown remotes", function()
    assert.equal(0, remote({ "add", "web", "web.example.com" }).code)
    for _, args in ipairs({
      { "add", "web", "other.example.com" }, { "add", "-x", "h" }, { "add", " lead", "h" }, { "add", "a\tb", "h" },
      { "add", string.rep("n", 65), "h" }, { "add", "x", "h:99999" },
      { "add", "x", "-oProxyCommand=evil" }, { "add", "x", "us er@h" }, { "add", "x", "h", "--key", "/no/such/key" },
      { "remove", "nope" }, { "add", "x" }, { "frobnicate" },
    }) do
      local r = remote(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.is_true(h.one_line_error(r), r.stderr)
    end
    assert.matches('%[remotes%.web%]', fs.read_file(file))
  end)

  it("reserves the names local and default, in remote add and in the file", function()
    for _, name in ipairs({ "local", "default" }) do
      local r = remote({ "add", name, "db1" })
      assert.equal(2, r.code, r.stdout)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches('the name "' .. name .. '" is reserved', r.stderr)
    end
    assert.equal(ORIGINAL, fs.read_file(file))
    h.write(file, ORIGINAL .. '\n[remotes.local]\nhost = "db1"\n')
    local r = h.shannot({ "config", "check" }, { home = home })
    assert.equal(2, r.code)
    assert.matches('config%.toml:%d+: %[remotes%.local%]: the name "local" is reserved', r.stderr)
  end)

  it("shows an IPv6 target as it was written, and reads it back the same", function()
    assert.equal(0, remote({ "add", "v6", "root@[::1]:22" }).code)
    assert.equal(0, remote({ "add", "v6b", "[fe80::1]" }).code)
    local out = remote({ "list" }).stdout
    assert.matches("v6%s+root@%[::1%]:22%s", out)
    assert.matches("v6b%s+%[fe80::1%]%s", out)
    local list = json.decode(remote({ "list", "--json" }).stdout)
    local shown = out:match("v6%s+(%S+)")
    local again = require("shannot.remote").parse_target(shown)
    assert.same({ list[1].user, list[1].host, list[1].port }, { again.user, again.host, again.port })
  end)

  it("keeps every TOML form of a key: quoted names with dots and spaces, dotted lines", function()
    h.write(file, ORIGINAL .. '\n[remotes."web.prod"]\nhost = "h1"\n\n[remotes."my host"]\nhost = "h2"\n' ..
      'port = 2200\n\n[remotes.\'lit.eral\']\nhost = "h3"\n\n[executor."box.1"]\ntype = "ssh"\nhost = "h4"\n')
    assert.equal(0, h.shannot({ "config", "check" }, { home = home }).code)
    local doc = json.decode(h.shannot({ "config", "show", "--json" }, { home = home }).stdout)
    assert.equal("h1", doc.config.remotes["web.prod"].host)
    assert.equal(2200, doc.config.remotes["my host"].port)
    assert.equal("h3", doc.config.remotes["lit.eral"].host)
    assert.equal("h4", doc.config.executor["box.1"].host)
    assert.is_nil(doc.config.remotes.web)
    assert.matches("config%.toml:%d+", doc.sources['remotes."web.prod".host'])
    local shown = h.shannot({ "config", "show" }, { home = home }).stdout
    assert.matches('remotes%."my host"%.port = 2200', shown)
    assert.matches('executor%."box%.1"%.host = "h4"', shown)
    local list = json.decode(remote({ "list", "--json" }).stdout)
    local names = {}
    for i, r in ipairs(list) do names[i] = r.name .. "=" .. r.host end
    assert.same({ "lit.eral=h3", "my host=h2", "web.prod=h1" }, names)
    assert.matches("config%.toml:%d+", list[3].source)
    -- add and remove write and find the same quoted tables
    assert.equal(0, remote({ "add", "db.2", "admin@db2" }).code)
    assert.matches('\n%[remotes%."db%.2"%]\nhost = "db2"\nuser = "admin"\n', fs.read_file(file))
    assert.equal("db2", json.decode(h.shannot({ "config", "show", "--json" }, { home = home }).stdout)
      .config.remotes["db.2"].host)
    assert.equal(0, remote({ "remove", "web.prod" }).code)
    assert.equal(0, remote({ "remove", "my host" }).code)
    assert.equal(0, remote({ "remove", "db.2" }).code)
    local left = fs.read_file(file)
    assert.falsy(left:find("web.prod", 1, true))
    assert.falsy(left:find("my host", 1, true))
    assert.truthy(left:find("[remotes.'lit.eral']", 1, true))
    assert.equal(2, remote({ "remove", "web" }).code)  -- never part of "web.prod"
  end)

  it("lists a hand-written remote name inert: no escape, no invisible character", function()
    h.write(file, ORIGINAL .. '\n[remotes."l\\u200Bocal"]\nhost = "h1"\n\n' ..
      '[remotes."t\\u001B]0;x\\u0007"]\nhost = "h2"\n')
    local out = remote({ "list" }).stdout
    assert.matches("l\\u{200b}ocal%s", out)
    assert.truthy(out:find("t\\x1b]0;x\\x07", 1, true), out)
    assert.falsy(out:find("\27", 1, true))
  end)

  it("names quoted keys as written in its errors", function()
    local cases = {
      { '[remotes."no.host"]\nport = 22\n', '%[remotes%."no%.host"%] needs a host' },
      { '[remotes."a.b"]\nhots = "x"\n', 'unknown key "remotes%."a%.b"%.hots"' },
      { 'remotes."c d".port = "x"\n', 'remotes%."c d"%.port must be' },
      { '[executor."e.1"]\ntype = "ssh"\n', '%[executor%."e%.1"%] has type ssh but no host' },
      { 'default_executor = "x.y"\n', 'names no %[executor%."x%.y"%] or %[remotes%."x%.y"%]' },
    }
    for _, c in ipairs(cases) do
      h.write(file, c[1])
      local r = h.shannot({ "config", "check" }, { home = home })
      assert.equal(2, r.code, c[1])
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches(c[2], r.stderr)
    end
  end)

  it("makes the config file when there is none", function()
    fs.remove(file)
    assert.equal(0, remote({ "add", "db", "db1" }).code)
    assert.equal('[remotes.db]\nhost = "db1"\n', fs.read_file(file))
    assert.equal("no remotes; add one with: shannot remote add NAME [USER@]HOST[:PORT]\n",
      (remote({ "remove", "db" }).code == 0) and remote({ "list" }).stdout)
  end)
end)
