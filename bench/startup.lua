-- bench/startup: start-up cost of shannot against its floors, measured in
-- the same run with the same harness (fork, exec, wait), interleaved:
--   1. `shannot run --profile readonly -- true` vs bare bwrap with the
--      identical argument list
--   2. `shannot --version` vs `lua5.4 -e ''`
-- Prints medians and ratios.  Targets: <= 1.25 and <= 2.0.
-- It also times `timeout 0 bwrap ...` (coreutils: a small C program that
-- forks, execs and waits): the floor for any wrapper process, and
-- `shannot run --profile readonly -- true` must stay within 0.5 ms of it.
-- That run waits for bwrap, as every run does (it filters the output of
-- terminal control strings and names a limit the command ran into); the
-- last row is `run --exec`, which execs bwrap in place of itself.
local shannot = require("shannot")
local proc = shannot.proc
local sys = require("shannot.core.sys")
package.path = "bench/?.lua;" .. package.path
local median = require("lib").median

local N = tonumber(arg[1]) or 200
local BIN = arg[2] or "build/shannot"

-- A case is {argv, keep} or {prepare = function() -> argv, keep, files}
-- (made afresh, outside the timing: the seccomp filter's pipe is read once).
local function time_once(c)
  local argv, keep, files = c.argv, c.keep, nil
  if c.prepare then argv, keep, files = c.prepare() end
  local t0 = sys.monotonic()
  local r = assert(proc.run(argv, { stdout = "null", stderr = "pipe", stdin = "null", keep_fds = keep }))
  local dt = sys.monotonic() - t0
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. (r.stderr or "") .. proc.describe_end(r))
  for _, f in ipairs(files or {}) do f:close() end
  return dt
end

-- Runs each case N times, interleaved so drift hits them alike.
local function compare(cases)
  local samples = {}
  for i = 1, #cases do samples[i] = {} end
  for _ = 1, 5 do for _, c in ipairs(cases) do time_once(c) end end  -- warm up
  for _ = 1, N do
    for i, c in ipairs(cases) do samples[i][#samples[i] + 1] = time_once(c) end
  end
  local out = {}
  for i = 1, #cases do out[i] = median(samples[i]) end
  return out
end

-- The exact command line shannot runs for `run --profile readonly -- true`
-- (a plain sandbox; the capturing system profile is bench/capture's).
local p = assert(shannot.profile.load("readonly"))
local devnull <close> = assert(shannot.fs.open("/dev/null", "w"))

-- bwrap's argument list as shannot builds it, behind `prefix`.
local function bwrap_case(prefix)
  return function()
    local plan = assert(shannot.sandbox.prepare(p, { "true" }))
    plan.status_fd = devnull:fd()
    local line = shannot.bwrap.argv(p, plan, "local")
    local argv = table.move(prefix, 1, #prefix, 1, {})
    table.move(line, 1, #line, #argv + 1, argv)
    local keep = { devnull:fd() }
    for _, f in ipairs(plan.keep) do keep[#keep + 1] = f:fd() end
    return argv, keep, plan.keep
  end
end

local m1 = compare({
  { argv = { BIN, "run", "--profile", "readonly", "--", "true" } },
  { prepare = bwrap_case({}) },
  { prepare = bwrap_case({ "timeout", "0" }) },
  -- bwrap in shannot's place (no output filtering, no limit named)
  { argv = { BIN, "run", "--exec", "--profile", "readonly", "--", "true" } },
})
local m2 = compare({
  { argv = { BIN, "--version" } },
  { argv = { "lua5.4", "-e", "" } },
})

local function row(label, a, b, target)
  print(string.format("%-44s %8.3f ms  %8.3f ms  ratio %.2f (target <= %.2f)",
    label, a * 1000, b * 1000, a / b, target))
end
print(string.format("startup, median of %d runs each (shannot vs baseline)", N))
row("shannot run -- true  vs  bwrap (same args)", m1[1], m1[2], 1.25)
row("shannot --version    vs  lua5.4 -e ''", m2[1], m2[2], 2.0)
print(string.format("%-44s %8.3f ms  %8.3f ms  ratio %.2f (floor: any wrapper process)",
  "timeout 0 bwrap ...  vs  bwrap (same args)", m1[3] * 1000, m1[2] * 1000, m1[3] / m1[2]))
print(string.format("%-44s %+8.3f ms  (target <= +0.500 ms)", "shannot run -- true  minus  timeout 0 bwrap",
  (m1[1] - m1[3]) * 1000))
print(string.format("%-44s %+8.3f ms  (%.3f ms)", "shannot run --exec -- true  minus  timeout 0",
  (m1[4] - m1[3]) * 1000, m1[4] * 1000))
