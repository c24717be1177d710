-- Expected failures as values: each carries the exit code it maps to (and
-- may carry a code), so code below the CLI returns `nil, err` and only
-- shannot.main prints.  STYLE 32: the one error shape above the wrappers,
-- and the one throw/catch pair (throw, try).
local const = require("shannot.const")

local M = {}

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

local function make(exit)
  return function(fmt, ...)
    local message = select("#", ...) > 0 and string.format(fmt, ...) or fmt
    return setmetatable({ exit = exit, message = message }, Error)
  end
end

M.failed = make(const.EXIT.FAILED)
M.usage = make(const.EXIT.USAGE)
M.refused = make(const.EXIT.REFUSED)
M.env = make(const.EXIT.ENV)

function M.is(value)
  return getmetatable(value) == Error
end

-- with_code(e, code) -> e, carrying a short machine name too ("ELOOP",
-- "refused"): what callers may branch on, never the message text
function M.with_code(e, code)
  e.code = code
  return e
end

-- throw(e): unwinds to the nearest err.try with the err object e.  Only
-- where unwinding saves threading `nil, err` through a deep walk.
function M.throw(e)
  assert(M.is(e), "err.throw takes an err object")
  error(e, 0)
end

-- try(fn, ...) -> fn's results | nil, err: an err object thrown inside
-- becomes the return value; anything else is a bug and goes on up.
local function tried(ok, ...)
  if ok then return ... end
  local e = ...
  if M.is(e) then return nil, e end
  error(e, 0)
end

function M.try(fn, ...)
  -- (no table for the results: execute tries every operation)
  return tried(pcall(fn, ...))
end

return M
