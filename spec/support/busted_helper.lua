-- Loaded by busted before the specs: counts results and prints the closing
-- "N passed, N failed" line, so a run that executed no test is visible.
local busted = require("busted")

local counts = { success = 0, failure = 0, error = 0, pending = 0 }

busted.subscribe({ "test", "end" }, function(_, _, status)
  counts[status] = (counts[status] or 0) + 1
  return nil, true
end)

-- Errors outside any test (a spec file that fails to load, a failing
-- describe block) end no test, so count them here.
for _, where in ipairs({ "file", "describe" }) do
  busted.subscribe({ "error", where }, function()
    counts.error = counts.error + 1
    return nil, true
  end)
end

-- Nor does a failing hook (before_each, setup, ...): its tests never ran.
local HOOKS = { before_each = true, after_each = true, setup = true, teardown = true, lazy_setup = true,
  lazy_teardown = true, strict_setup = true, strict_teardown = true }
busted.subscribe({ "error" }, function(element)
  if type(element) == "table" and HOOKS[element.descriptor] then counts.error = counts.error + 1 end
  return nil, true
end)

busted.subscribe({ "suite", "end" }, function()
  io.stdout:write(string.format("\n%d passed, %d failed, %d skipped\n",
    counts.success, counts.failure + counts.error, counts.pending))
  io.stdout:flush()
  return nil, true
end)
