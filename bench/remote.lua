-- bench/remote: remote runs over SSH against OpenSSH doing the same, in one
-- run, interleaved, against a throw-away sshd on 127.0.0.1 (the specs'):
--   1. cold: `shannot run --target T --profile readonly -- true` (a new
--      process, a new connection: probe, staging, run, collect, cleanup)
--      vs `ssh` with a new connection running the same remote command
--      lines in one go.  Target <= 0.5.
--   2. warm: one command on a connection already up (libssh, from a
--      `shannot lua` loop) vs `ssh` through a ControlMaster.  Target <= 0.5.
--   3. 10 000 files: `shannot run --target T -c CODE` (system profile,
--      capturing), CODE a shell loop writing 10 000 small files into a new
--      directory under /srv, vs one `ssh` (a new connection too) running
--      the same CODE on the host itself, then `tar c` of that directory to
--      its stdout (and removing it), piped into a local `tar x`: the floor
--      is the files written there and brought here as a tree, which is
--      what the capture must do at least.  shannot also sets up the
--      sandbox and overlays, walks, hashes and stores every file as a
--      blob and saves the session: its price.  Each side's output (the
--      session, the unpacked tree) is removed between rounds, untimed.
--      Target <= 1.5.
package.path = "spec/?.lua;bench/?.lua;" .. package.path
local shannot = require("shannot")
local proc = shannot.proc
local sys = require("shannot.core.sys")
local sshd = require("support.sshd")
local lib = require("lib")
local run, compare, median = lib.run, lib.compare, lib.median
local h = require("support.h")
local remote_shell = require("shannot.capture.remote_shell")
local staging = require("shannot.capture.staging")

local N = tonumber(arg[1]) or 30
local BIN = arg[2] or "build/shannot"
local FILES = tonumber(arg[3]) or 10000
local fs = shannot.fs
local text = require("shannot.text")

local function quoted(argv)
  local out = {}
  for i, a in ipairs(argv) do out[i] = text.quote(a) end
  return out
end

local server = sshd.start()
local ok, problem = pcall(function()
  local home = h.tmpdir()
  assert(shannot.fs.mkdir_p(home .. "/.ssh"))
  assert(shannot.fs.write_atomic(home .. "/.ssh/known_hosts", assert(shannot.fs.read_file(server.known_hosts))))
  local env = { "HOME=" .. home, "XDG_CONFIG_HOME=" .. home .. "/config", "XDG_DATA_HOME=" .. home .. "/data",
    "PATH=" .. os.getenv("PATH") }
  assert(shannot.fs.mkdir_p(home .. "/config/shannot"))
  assert(shannot.fs.write_atomic(home .. "/config/shannot/config.toml", string.format(
    '[remotes.box]\nhost = "%s"\nuser = "%s"\nport = %d\nkey_file = "%s"\n',
    server.host, server.user, server.port, server.key)))
  local target = "box"
  local ssh = { "ssh", "-q", "-i", server.key, "-p", tostring(server.port), "-o", "BatchMode=yes",
    "-o", "UserKnownHostsFile=" .. server.known_hosts, "-o", "StrictHostKeyChecking=yes",
    server.user .. "@" .. server.host }
  -- The remote command lines shannot sends for `--profile readonly -- true`.
  local p = assert(shannot.profile.load("readonly"))
  local dir = "/tmp/shannot-bench-remote"
  local plan = { dir = dir, root = sys.ids().euid == 0, shim = staging.SHIM_TEXT, defer = {}, overlays = {},
    seccomp = { assert(shannot.seccomp.program()) } }
  local vr = shannot.fs.lstat("/var/run")
  local facts = { home = home, user = sys.ids().user, tops = {}, defer = {}, root = plan.root,
    var_run_link = vr and vr.type == "link" and "yes" or "no" }
  plan.bwrap_argv = shannot.bwrap.argv(p,
    require("shannot.capture.ssh").sandbox_plan(p, { argv = { "true" } }, facts, plan), "remote")
  local same = table.concat({
    remote_shell.probe_command({}, shannot.profile.search_path(p), {}) .. " > /dev/null",
    "mkdir -m 700 " .. dir, "(" .. remote_shell.prepare_and_run_command(plan) .. ")",
    "(" .. remote_shell.collect_command(dir, nil, plan.root) .. ") > /dev/null",
  }, "\n")
  local cold_ssh = table.move(ssh, 1, #ssh, 1, {})
  cold_ssh[#cold_ssh + 1] = same
  local m1 = compare({
    function() run({ BIN, "run", "--target", target, "--profile", "readonly", "--", "true" },
      { env = env, stdout = "null", stderr = "pipe", stdin = "null" }) end,
    function() run(cold_ssh) end,
  }, N, 2)
  -- warm: a loop of K commands in one process each way, per command
  local K = 50
  local loop = h.write(home .. "/loop.lua", string.format([[
    local ssh = require("shannot.ssh")
    local s = assert(ssh.connect({ host = %q, port = %d, user = %q, identity = %q, known_hosts = %q, config = false }))
    local t0 = require("shannot.core.sys").monotonic()
    for _ = 1, %d do assert(s:exec("true").code == 0) end
    io.write(require("shannot.core.sys").monotonic() - t0)
  ]], server.host, server.port, server.user, server.key, server.known_hosts, K))
  local ctl = home .. "/ctl"
  local master = table.move(ssh, 1, #ssh, 1, {})
  table.insert(master, 2, "-o"); table.insert(master, 3, "ControlMaster=yes")
  table.insert(master, 4, "-o"); table.insert(master, 5, "ControlPath=" .. ctl)
  table.insert(master, 6, "-N")
  local mp = assert(proc.spawn(master, { stdin = "null", stdout = "null", stderr = "null" }))
  for _ = 1, 100 do
    if shannot.fs.exists(ctl) then break end
    proc.run({ "sleep", "0.05" })
  end
  local via_master = table.move(ssh, 1, #ssh, 1, {})
  table.insert(via_master, 2, "-o"); table.insert(via_master, 3, "ControlPath=" .. ctl)
  via_master[#via_master + 1] = "true"
  local warm_lib, warm_ssh = {}, {}
  for _ = 1, 5 do
    local r = run({ BIN, "lua", loop }, { env = env, stdout = "pipe", stderr = "pipe", stdin = "null" })
    warm_lib[#warm_lib + 1] = tonumber(r.stdout) / K
    local t0 = sys.monotonic()
    for _ = 1, K do run(via_master) end
    warm_ssh[#warm_ssh + 1] = (sys.monotonic() - t0) / K
  end
  mp:kill("TERM")
  mp:close()
  -- 3. a capture of FILES small files vs ssh + tar c | tar x
  local bigdir = "/srv/shannot-bench-remote"
  local code = string.format('mkdir %s && cd %s && i=0; while [ $i -lt %d ]; do echo "file $i" > f$i; ' ..
    'i=$((i+1)); done', bigdir, bigdir, FILES)
  local unpacked = home .. "/unpacked"
  local floor = string.format("%s %s | tar xf - -C %s",
    table.concat(quoted(ssh), " "), text.quote("rm -rf " .. bigdir .. "; " .. code .. " && cd / && tar cf - -C " ..
      bigdir .. " . && rm -rf " .. bigdir), text.quote(unpacked))
  local rounds = math.max(3, N // 5)
  local m3 = compare({
    { prepare = function() fs.rmtree(home .. "/data/shannot") end,
      run = function()
        run({ BIN, "run", "--target", target, "-c", code },
          { env = env, stdout = "null", stderr = "pipe", stdin = "null" })
      end },
    { prepare = function() fs.rmtree(unpacked); assert(fs.mkdir(unpacked)) end,
      run = function() run({ "sh", "-c", floor }) end },
  }, rounds, 1)
  local sessions = assert(fs.readdir(home .. "/data/shannot/sessions"))
  assert(#sessions == 1, "one session per capture")
  assert(#assert(fs.readdir(unpacked)) == FILES, "the floor brought every file")
  local w1, w2 = median(warm_lib), median(warm_ssh)
  print(string.format("remote, medians (shannot vs OpenSSH); %d cold rounds, %d x %d warm commands, %d capture rounds",
    N, 5, K, rounds))
  print(string.format("%-52s %8.2f ms %8.2f ms  ratio %.2f (target <= 0.50)",
    "cold: run --target -- true  vs  ssh, same lines", m1[1] * 1000, m1[2] * 1000, m1[1] / m1[2]))
  print(string.format("%-52s %8.2f ms %8.2f ms  ratio %.2f (target <= 0.50)",
    "warm: one command, reused connection  vs  ControlMaster", w1 * 1000, w2 * 1000, w1 / w2))
  print(string.format("%-52s %8.2f ms %8.2f ms  ratio %.2f (target <= 1.50)",
    string.format("capture %d files  vs  ssh tar c | tar x", FILES), m3[1] * 1000, m3[2] * 1000, m3[1] / m3[2]))
end)
server.stop()
h.cleanup()
assert(ok, problem)
