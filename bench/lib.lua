-- What the benchmarks share: medians, running a command that must
-- succeed, and interleaved comparisons (so drift hits every case alike).
local proc = require("shannot.proc")
local sys = require("shannot.core.sys")

local M = {}

function M.median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) // 2] end
  return (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- run(argv [, opts]) -> result of a command that must exit 0
function M.run(argv, opts)
  local r = assert(proc.run(argv, opts or { stdout = "null", stderr = "pipe", stdin = "null" }))
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. (r.stderr or "") .. proc.describe_end(r))
  return r
end

-- compare(cases, n [, warmup [, settle]]) -> the median seconds of each
-- case, run n times interleaved after `warmup` untimed rounds (default 3).
-- A case is a function, or {run = fn, prepare = fn (untimed)}.  settle:
-- the file systems synced (untimed) before each case, so that no case's
-- sync pays for what the one before left to write back (a floor's
-- clean-up of 100 files, say).
function M.compare(cases, n, warmup, settle)
  warmup = warmup or 3
  local samples = {}
  for i = 1, #cases do samples[i] = {} end
  for round = 1, n + warmup do
    for i, c in ipairs(cases) do
      local fn = type(c) == "function" and c or c.run
      if type(c) == "table" and c.prepare then c.prepare() end
      if settle then M.run({ "sync" }) end
      local t0 = sys.monotonic()
      fn()
      local dt = sys.monotonic() - t0
      if round > warmup then samples[i][#samples[i] + 1] = dt end
    end
  end
  local out = {}
  for i = 1, #cases do out[i] = M.median(samples[i]) end
  return out
end

return M
