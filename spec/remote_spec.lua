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
      { "add", "web", "other.example.com" }, { "add", "bad name", "h" }, { "add", "x", "h:99999" },
      { "add", "x", "-oProxyCommand=evil" }, { "add", "x", "us er@h" }, { "add", "x", "h", "--key", "/no/such/key" },
      { "remove", "nope" }, { "add", "x" }, { "frobnicate" },
    }) do
      local r = remote(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.is_true(h.one_line_error(r), r.stderr)
    end
    assert.matches('%[remotes%.web%]', fs.read_file(file))
  end)

  it("makes the config file when there is none", function()
    fs.remove(file)
    assert.equal(0, remote({ "add", "db", "db1" }).code)
    assert.equal('[remotes.db]\nhost = "db1"\n', fs.read_file(file))
    assert.equal("no remotes; add one with: shannot remote add NAME [USER@]HOST[:PORT]\n",
      (remote({ "remove", "db" }).code == 0) and remote({ "list" }).stdout)
  end)
end)
