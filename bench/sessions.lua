-- bench/sessions: listing a large store.  10 000 sessions (by default) of
-- 1 000 operations each, generated directly in a temporary XDG_DATA_HOME
-- (their operations.jsonl one file hard-linked into every session: 3 GB
-- of identical lists would only measure the disk), in every status;
-- against `ls -l` of the store directory (the floor: one process that
-- lists and stats the same entries), measured in the same run,
-- interleaved:
--   1. `shannot sessions`: every session's header read, checked, listed
--   2. `shannot sessions --json`
--   3. `shannot prune` of a store where nothing is due (every header read)
-- Prints medians in ms and the ratios to ls -l.  Target: sessions <= 3x.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local session = require("shannot.session")
package.path = "bench/?.lua;" .. package.path
local lib = require("lib")

local N = tonumber(arg[1]) or 10
local COUNT = tonumber(arg[2]) or 10000
local OPS = tonumber(arg[3]) or 1000
local BIN = arg[4] or "build/shannot"

local base = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/var/tmp") .. "/shannot-bench-sessions-"))
local ok, problem = pcall(function()
  local data = base .. "/data"
  local store = data .. "/shannot/sessions"
  assert(fs.mkdir_p(store, 448))
  local lines = {}
  for i = 1, OPS do
    lines[i] = session.encode_operation({ id = i, kind = "write", path = string.format("/etc/app/conf.d/%05d.conf", i),
      decision = "review", danger = "safe", reason = "no rule matched",
      new = { type = "file", mode = 420, uid = 0, gid = 0, size = 120 + i, hash = string.format("%064x", i) },
      base = { exists = true, type = "file", mode = 420, uid = 0, gid = 0, size = 100, hash = string.rep("b", 64) } })
  end
  local ops_file = base .. "/operations.jsonl"
  assert(fs.write_atomic(ops_file, table.concat(lines, "\n") .. "\n"))
  -- pending and approved ones expire far in the future; none is due for prune
  local statuses = { "pending", "approved", "rejected", "executed", "failed", "rolled_back" }
  local now = os.time()
  local header_bytes = 0
  for i = 1, COUNT do
    local t = now - (COUNT - i)
    local id = session.new_id("bench", t)
    local s = session.new({ id = id, name = "bench", now = t, ttl = 10 * 365 * 86400,
      command = { "sh", "-c", "apt-get install -y thing" }, exit_code = 0, counts = { write = OPS } })
    s.operations, s.results = nil, nil
    s.operation_count, s.worst_danger = OPS, "safe"
    s.status = statuses[i % #statuses + 1]
    s.history[#s.history + 1] = { at = s.created_at, status = s.status }
    local text = json.encode(s) .. "\n"
    header_bytes = header_bytes + #text
    local dir = store .. "/" .. id
    assert(fs.mkdir(dir, 448))
    assert(fs.link(ops_file, dir .. "/operations.jsonl"))
    local f = assert(io.open(dir .. "/session.json", "wb"))  -- no fsync: a bench store
    f:write(text)
    f:close()
  end

  local env = { "HOME=" .. base, "XDG_DATA_HOME=" .. data, "XDG_CONFIG_HOME=" .. base .. "/config",
    "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin") }
  local function case(argv, check)
    return function()
      local r = assert(proc.run(argv, { env = env, stdin = "null", stderr = "pipe", stdout = "pipe",
        max_capture = 256 * 1024 * 1024 }))
      assert(r.code == 0, table.concat(argv, " ") .. ": " .. (r.stderr or ""))
      if check then check(r.stdout) end
    end
  end
  local function listed(out)
    local n = select(2, out:gsub("\n%d%d%d%d%d%d%d%d%-", ""))
    assert(n == COUNT, "listed " .. n .. " sessions, not " .. COUNT)
  end
  local t = lib.compare({
    case({ "ls", "-l", store }),
    case({ BIN, "sessions" }, listed),
    case({ BIN, "sessions", "--json" }),
    case({ BIN, "prune" }),
  }, N, 2)
  local function ms(x) return string.format("%8.1f ms", x * 1000) end
  print(string.format("%d sessions of %d operations each (%.1f MiB of headers); medians of %d runs", COUNT, OPS,
    header_bytes / 1048576, N))
  print(string.format("  ls -l of the store (floor)        %s", ms(t[1])))
  print(string.format("  shannot sessions                  %s  %5.2fx ls -l (target <= 3)", ms(t[2]), t[2] / t[1]))
  print(string.format("  shannot sessions --json           %s  %5.2fx ls -l", ms(t[3]), t[3] / t[1]))
  print(string.format("  shannot prune (nothing due)       %s  %5.2fx ls -l", ms(t[4]), t[4] / t[1]))
end)
fs.rmtree(base)
assert(ok, problem)
