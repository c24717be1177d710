-- Shell completion (issue 18.3): completions/shannot.bash driven in a real
-- bash (COMP_* set, the completion function called, COMPREPLY printed)
-- against a home with a config, profiles and sessions; the zsh and fish
-- files parsed (fish also asked); `shannot __complete` quiet on a broken
-- config; and every placeholder and option value of every command known
-- to the completer, so a new one cannot go uncompleted unnoticed.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")
local cli = require("shannot.cli")
local complete = require("shannot.cmd.complete")

local SCRIPT = h.ROOT .. "/completions/shannot.bash"

-- Sessions made by the session module itself, in the store's real format:
-- an older pending one and a newer executed one (so "pending first" is
-- not the store's order), and a fleet run's directory.
local MAKE_SESSIONS = [[
local session = require("shannot.session")
local now = os.time()
local function make(name, t)
  local id = assert(session.reserve(name, t))
  local s = session.new({ id = id, name = name, now = t, command = { "sh", "-c", "true" }, exit_code = 0,
    operations = { { id = 1, kind = "write", path = "/etc/motd", decision = "review", danger = "safe",
      new = { type = "file", mode = 420, uid = 0, gid = 0, size = 6,
        hash = string.rep("a", 64) }, base = { exists = false } } } })
  assert(session.save(s))
  return s
end
local pending = make("waiting", now - 120)
local done = make("done", now - 60)
assert(session.transition(done, "approved"))
assert(session.transition(done, "executed"))
io.write(pending.id, " ", done.id, "\n")
]]

local function setup_home()
  local home = h.home()
  h.write(home .. "/config/shannot/config.toml",
    '[remotes.web1]\nhost = "web1.example"\n\n[groups.webs]\nmembers = ["web1"]\n')
  h.write(home .. "/config/shannot/profiles/alpha.json", '{"description": "a test profile"}\n')
  h.write(home .. "/config/shannot/profiles/beta.json", '{"description": "another one"}\n')
  local mk = h.write(home .. "/mk.lua", MAKE_SESSIONS)
  local r = h.shannot({ "lua", mk }, { home = home })
  assert(r.code == 0, r.stderr)
  local pending, executed = r.stdout:match("^(%S+) (%S+)\n$")
  assert(pending and executed, r.stdout)
  local run_id = "20200101-000000-fleet-abcd"
  assert(fs.mkdir_p(home .. "/data/shannot/runs/" .. run_id))
  local cwd = home .. "/work"
  assert(fs.mkdir_p(cwd))
  h.write(cwd .. "/setup.sh", "echo hi\n")
  h.write(cwd .. "/notes.txt", "x\n")
  local bin = home .. "/bin"
  assert(fs.mkdir_p(bin))
  assert(proc.run({ "ln", "-s", h.BIN, bin .. "/shannot" }))
  return { home = home, cwd = cwd, bin = bin, pending = pending, executed = executed, run = run_id }
end

local function env_of(t)
  return h.env({ HOME = t.home, XDG_CONFIG_HOME = t.home .. "/config", XDG_DATA_HOME = t.home .. "/data",
    SHANNOT_CONFIG = false, PATH = t.bin .. ":" .. os.getenv("PATH") })
end

-- The bash side: source the script, find the function `complete -p`
-- names, set COMP_* for the line (cursor at its end), print COMPREPLY.
local DRIVER = [==[
source "$1" || exit 9
fn=$(complete -p shannot | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[ -n "$fn" ] || exit 8
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
"$fn" shannot "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
]==]

-- complete(t, line) -> COMPREPLY as a list, and stderr
local function bash_complete(t, line)
  local r = assert(proc.run({ "bash", "--norc", "--noprofile", "-c", DRIVER, "driver", SCRIPT, line },
    { env = env_of(t), cwd = t.cwd, timeout = 30 }))
  assert(r.code == 0, "bash driver failed: " .. r.code .. " " .. r.stderr)
  local out = {}
  for l in r.stdout:gmatch("[^\n]+") do out[#out + 1] = l end
  return out, r.stderr
end

local function has(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
end

local function have_program(name)
  local r = proc.run({ "sh", "-c", "command -v " .. name })
  return r and r.code == 0
end

-- zsh and fish, installed like other specs install their tools (as root,
-- apt-get) when missing.
local function ensure(pkg)
  if have_program(pkg) then return true end
  if require("shannot.core.sys").ids().euid == 0 and have_program("apt-get") then
    proc.run({ "apt-get", "install", "-y", "-q", pkg },
      { timeout = 600, env = h.env({ DEBIAN_FRONTEND = "noninteractive" }) })
  end
  return have_program(pkg)
end

describe("shell completion", function()
  local t
  setup(function() t = setup_home() end)
  teardown(function() h.cleanup() end)

  it("completes commands after `shannot `", function()
    local got, err = bash_complete(t, "shannot ")
    for _, c in ipairs(cli.commands()) do assert.is_true(has(got, c[1]), c[1]) end
    assert.is_false(has(got, "__complete"))
    assert.is_false(has(got, "__fleet-host"))
    assert.equal("", err)
    assert.same({ "rollback", "run" }, (function()
      local r = bash_complete(t, "shannot ru")
      local x = bash_complete(t, "shannot ro")
      return { x[1], r[1] }
    end)())
  end)

  it("completes a command's options from its options table", function()
    local got = bash_complete(t, "shannot run --")
    for name in pairs(require("shannot.cmd.run").options) do
      if name:sub(1, 2) == "--" then assert.is_true(has(got, name), name) end
    end
    assert.same({ "--diff" }, bash_complete(t, "shannot show --di"))
  end)

  it("completes profile names (and files) after --profile", function()
    local got = bash_complete(t, "shannot run --profile ")
    for _, p in ipairs({ "alpha", "beta", "system", "minimal" }) do assert.is_true(has(got, p), p) end
    assert.is_true(has(got, "setup.sh"), "a profile may be a JSON file")
    assert.same({ "alpha" }, bash_complete(t, "shannot run --profile al"))
    assert.same({ "beta" }, bash_complete(t, "shannot run --profile=be"))
    assert.same({ "alpha", "beta" }, (function()
      local g = bash_complete(t, "shannot profile show ")
      local out = {}
      for _, x in ipairs(g) do if x == "alpha" or x == "beta" then out[#out + 1] = x end end
      return out
    end)())
  end)

  it("completes remotes and @groups after --target", function()
    local got = bash_complete(t, "shannot run --target ")
    assert.is_true(has(got, "web1"))
    assert.is_true(has(got, "@webs"))
    assert.same({ "@webs" }, bash_complete(t, "shannot run --target @"))
    assert.same({ "web1" }, bash_complete(t, "shannot remote remove "))
    assert.same({ "webs" }, bash_complete(t, "shannot remote group remove "))
  end)

  it("puts pending sessions first after `shannot approve `, and fleet runs", function()
    local got = bash_complete(t, "shannot approve ")
    assert.equal(t.pending, got[1])
    assert.is_true(has(got, t.executed))
    assert.is_true(has(got, t.run))
    assert.is_true(index_of(got, t.pending) < index_of(got, t.executed))
    -- rollback wants executed ones first; show lists every session
    assert.equal(t.executed, bash_complete(t, "shannot rollback ")[1])
    local shown = bash_complete(t, "shannot show ")
    assert.is_true(has(shown, t.pending) and has(shown, t.executed))
    assert.same({ t.executed }, bash_complete(t, "shannot show " .. t.executed:sub(1, -3)))
  end)

  it("completes file names after `shannot run `", function()
    local got = bash_complete(t, "shannot run ")
    assert.is_true(has(got, "setup.sh"))
    assert.is_true(has(got, "notes.txt"))
    assert.same({ "setup.sh" }, bash_complete(t, "shannot run se"))
    assert.same({ "notes.txt" }, bash_complete(t, "shannot run setup.sh no"))
  end)

  it("completes subcommands from the usage lines", function()
    assert.same({ "list", "show", "check" }, bash_complete(t, "shannot profile "))
    assert.same({ "add", "list", "remove" }, bash_complete(t, "shannot remote group "))
    local clients = bash_complete(t, "shannot mcp install --client ")
    assert.is_true(has(clients, "claude-code") and has(clients, "all"))
  end)

  it("answers quietly on a broken config or an unknown request", function()
    local bad = setup_home()
    h.write(bad.home .. "/config/shannot/config.toml", "this is [not toml\n")
    local got, err = bash_complete(bad, "shannot run --target ")
    assert.same({}, got)
    assert.equal("", err)
    for _, args in ipairs({ { "bash", "run", "--target", "" }, { "tcsh", "run", "" }, {} }) do
      local argv = { "__complete" }
      table.move(args, 1, #args, 2, argv)
      local r = h.shannot(argv, { home = bad.home })
      assert.is_true(r.code == 0 or r.code == 1, tostring(r.code))
      assert.equal("", r.stdout)
      assert.equal("", r.stderr)
    end
    -- an unreadable store is an empty one
    h.write(bad.home .. "/config/shannot/config.toml", "")
    assert(fs.rmtree(bad.home .. "/data"))
    h.write(bad.home .. "/data", "not a directory\n")
    local r = h.shannot({ "__complete", "bash", "approve", "" }, { home = bad.home })
    assert.equal(0, r.code)
    assert.equal("words\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("knows what every placeholder and option value of every command stands for", function()
    local unknown = {}
    for _, c in ipairs(cli.commands()) do
      local cmd = cli.command(c[1])
      local function walk(node, where)
        for k, names in pairs(node.slots) do
          for _, name in ipairs(names) do
            if not complete.PLACEHOLDERS[name] and not complete.FREE[name] then
              unknown[#unknown + 1] = where .. " slot " .. k .. ": " .. name
            end
          end
        end
        for w, sub in pairs(node.sub) do walk(sub, where .. " " .. w) end
      end
      walk(complete.grammar(c[1], cmd.usage), c[1])
      for name, o in pairs(cmd.options or {}) do
        if o.arg and not complete.OPTION_VALUES[name] and not complete.FREE_OPTIONS[name]
          and not complete.listed_values(cmd.usage, name) then
          unknown[#unknown + 1] = c[1] .. " " .. name
        end
      end
    end
    table.sort(unknown)
    assert.same({}, unknown)
  end)

  it("has zsh and fish files that parse (and fish answers)", function()
    if not h.need(ensure("zsh"), "zsh (apt-get install zsh, as root)") then return end
    local r = assert(proc.run({ "zsh", "-n", h.ROOT .. "/completions/_shannot" }))
    assert.equal(0, r.code, r.stderr)
    if not h.need(ensure("fish"), "fish (apt-get install fish, as root)") then return end
    r = assert(proc.run({ "fish", "-n", h.ROOT .. "/completions/shannot.fish" }))
    assert.equal(0, r.code, r.stderr)
    r = assert(proc.run({ "fish", "--no-config", "-c", "source $argv[1]; complete -C 'shannot approve '",
      h.ROOT .. "/completions/shannot.fish" }, { env = env_of(t), cwd = t.cwd, timeout = 30 }))
    assert.equal(0, r.code, r.stderr)
    assert.equal(t.pending .. "\tpending", r.stdout:match("^[^\n]*"))
  end)
end)
