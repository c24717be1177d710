-- bench/capture: the cost of capturing, against baselines measured in the
-- same run, interleaved:
--   1. `shannot run -- true` with the system profile (one overlay per
--      capture path, set up in C) vs the same chain done with util-linux
--      tools: unshare -m, one `mount -t overlay` per path, exec bwrap with
--      the identical argument list.  Target <= 1.25.
--   2. the same against the C floor ../shared/bench/ovl_floor.c (compiled
--      here with cc: unshare, one overlay mount(2) per path in-process,
--      exec bwrap with shannot's argument list).  Target <= 1.25.
--   3. `shannot run` of a script writing 100 files vs the same script in
--      ovl_floor + bwrap.  Target <= 1.3.
--   4. capturing 10 000 small files (walk, hash, store, operations, and
--      their records as operations.jsonl holds them) vs `cp -a` of the
--      same tree.  Target <= 2.0.
-- Rows 2 and 3 sync the file systems before each run (untimed): the
-- floor's clean-up of its uppers left to write back would otherwise land
-- in shannot's syncs of its session, which the floor has none of.
-- Prints medians and ratios.  Run as root (the util-linux chain uses the
-- initial user namespace, as shannot does as root).  OVL_FLOOR_SRC names
-- another ovl_floor.c; without one (or cc) rows 2 and 3 are left out.
-- ovl_floor's scratch directory is made in build/ (OVL_FLOOR_SCRATCH: a
-- directory prefix elsewhere), outside every path it overlays.
local shannot = require("shannot")
local fs = shannot.fs
local sys = require("shannot.core.sys")
package.path = "bench/?.lua;" .. package.path
local lib = require("lib")
local run, compare = lib.run, lib.compare

local function proc_ok(argv)
  local r = shannot.proc.run(argv, { stdout = "null", stderr = "pipe", stdin = "null" })
  if not (r and r.code == 0) then
    print(table.concat(argv, " ") .. ": " .. (r and r.stderr or "?"))
    return false
  end
  return true
end

local N = tonumber(arg[1]) or 100
local BIN = arg[2] or "build/shannot"
local FILES = tonumber(arg[3]) or 10000

local FLOOR_SRC = os.getenv("OVL_FLOOR_SRC") or "../shared/bench/ovl_floor.c"
-- ovl_floor's overlay targets, in its order (its `dirs`)
local FLOOR_DIRS = { "etc", "usr", "var", "opt", "home", "root", "srv", "tmp" }
-- the 100-file script of row 3
local SCRIPT100 = "mkdir -p /opt/shannot-bench && i=0 && while [ $i -lt 100 ]; do " ..
  "echo \"file $i\" > /opt/shannot-bench/f$i; i=$((i+1)); done"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local work = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/var/tmp") .. "/shannot-bench-"))
local floor_scratch
local ok, problem = pcall(function()
  -- 1. start-up of a capturing run
  local env = { "HOME=" .. work .. "/home", "XDG_DATA_HOME=" .. work .. "/data",
    "XDG_CONFIG_HOME=" .. work .. "/config", "PATH=" .. os.getenv("PATH") }
  local p = assert(shannot.profile.load("system"))
  local st = assert(shannot.stage.create(p, { search_path = shannot.profile.search_path(p) }))
  local _ <close> = shannot.guard(function() shannot.stage.remove(st) end)
  local plan = assert(shannot.sandbox.prepare(p, { "true" }, { capture = shannot.stage.sandbox_part(st) }))
  plan.status_fd = 1
  plan.argv = shannot.bwrap.argv(p, plan, "local")
  local script, last = {}, {}
  -- A mount whose target holds the staging area goes last: after it, the
  -- upper paths below would resolve through it (shannot opens them all
  -- first instead).
  local mounts = {}
  for _, m in ipairs(shannot.stage.namespace(st).mounts) do
    local covers = st.dir:sub(1, #m.target + 1) == m.target .. "/"
    table.insert(covers and last or mounts, m)
  end
  table.move(last, 1, #last, #mounts + 1, mounts)
  local fd = 8
  for _, m in ipairs(mounts) do
    if m.rebind then  -- opened before the overlays, bound back after them
      table.insert(script, 1, string.format("exec %d<%s", fd, quote(m.target)))
      script[#script + 1] = string.format("mount --bind /proc/self/fd/%d %s", fd, quote(m.target))
      fd = fd - 1
    else
      script[#script + 1] = string.format("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s,userxattr %s",
        m.lower, m.upper, m.work, quote(m.target))
    end
  end
  -- the system call filter from a file on fd 9, as shannot's pipe
  local bpf_file = work .. "/filter.bpf"
  assert(fs.write_atomic(bpf_file, assert(shannot.seccomp.program())))
  local bw = {}
  for i, a in ipairs(plan.argv) do
    bw[i] = plan.argv[i - 1] == "--add-seccomp-fd" and "9" or quote(a)
  end
  script[#script + 1] = "exec " .. table.concat(bw, " ") .. " 9<" .. quote(bpf_file)
  local unshare = sys.ids().euid == 0 and { "unshare", "-m" } or { "unshare", "-Urm" }
  local chain = { unshare[1], unshare[2], "sh", "-c", table.concat(script, " && ") }
  local m1 = compare({
    { run = function()
        run({ BIN, "run", "--", "true" }, { env = env, stdout = "null", stderr = "pipe", stdin = "null" })
      end },
    { run = function() run(chain) end },
  }, N)

  -- 2. and 3. against the C floor: ovl_floor SCRATCH N bwrap ARGS..., the
  -- seccomp filter on a fresh pipe each time (untimed), as shannot's
  local m_floor, m_100
  local floor_bin = work .. "/ovl_floor"
  local built = fs.exists(FLOOR_SRC) and proc_ok({ "cc", "-O2", "-o", floor_bin, FLOOR_SRC })
  if built then
    -- its upper and work dirs must lie outside every directory it
    -- overlays (through an overlay an upper is refused): in build/, or
    -- OVL_FLOOR_SCRATCH
    local scratch = assert(fs.mkdtemp(os.getenv("OVL_FLOOR_SCRATCH") or
      (assert(fs.realpath("build")) .. "/ovl-floor-")))
    floor_scratch = scratch
    for i = 1, #st.overlays do
      assert(fs.mkdir_p(scratch .. "/" .. FLOOR_DIRS[i] .. "/w"))
    end
    local function clean_uppers()
      for i = 1, #st.overlays do
        local u = scratch .. "/" .. FLOOR_DIRS[i] .. "/u"
        fs.rmtree(u); assert(fs.mkdir(u))
      end
    end
    local keep
    local function floor_case(argv)
      local c = {}
      c.prepare = function()
        clean_uppers()
        for _, f in ipairs(keep or {}) do f:close() end
        local pl = assert(shannot.sandbox.prepare(p, argv, { capture = shannot.stage.sandbox_part(st) }))
        pl.status_fd = 1
        local line = shannot.bwrap.argv(p, pl, "local")
        c.argv = { floor_bin, scratch, tostring(#st.overlays) }
        table.move(line, 1, #line, #c.argv + 1, c.argv)
        c.keep = {}
        for _, f in ipairs(pl.keep) do c.keep[#c.keep + 1] = f:fd() end
        keep = pl.keep
      end
      c.run = function()
        run(c.argv, { stdout = "null", stderr = "pipe", stdin = "null", keep_fds = c.keep })
      end
      return c
    end
    local function shannot_case(argv)
      local full = { BIN, "run", "--" }
      table.move(argv, 1, #argv, #full + 1, full)
      return { run = function()
        run(full, { env = env, stdout = "null", stderr = "pipe", stdin = "null" })
      end }
    end
    m_floor = compare({ shannot_case({ "true" }), floor_case({ "true" }) }, N, nil, true)
    local writer = { "/bin/sh", "-c", SCRIPT100 }
    m_100 = compare({ shannot_case(writer), floor_case(writer) }, math.max(5, N // 2), nil, true)
    for _, f in ipairs(keep or {}) do f:close() end
  else
    print(string.format("(no %s or no cc: the ovl_floor rows are left out)", FLOOR_SRC))
  end

  -- 4. capturing a tree of small files (FILES = 0: left out)
  local tree = work .. "/tree"
  local rounds = math.max(5, N // 10)
  local m2
  if FILES > 0 then
    assert(fs.mkdir_p(tree .. "/many"))
    for i = 1, FILES do assert(fs.write_atomic(string.format("%s/many/f%d", tree, i), "file " .. i .. "\n")) end
    local host = work .. "/host"
    assert(fs.mkdir(host))
    local copy, upper, blobs = work .. "/copy", work .. "/upper", work .. "/blobs"
    m2 = compare({
      { prepare = function() fs.rmtree(copy) end,
        run = function() run({ "cp", "-a", tree, copy }) end },
      { prepare = function()
          fs.rmtree(upper); fs.rmtree(blobs)
          run({ "cp", "-a", tree, upper }); assert(fs.mkdir(blobs))
        end,
        run = function()
          local w = assert(shannot.capture.operations({ { target = host, upper = upper } }, blobs))
          -- (a session's operations are one record a line since note 102,
          -- not one pretty-printed document)
          local lines = {}
          for i, op in ipairs(w.ops) do lines[i] = shannot.session.encode_operation(op) end
          assert(#table.concat(lines, "\n") > 0)
        end },
    }, rounds)
  end

  local function row(label, a, b, target)
    print(string.format("%-50s %9.3f ms %9.3f ms  ratio %.2f (target <= %.2f)",
      label, a * 1000, b * 1000, a / b, target))
  end
  print(string.format("capture, medians (shannot vs baseline); %d and %d rounds", N, rounds))
  row(string.format("run -- true, %d overlays  vs  unshare+mount+bwrap", #st.overlays), m1[1], m1[2], 1.25)
  if m_floor then
    row(string.format("run -- true, %d overlays  vs  ovl_floor+bwrap", #st.overlays), m_floor[1], m_floor[2], 1.25)
    row("run, script writing 100 files vs  ovl_floor+bwrap", m_100[1], m_100[2], 1.3)
  end
  if m2 then row(string.format("capture %d files          vs  cp -a", FILES), m2[2], m2[1], 2.0) end
end)
fs.rmtree(work)
if floor_scratch then fs.rmtree(floor_scratch) end
assert(ok, problem)
