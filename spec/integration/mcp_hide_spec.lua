-- What the MCP server's read-only runs hide (issue 17): secrets stay out
-- of run_command even as root, the same command through the CLI is the
-- operator's and unaffected, [mcp] hide adds globs, shannot://status says
-- what is hidden.  The server is driven by raw JSON-RPC lines.
local fs = require("shannot.fs")
local json = require("shannot.json")
local h = require("support.h")

local ROOT = require("shannot.core.sys").ids().euid == 0

local INIT = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",' ..
  '"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}'

-- mcp(home, requests) -> answers by id: each request {method, params}
-- gets the id of its place + 1 (initialize is 1)
local function mcp(home, requests)
  local lines = { INIT }
  for i, r in ipairs(requests) do
    lines[#lines + 1] = json.encode({ jsonrpc = "2.0", id = i + 1, method = r[1], params = r[2] })
  end
  local res = h.shannot({ "mcp" }, { home = home, input = table.concat(lines, "\n") .. "\n" })
  assert.equal(0, res.code, res.stderr)
  local by_id = {}
  for line in res.stdout:gmatch("[^\n]+") do
    local msg = assert(json.decode(line))
    by_id[math.tointeger(msg.id)] = msg
  end
  return by_id
end

local function run_command(argv)
  return { "tools/call", { name = "run_command", arguments = { argv = json.array(argv) } } }
end

local STATUS = { "resources/read", { uri = "shannot://status" } }

-- the status resource's hidden part
local function hidden_of(answer)
  return assert(json.decode(answer.result.contents[1].text)).hidden
end

local function config(home, body)
  h.write(home .. "/config/shannot/config.toml", body)
end

describe("MCP: hidden paths", function()
  after_each(h.cleanup)

  it("run_command reads no password hash and nothing of root's home, even as root", function()
    if not h.need(ROOT, "root (the secrets are root's)") then return end
    local made_dir = not fs.lstat("/root/.ssh")
    if made_dir then assert(fs.mkdir("/root/.ssh", 448)) end
    local made_file = not fs.lstat("/root/.ssh/some-file")
    if made_file then assert(fs.write_new("/root/.ssh/some-file", "spec\n", 384)) end
    finally(function()
      if made_file then fs.remove("/root/.ssh/some-file") end
      if made_dir then fs.remove("/root/.ssh") end
    end)
    local home = h.home()
    local a = mcp(home, {
      run_command({ "cat", "/etc/shadow" }),
      run_command({ "ls", "-A", "/root/.ssh" }),
      run_command({ "ls", "-A", "/root" }),
      run_command({ "sh", "-c", "cat /etc/gshadow /etc/shadow- /etc/gshadow- /proc/1/root/etc/shadow 2>/dev/null; " ..
        "ls -A /etc/ssl/private 2>/dev/null; " ..
        "for k in /etc/ssh/ssh_host_*_key; do [ -s \"$k\" ] && echo \"$k\"; done; :" }),
      STATUS,
    })
    local shadow = a[2].result.structuredContent or error(json.encode(a[2]))
    assert.equal(0, shadow.exit_code)
    assert.equal("", shadow.stdout)  -- an empty file: no "root:" line, no hash
    local ssh = a[3].result.structuredContent or error(json.encode(a[3]))
    assert.equal("", ssh.stdout)
    assert.is_true(a[3].result.isError)  -- /root is an empty directory: no .ssh in it
    assert.equal("", a[4].result.structuredContent.stdout)
    assert.equal("", a[5].result.structuredContent.stdout)
    local hidden = hidden_of(a[6])
    local patterns = {}
    for _, p in ipairs(hidden.patterns) do patterns[p] = true end
    for _, p in ipairs({ "/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh/ssh_host_*_key",
      "/root", "/home/*/.ssh", "/etc/ssl/private", home .. "/data/shannot" }) do
      assert.is_true(patterns[p], p)
    end
    local matched = {}
    for _, m in ipairs(hidden.matched) do matched[m.path] = m end
    assert.equal("file", matched["/etc/shadow"].type)
    assert.equal("directory", matched["/root"].type)
    assert.is_nil(matched["/root/.ssh"])  -- inside a hidden directory already
  end)

  it("run_script hides the same, and a person's own script stays theirs", function()
    if not h.need(ROOT, "root (the secrets are root's)") then return end
    local home = h.home()
    -- a person's session: shell code with a secret, and a new password hash
    local cli = h.shannot({ "run", "-c", "echo TOKEN=s3cret > /root/.shannot-hide-spec; " ..
      "sed -i 's/^root:[^:]*:/root:$6$spechash:/' /etc/shadow" }, { home = home })
    assert.equal(0, cli.code, cli.stderr)
    local id = cli.stderr:match("session (%d+%-%d+%-[%w-]+%-%x%x%x%x)")
    assert(id, cli.stderr)
    local a = mcp(home, {
      { "tools/call", { name = "run_script", arguments = { script = "cat /etc/shadow; ls -A /root\n" } } },
      { "tools/call", { name = "get_session", arguments = { id = id, script = true, diff = true } } },
    })
    local out = a[2].result.structuredContent or error(json.encode(a[2]))
    assert.equal("", out.stdout)  -- no hash, nothing of /root
    local got = a[3].result.structuredContent or error(json.encode(a[3]))
    assert.is_nil(got.script.text)  -- metadata only: the CLI made it
    assert.matches("^%x+$", got.script.sha256)
    assert.falsy(json.encode(a[3]):find("s3cret", 1, true))  -- neither in the command line
    assert.falsy(json.encode(a[3]):find("spechash", 1, true))  -- nor in a diff of /etc/shadow
  end)

  it("leaves the CLI's own runs alone: the operator decides", function()
    if not h.need(ROOT, "root (to read /etc/shadow at all)") then return end
    local r = h.shannot({ "run", "--profile", "readonly", "--", "cat", "/etc/shadow" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("root:", r.stdout)
  end)

  it("hides what [mcp] hide adds, a symlink's target with it, and says so in shannot://status", function()
    local base = ROOT and "/srv" or h.visible_dir()
    if not h.need(base, "a directory the sandbox sees at the same path") then return end
    local dir = ROOT and h.track(assert(fs.mkdtemp("/srv/shannot-spec-"))) or base
    assert(fs.chmod(dir, 493))
    h.write(dir .. "/secret-file", "the secret\n")
    assert(fs.mkdir(dir .. "/secret-dir", 493))
    h.write(dir .. "/secret-dir/inside", "also secret\n")
    h.write(dir .. "/plain", "pointed at\n")
    assert(fs.symlink(dir .. "/plain", dir .. "/secret-link"))     -- matched: its target is hidden
    assert(fs.symlink(dir .. "/secret-file", dir .. "/public-link"))  -- not matched, leads to a hidden file
    h.write(dir .. "/public", "visible\n")
    local home = h.home()
    config(home, string.format('[mcp]\nhide = ["%s/secret*"]\n', dir))
    local a = mcp(home, {
      run_command({ "sh", "-c", "cd " .. dir .. " && cat secret-file public-link plain secret-link public; " ..
        "ls -A secret-dir; echo x > secret-dir/new 2>/dev/null || echo refused" }),
      STATUS,
    })
    local out = a[2].result.structuredContent
    assert.equal("visible\nrefused\n", out.stdout, out.stderr)
    local hidden = hidden_of(a[3])
    assert.is_truthy(require("shannot.text").inert(json.encode(hidden.patterns)):find(dir .. "/secret*", 1, true))
    local matched = {}
    for _, m in ipairs(hidden.matched) do matched[m.path] = m end
    assert.equal("file", matched[dir .. "/secret-file"].type)
    assert.equal("directory", matched[dir .. "/secret-dir"].type)
    assert.equal(dir .. "/secret-link", matched[dir .. "/plain"].name)
    assert.is_nil(matched[dir .. "/public"])
    -- the CLI without --hide sees it all; with --hide, as the MCP server does
    local r = h.shannot({ "run", "--profile", "readonly", "--", "cat", dir .. "/secret-file" }, { home = home })
    assert.equal("the secret\n", r.stdout)
    r = h.shannot({ "run", "--profile", "readonly", "--hide", dir .. "/secret-[f]ile", "--hide", "/nothing/here*",
      "--", "cat", dir .. "/secret-file", dir .. "/public" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.equal("visible\n", r.stdout)
  end)

  it("refuses a malformed [mcp] hide and --hide in one line", function()
    local home = h.home()
    for _, body in ipairs({ '[mcp]\nhide = "/srv/secret"\n', '[mcp]\nhide = ["srv/secret"]\n',
      '[mcp]\nhide = ["/srv/../etc"]\n', '[mcp]\nhide = ["/srv/**"]\n' }) do
      config(home, body)
      local r = h.shannot({ "config", "check" }, { home = home })
      assert.equal(2, r.code, body)
      assert.is_true(h.one_line_error(r), r.stderr)
      assert.matches("mcp%.hide must be", r.stderr)
      r = h.shannot({ "mcp" }, { home = home, input = INIT .. "\n" })
      assert.equal(2, r.code, body)
      assert.is_true(h.one_line_error(r), r.stderr)
    end
    config(home, '[mcp]\nhide = ["/srv/secret*", "/opt/k[0-9]"]\n')
    local r = h.shannot({ "config", "show" }, { home = home })
    assert.equal(0, r.code, r.stderr)
    assert.matches('mcp.hide = %[\n  "/srv/secret%*",\n  "/opt/k%[0%-9%]",\n%]', r.stdout)
    r = h.shannot({ "run", "--hide", "etc/shadow", "--", "true" }, { home = home })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("%-%-hide", r.stderr)
  end)
end)
