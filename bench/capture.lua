-- bench/capture: the cost of capturing, against baselines measured in the
-- same run, interleaved:
--   1. `shannot run -- true` with the system profile (one overlay per
--      capture path, set up in C) vs the same chain done with util-linux
--      tools: unshare -m, one `mount -t overlay` per path, exec bwrap with
--      the identical argument list.  Target <= 1.25.
--   2. capturing 10 000 small files (walk, hash, store, operations, the
--      session JSON) vs `cp -a` of the same tree.  Target <= 2.0.
-- Prints medians and ratios.  Run as root (the util-linux chain uses the
-- initial user namespace, as shannot does as root).
local shannot = require("shannot")
local fs = shannot.fs
local sys = require("shannot.core.sys")
package.path = "bench/?.lua;" .. package.path
local lib = require("lib")
local run, compare = lib.run, lib.compare

local N = tonumber(arg[1]) or 100
local BIN = arg[2] or "build/shannot"
local FILES = tonumber(arg[3]) or 10000

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local work = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/var/tmp") .. "/shannot-bench-"))
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

  -- 2. capturing a tree of small files
  local tree = work .. "/tree"
  assert(fs.mkdir_p(tree .. "/many"))
  for i = 1, FILES do assert(fs.write_atomic(string.format("%s/many/f%d", tree, i), "file " .. i .. "\n")) end
  local host = work .. "/host"
  assert(fs.mkdir(host))
  local copy, upper, blobs = work .. "/copy", work .. "/upper", work .. "/blobs"
  local rounds = math.max(5, N // 10)
  local m2 = compare({
    { prepare = function() fs.rmtree(copy) end,
      run = function() run({ "cp", "-a", tree, copy }) end },
    { prepare = function()
        fs.rmtree(upper); fs.rmtree(blobs)
        run({ "cp", "-a", tree, upper }); assert(fs.mkdir(blobs))
      end,
      run = function()
        local w = assert(shannot.capture.operations({ { target = host, upper = upper } }, blobs))
        local s = shannot.session.new({ id = "20260101-000000-bench-0000", operations = w.ops, counts = w.counts })
        assert(#shannot.json.encode(s, { indent = "  " }) > 0)
      end },
  }, rounds)

  local function row(label, a, b, target)
    print(string.format("%-50s %9.3f ms %9.3f ms  ratio %.2f (target <= %.2f)",
      label, a * 1000, b * 1000, a / b, target))
  end
  print(string.format("capture, medians (shannot vs baseline); %d and %d rounds", N, rounds))
  row(string.format("run -- true, %d overlays  vs  unshare+mount+bwrap", #st.overlays), m1[1], m1[2], 1.25)
  row(string.format("capture %d files          vs  cp -a", FILES), m2[2], m2[1], 2.0)
end)
fs.rmtree(work)
assert(ok, problem)
