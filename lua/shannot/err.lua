-- Expected failures as values: each carries the exit code it maps to, so
-- code below the CLI returns `nil, err` and only shannot.main prints.
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

return M
