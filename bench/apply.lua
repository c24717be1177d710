-- bench/apply: executing a session (drift check, checkpoint, apply, the
-- post-apply state) of FILES small files (100 000 by default) plus large
-- ones, 1 GiB in all, against `cp -a` of the same tree, measured in the
-- same run, interleaved, each followed by a sync so that both pay for
-- their writes (page-cache writeback otherwise lands on whichever runs
-- next); and the peak RSS (GNU time) of every command a session goes
-- through: capture, show, approve, execute, rollback.
-- Targets: throughput >= 100% of cp -a, every RSS < 64 MiB.
local shannot = require("shannot")
local proc = shannot.proc
local fs = shannot.fs
local json = shannot.json
local sys = require("shannot.core.sys")
package.path = "bench/?.lua;" .. package.path
local lib = require("lib")
local run, median = lib.run, lib.median

local ROUNDS = tonumber(arg[1]) or 3
local BIN = arg[2] or "build/shannot"
local FILES = tonumber(arg[3]) or 10000

local work = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/var/tmp") .. "/shannot-bench-apply-"))
local ok, problem = pcall(function()
  local host, home = work .. "/host", work .. "/home"
  assert(fs.mkdir(host)); assert(fs.mkdir(home))
  local env = { "HOME=" .. home, "XDG_DATA_HOME=" .. home .. "/data", "XDG_CONFIG_HOME=" .. home .. "/config",
    "PATH=" .. os.getenv("PATH") }
  local profile = work .. "/profile.json"
  assert(fs.write_atomic(profile, json.encode({ name = "bench", capture = { host },
    environment = { PATH = "/usr/bin:/bin" } })))
  -- The tree: FILES files of 10 KiB (random, so not compressible) in 100
  -- directories, and four large files making 1 GiB in all.
  local small = FILES * 10240
  local large = (1024 * 1024 * 1024 - small) // 4
  -- (perl, Essential in Debian: one process writes them all, where a
  -- shell loop would spend minutes forking cp)
  local script = string.format([[
    cd %s && head -c 10240 /dev/urandom > /tmp/seed &&
    for d in $(seq 100); do mkdir d$d; done &&
    perl -e 'open(S, "<", "/tmp/seed") or die; local $/; my $seed = <S>;
      for my $i (0 .. %d - 1) { open(F, ">", "d" . ($i %% 100 + 1) . "/f$i") or die; print F $seed; close(F) }' &&
    for n in 1 2 3 4; do head -c %d /dev/urandom > big$n; done]], host, FILES, large)
  -- peak RSS (KiB) of one command
  local peaks = {}
  local function timed(what, argv, out)
    local x = run({ "/usr/bin/time", "-f", "%M", table.unpack(argv) },
      { env = env, stdout = out or "null", stderr = "pipe", stdin = "null", timeout = 3600 })
    peaks[what] = peaks[what] or {}
    table.insert(peaks[what], tonumber(x.stderr:match("(%d+)%s*$")))
    return x
  end
  local r = timed("capture", { BIN, "run", "--json", "--profile", profile, "-c", script }, "pipe")
  local id = json.decode(r.stdout).session.id
  timed("show", { BIN, "show", id })
  timed("approve", { BIN, "approve", id, "--yes" })
  local sessions = home .. "/data/shannot/sessions"
  -- The same tree as plain files, for cp -a (made by executing once).
  local tree = work .. "/tree"
  local function copy_session(n)
    local new = id:sub(1, -6) .. string.format("-%04x", n)
    run({ "cp", "-al", sessions .. "/" .. id, sessions .. "/" .. new })
    local f = sessions .. "/" .. new .. "/session.json"
    local s = json.decode(assert(fs.read_file(f, 1 << 30)))
    s.id = new
    assert(fs.write_atomic(f, json.encode(s)))
    -- its lists stay hard links to the original's, but for those an
    -- execute writes anew (by rename)
    return new
  end
  run({ BIN, "execute", copy_session(0) }, { env = env, stdout = "null", stderr = "pipe", stdin = "null" })
  assert(fs.rename(host, tree)); assert(fs.mkdir(host))
  local t_exec, t_cp = {}, {}
  for round = 1, ROUNDS do
    local sid = copy_session(round)
    proc.run({ "sync" })
    local t0 = sys.monotonic()
    timed("execute", { BIN, "execute", sid })
    proc.run({ "sync" })
    t_exec[#t_exec + 1] = sys.monotonic() - t0
    timed("rollback", { BIN, "rollback", sid })
    fs.rmtree(host); assert(fs.mkdir(host))
    proc.run({ "sync" })
    t0 = sys.monotonic()
    run({ "cp", "-a", tree, work .. "/copy" })
    proc.run({ "sync" })
    t_cp[#t_cp + 1] = sys.monotonic() - t0
    fs.rmtree(work .. "/copy")
  end
  local e, c = median(t_exec), median(t_cp)
  print(string.format("apply, median of %d rounds: %d files + 4 large, 1 GiB", ROUNDS, FILES))
  print(string.format("%-40s %9.3f s %9.3f s  throughput %.0f%% of cp -a (target >= 100%%)",
    "execute + sync  vs  cp -a + sync", e, c, 100 * c / e))
  for _, what in ipairs({ "capture", "show", "approve", "execute", "rollback" }) do
    print(string.format("%-40s %9d KiB (target < 65536)", "peak RSS of " .. what, math.floor(median(peaks[what]))))
  end
end)
fs.rmtree(work)
assert(ok, problem)
