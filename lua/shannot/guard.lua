-- guard(fn) -> a to-be-closed value that calls fn once, on close() or at
-- the end of its scope, whichever comes first: the one form of a cleanup
-- bound to a scope (`local _ <close> = guard(function() ... end)`), or
-- until what it cleans up is handed on (cancel()).
local Guard = {}
Guard.__index = Guard

function Guard:close()
  local fn = self.fn
  self.fn = nil
  if fn then fn() end
end

-- cancel(): the cleanup is no longer ours to do (ownership went on)
function Guard:cancel()
  self.fn = nil
end

Guard.__close = Guard.close

return function(fn)
  return setmetatable({ fn = fn }, Guard)
end
