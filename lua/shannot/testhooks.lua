-- The only reader of SHANNOT_TEST_* variables: the hooks specs use to
-- cut a run where a real failure would (a kill -9 after step N of an
-- execute, a command run between two steps, another system's name).
-- Nothing here changes what shannot does unless a spec sets them.
local M = {}

-- stepper() -> a function execute calls after each step: it runs the
-- command SHANNOT_TEST_RUN_AFTER="N:COMMAND" names after step N, and ends
-- the process as a kill -9 would after step SHANNOT_TEST_FAULT_AFTER.
function M.stepper()
  local stop_after = math.tointeger(tonumber(os.getenv("SHANNOT_TEST_FAULT_AFTER") or ""))
  local run_at, run_cmd = (os.getenv("SHANNOT_TEST_RUN_AFTER") or ""):match("^(%d+):(.+)$")
  run_at = math.tointeger(tonumber(run_at or ""))
  local n = 0
  return function()
    n = n + 1
    if run_at == n then os.execute(run_cmd) end
    -- Why os.exit(_, false): no close handler or finalizer may tidy up,
    -- as after a kill -9.
    if stop_after and n >= stop_after then os.exit(137, false) end
  end
end

-- progress_delay() -> seconds before a progress line is first drawn, as
-- a spec sets it (SHANNOT_TEST_PROGRESS_DELAY: a fast disk ends a 1 GiB
-- execute within two seconds), or nil
function M.progress_delay()
  return tonumber(os.getenv("SHANNOT_TEST_PROGRESS_DELAY") or "")
end

-- sysname(real) -> the system's name as a spec pretends it (SHANNOT_TEST_SYSNAME), or real
function M.sysname(real)
  return os.getenv("SHANNOT_TEST_SYSNAME") or real
end

return M
