-- bench/fleet HOSTS ROUNDS: a fleet capture of one script on HOSTS
-- loopback sshd (default 16), measured in one run against
--   (a) the ideal on this machine: HOSTS x the single-host capture time
--       divided by the number of cores (loopback hosts share this CPU);
--       target <= 1.25x;
--   (b) Ansible running the same script on the same hosts (`ansible all -i
--       INV -m script -f HOSTS`, Debian's ansible-core, installed here when
--       missing); target <= 0.5x;
-- and the peak RSS of the controlling process (a `shannot lua` driving
-- shannot.fleet, its own VmHWM): target <= 64 MiB + 8 MiB per concurrent
-- host.  A fourth row, HOSTS single-host runs started at once (no fleet
-- code at all), shows what running that many captures side by side costs
-- on this machine by itself, and the fleet's own share beside it.
-- A fifth pair of rows measures how this machine scales process creation,
-- which is most of a capture's work (sshd forks, login shells, bwrap): the
-- same fork+exec loop once, then once per core at the same time.  Where
-- the parallel loops take longer than one loop, the cores do not add up
-- for such work, and the ideal of (a) is out of reach whatever the fleet
-- does; the ratio against the ideal at the measured parallelism is printed
-- beside the one at the nominal core count.
-- Medians of ROUNDS rounds, the cases interleaved.
package.path = "spec/?.lua;bench/?.lua;" .. package.path
local shannot = require("shannot")
local fs, proc = shannot.fs, shannot.proc
local sys = require("shannot.core.sys")
local sshd = require("support.sshd")
local h = require("support.h")
local lib = require("lib")

local HOSTS = math.tointeger(tonumber(arg[1])) or 16
local ROUNDS = math.tointeger(tonumber(arg[2])) or 3
local BIN = assert(fs.realpath(arg[3] or "build/shannot"))

local function cores()
  local r = proc.run({ "nproc" })
  return math.tointeger(tonumber(r.stdout)) or 1
end

-- ansible-core from Debian when it is missing (as root), else nil and why
local function ansible()
  local have = fs.which("ansible", os.getenv("PATH"))
  if have then return have end
  if sys.ids().euid ~= 0 then return nil, "ansible is missing (as root: apt-get install ansible-core)" end
  local r = proc.run({ "apt-get", "install", "-y", "-qq", "--no-install-recommends", "ansible-core" },
    { env = { "DEBIAN_FRONTEND=noninteractive", "PATH=" .. os.getenv("PATH") }, timeout = 900 })
  if r.code ~= 0 then
    proc.run({ "apt-get", "update", "-qq" }, { timeout = 600 })
    r = proc.run({ "apt-get", "install", "-y", "-qq", "--no-install-recommends", "ansible-core" },
      { env = { "DEBIAN_FRONTEND=noninteractive", "PATH=" .. os.getenv("PATH") }, timeout = 900 })
  end
  if r.code ~= 0 then return nil, "cannot install ansible-core: " .. (r.stderr or "") end
  return fs.which("ansible", "/usr/bin:" .. os.getenv("PATH"))
end

local servers = {}
local ok, problem = pcall(function()
  local home = h.tmpdir()
  assert(fs.mkdir_p(home .. "/.ssh"))
  assert(fs.mkdir_p(home .. "/config/shannot"))
  local key = sshd.keygen(home .. "/client_key")
  local known, remotes, members, inventory = {}, {}, {}, { "[web]" }
  for i = 1, HOSTS do
    local srv = sshd.start({ client_key = key })
    servers[i] = srv
    known[#known + 1] = sshd.known_hosts_line(srv.port, srv.host_key_pub)
    remotes[#remotes + 1] = string.format('[remotes.web%d]\nhost = "%s"\nport = %d\nuser = "%s"\nkey_file = "%s"\n',
      i, srv.host, srv.port, srv.user, key)
    members[#members + 1] = '"web' .. i .. '"'
    inventory[#inventory + 1] = string.format("web%d ansible_host=%s ansible_port=%d ansible_user=%s " ..
      "ansible_ssh_private_key_file=%s", i, srv.host, srv.port, srv.user, key)
  end
  h.write(home .. "/.ssh/known_hosts", table.concat(known))
  h.write(home .. "/config/shannot/config.toml", table.concat(remotes, "\n") ..
    "\n[groups.web]\nmembers = [" .. table.concat(members, ", ") .. "]\n")
  local inv = h.write(home .. "/hosts.ini", table.concat(inventory, "\n") .. "\n")
  -- the script: a small deployment into a directory of its own on each host
  local area = h.tmpdir()
  h.write(area .. "/app.conf", "v1\n")
  local script = h.write(home .. "/deploy.sh", string.format(
    "#!/bin/sh\nset -e\nmkdir -p %s/app\necho deployed > %s/app/version\necho tuned >> %s/app.conf\n",
    area, area, area))
  local profile = h.write(home .. "/profile.json", shannot.json.encode({ name = "bench-fleet", capture = { area } }))
  local env = { "HOME=" .. home, "XDG_CONFIG_HOME=" .. home .. "/config", "XDG_DATA_HOME=" .. home .. "/data",
    "PATH=" .. os.getenv("PATH"), "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=1",
    "ANSIBLE_LOCAL_TEMP=" .. home .. "/ansible-local", "ANSIBLE_REMOTE_TEMP=/tmp/.ansible-bench" }
  local quiet = { env = env, stdout = "null", stderr = "pipe", stdin = "null", timeout = 900 }
  local ans, why = ansible()
  -- the controlling process: a shannot lua run of the fleet, its own peak
  local driver = h.write(home .. "/drive.lua", string.format([[
    local f = assert(require("shannot").fleet.open("@web", { profile = %q, forks = %d }))
    local run = assert(f:run(%q))
    for _, r in ipairs(f:results()) do assert(r.state == "captured", r.name .. ": " .. tostring(r.error)) end
    local status = io.open("/proc/self/status"):read("a")
    io.write(status:match("VmHWM:%%s*(%%d+) kB"), " ", run.id, "\n")
  ]], profile, HOSTS, script))
  local peaks = {}
  local cases = {
    function() lib.run({ BIN, "run", "--target", "web1", "--profile", profile, script }, quiet) end,
    function()
      local r = lib.run({ BIN, "lua", driver }, { env = env, stdout = "pipe", stderr = "pipe", stdin = "null",
        timeout = 900 })
      peaks[#peaks + 1] = tonumber(r.stdout:match("^(%d+)"))
    end,
  }
  cases[3] = function()
    local ps = {}
    for i = 1, HOSTS do
      ps[i] = assert(proc.spawn({ BIN, "run", "--target", "web" .. i, "--profile", profile, script },
        { env = env, stdin = "null", stdout = "null", stderr = "null" }))
    end
    for i = 1, HOSTS do
      local r = ps[i]:communicate({})
      assert(r.code == 0, "single-host run " .. i .. " failed")
    end
  end
  local execs = { "sh", "-c", "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done" }
  local n = cores()
  cases[4] = function() lib.run(execs) end
  cases[5] = function()
    local ps = {}
    for i = 1, n do ps[i] = assert(proc.spawn(execs, { stdin = "null", stdout = "null", stderr = "null" })) end
    for i = 1, n do assert(ps[i]:communicate({}).code == 0, "exec loop failed") end
  end
  if ans then
    cases[6] = function()
      lib.run({ ans, "all", "-i", inv, "-m", "script", "-a", script, "-f", tostring(HOSTS) }, quiet)
    end
  end
  local m = lib.compare(cases, ROUNDS, 1)
  local ideal = HOSTS * m[1] / n
  -- parallelism this machine gives process creation: n loops' work in the
  -- time they took side by side, over one loop's time
  local parallelism = n * m[4] / m[5]
  local measured_ideal = HOSTS * m[1] / math.min(n, parallelism)
  print(string.format("fleet capture of one script on %d loopback hosts (%d cores), medians of %d rounds",
    HOSTS, n, ROUNDS))
  print(string.format("%-58s %9.1f ms", "one host: shannot run --target web1 SCRIPT", m[1] * 1000))
  print(string.format("%-58s %9.1f ms", string.format("ideal: %d x one host / %d cores", HOSTS, n), ideal * 1000))
  print(string.format("%-58s %9.1f ms  ratio %.2f vs ideal (target <= 1.25)",
    string.format("fleet: run --target @web --forks %d", HOSTS), m[2] * 1000, m[2] / ideal))
  print(string.format("%-58s %9.1f ms  ratio %.2f fleet/this (the fleet's own share)",
    string.format("%d single-host runs at once (no fleet code)", HOSTS), m[3] * 1000, m[2] / m[3]))
  print(string.format("%-58s %9.1f ms", "machine: 200 fork+exec of /bin/true, one loop", m[4] * 1000))
  print(string.format("%-58s %9.1f ms  parallelism %.2f of %d cores",
    string.format("machine: %d such loops at once", n),
    m[5] * 1000, parallelism, n))
  print(string.format("%-58s %9.1f ms  ratio %.2f vs this ideal",
    string.format("ideal at that parallelism: %d x one host / %.2f", HOSTS, math.min(n, parallelism)),
    measured_ideal * 1000, m[2] / measured_ideal))
  if ans then
    print(string.format("%-58s %9.1f ms  ratio %.2f fleet/ansible (target <= 0.50)",
      string.format("ansible all -m script -f %d", HOSTS), m[6] * 1000, m[2] / m[6]))
  else
    print("ansible: not measured: " .. tostring(why))
  end
  local peak = lib.median(peaks) / 1024
  local budget = 64 + 8 * HOSTS
  print(string.format("%-58s %9.1f MiB  (target <= %d MiB = 64 + 8 x %d)", "peak RSS of the controlling process",
    peak, budget, HOSTS))
end)
for _, srv in ipairs(servers) do srv.stop() end
h.cleanup()
assert(ok, problem)
