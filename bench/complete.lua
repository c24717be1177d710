-- bench/complete: what shell completion of a session id costs with a
-- store of many sessions (1 000 by default), against `ls` of the store
-- directory (the floor: one process that lists the same names), measured
-- in the same run, interleaved:
--   1. `shannot __complete bash approve ""`: every id, each session's
--      status peeked (pending ones first)
--   2. `shannot __complete bash show ""`: every id, no status needed
--   3. `shannot --version`: the start-up alone, for context
-- The store is generated directly in a temporary XDG_DATA_HOME: sessions
-- of realistic sizes (most of a few operations, some of hundreds, a few of
-- thousands: 1 KiB to about 1 MiB of JSON), in every status.
-- Prints medians in ms and the ratios to ls.  Target: well under 50 ms.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local session = require("shannot.session")
package.path = "bench/?.lua;" .. package.path
local lib = require("lib")

local N = tonumber(arg[1]) or 40
local COUNT = tonumber(arg[2]) or 1000
local BIN = arg[3] or "build/shannot"

local base = assert(fs.mkdtemp("/tmp/shannot-bench-complete-"))
local data = base .. "/data"
local store = data .. "/shannot/sessions"
assert(fs.mkdir_p(store, 448))

local function operations(n)
  local ops = {}
  for i = 1, n do
    ops[i] = { id = i, kind = "write", path = string.format("/etc/app/conf.d/%05d.conf", i), decision = "review",
      danger = "safe", reason = "no rule matched",
      new = { type = "file", mode = 420, uid = 0, gid = 0, size = 120 + i, hash = string.format("%064x", i) },
      base = { exists = true, type = "file", mode = 420, uid = 0, gid = 0, size = 100, hash = string.rep("b", 64) } }
  end
  return ops
end

local statuses = session.STATUSES
local now = os.time()
local bytes = 0
for i = 1, COUNT do
  local n = (i % 100 == 0) and 3000 or (i % 10 == 0) and 200 or (i % 7 + 1)
  local t = now - (COUNT - i) * 60
  local id = session.new_id("bench", t)
  local s = session.new({ id = id, name = "bench", now = t, ttl = 10 * 365 * 86400,
    command = { "sh", "-c", "apt-get install -y thing" }, exit_code = 0, operations = operations(n) })
  s.status = statuses[i % #statuses + 1]
  s.history[#s.history + 1] = { at = s.created_at, status = s.status }
  local text = json.encode(s) .. "\n"
  bytes = bytes + #text
  assert(fs.mkdir_p(store .. "/" .. id .. "/blobs", 448))
  local f = assert(io.open(store .. "/" .. id .. "/session.json", "wb"))  -- no fsync: a bench store
  f:write(text)
  f:close()
end

local env = { "HOME=" .. base, "XDG_DATA_HOME=" .. data, "XDG_CONFIG_HOME=" .. base .. "/config",
  "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin") }

local function case(argv, check)
  return function()
    local r = assert(proc.run(argv, { env = env, stdin = "null", stderr = "pipe" }))
    assert(r.code == 0, table.concat(argv, " ") .. ": " .. (r.stderr or ""))
    if check then check(r.stdout) end
  end
end

local function ids_listed(out)
  local n = select(2, out:gsub("\n", "")) - 1
  assert(n == COUNT, "listed " .. n .. " ids, not " .. COUNT)
end

local t = lib.compare({
  case({ "ls", store }),
  case({ BIN, "__complete", "bash", "approve", "" }, ids_listed),
  case({ BIN, "__complete", "bash", "show", "" }, ids_listed),
  case({ BIN, "--version" }),
}, N)

fs.rmtree(base)
local function ms(x) return string.format("%6.2f ms", x * 1000) end
print(string.format("%d sessions, %.1f MiB of session.json; medians of %d runs", COUNT, bytes / 1048576, N))
print(string.format("  ls of the store (floor)          %s", ms(t[1])))
print(string.format("  __complete approve (statuses)    %s  %5.2fx ls", ms(t[2]), t[2] / t[1]))
print(string.format("  __complete show (ids only)       %s  %5.2fx ls", ms(t[3]), t[3] / t[1]))
print(string.format("  shannot --version (start-up)     %s  %5.2fx ls", ms(t[4]), t[4] / t[1]))
