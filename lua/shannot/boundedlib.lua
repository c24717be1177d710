-- The string and table libraries as untrusted code (policy files) gets them: the same
-- functions, but those whose work in C has no bound of its own refuse an
-- input whose worst case is too much.  The instruction-count hook that
-- bounds a rule never fires inside C, so a pattern such as ".-.-.-x"
-- over a long string would otherwise run for hours; the memory such work
-- takes is bounded by the allocator's cap (sys.heap_cap), not here.
local M = {}

-- Worst-case steps one call may take: Lua's matcher does roughly 3e8 of
-- these a second, so a refused call would have run over a third of one.
M.BUDGET = 100 * 1000 * 1000

-- shape(pat) -> number of items that can match a run of any length
-- (x*, x+, x-, %b, back references), anchored
local function shape(pat)
  local i, n, q = 1, #pat, 0
  local anchored = pat:sub(1, 1) == "^"
  if anchored then i = 2 end
  while i <= n do
    local c = pat:sub(i, i)
    local item_end
    if c == "%" then
      local d = pat:sub(i + 1, i + 1)
      if d == "b" then
        q, item_end = q + 1, i + 3
      elseif d == "f" then
        i = i + 2 -- the frontier's set follows as an item of its own
        goto continue
      elseif d:match("%d") then
        q, item_end = q + 1, i + 1
      else
        item_end = i + 1
      end
    elseif c == "[" then
      local j = i + 1
      if pat:sub(j, j) == "^" then j = j + 1 end
      if pat:sub(j, j) == "]" then j = j + 1 end
      while j <= n and pat:sub(j, j) ~= "]" do
        j = j + (pat:sub(j, j) == "%" and 2 or 1)
      end
      item_end = j
    elseif c == "(" or c == ")" then
      i = i + 1
      goto continue
    else
      item_end = i
    end
    do
      local op = pat:sub(item_end + 1, item_end + 1)
      if op == "*" or op == "+" or op == "-" then
        q = q + 1
        item_end = item_end + 1
      elseif op == "?" then
        item_end = item_end + 1
      end
    end
    i = item_end + 1
    ::continue::
  end
  return q, anchored
end

-- cost(n, pat, scan) -> worst-case steps of matching pat on n bytes; scan:
-- tried from every position (find, gsub, gmatch), unless anchored
function M.cost(n, pat, scan)
  local q, anchored = shape(pat)
  local steps = q == 0 and math.max(#pat, 1) or 1
  for i = 1, q do steps = steps * (n + i) / i end
  if scan and not anchored then steps = steps * (n + 1) end
  return steps
end

-- call(fn, ...) -> fn(...), its errors raised at the caller's line (a
-- wrapper's own line would mean nothing to the policy's author)
local function rethrow(ok, ...)
  if ok then return ... end
  local e = ...
  if e == "not enough memory" then error(e, 0) end
  error(e, 3)
end

local function call(fn, ...)
  return rethrow(pcall(fn, ...))
end

local function check(s, pat, scan, plain)
  if type(s) ~= "string" and type(s) ~= "number" then return end
  if type(pat) ~= "string" and type(pat) ~= "number" then return end
  s, pat = tostring(s), tostring(pat)
  local steps
  if plain then
    steps = #s * math.max(#pat, 1) / 100 -- memchr and memcmp, not the matcher
  else
    steps = M.cost(#s, pat, scan)
  end
  if steps > M.BUDGET then
    error(string.format("pattern %q is too costly on a string of %d bytes " ..
      "(up to %.0e steps; at most %.0e): anchor it (^) or use fewer of * + - %%b",
      #pat > 40 and pat:sub(1, 40) .. "..." or pat, #s, steps, M.BUDGET), 3)
  end
end

-- library(base) -> a copy of the string library with the bounds; base:
-- the real one
function M.library(base)
  local lib = {}
  for k, v in pairs(base) do lib[k] = v end
  function lib.find(s, pat, init, plain)
    check(s, pat, true, plain)
    return call(base.find, s, pat, init, plain)
  end
  function lib.match(s, pat, init)
    check(s, pat, true)
    return call(base.match, s, pat, init)
  end
  function lib.gmatch(s, pat, init)
    check(s, pat, true)
    return call(base.gmatch, s, pat, init)
  end
  function lib.gsub(s, pat, repl, n)
    check(s, pat, true)
    return call(base.gsub, s, pat, repl, n)
  end
  function lib.rep(s, n, sep)
    -- An empty result still loops n times in C.
    if type(n) == "number" and n > 0 and #tostring(s) == 0 and #tostring(sep or "") == 0 then
      return ""
    end
    return call(base.rep, s, n, sep)
  end
  return lib
end

-- The table library, with table.move's loop in Lua (counted by the hook):
-- in C it walks any range, present or not.
function M.table_library(base)
  local lib = {}
  for k, v in pairs(base) do lib[k] = v end
  function lib.move(a1, f, e, t, a2)
    a2 = a2 == nil and a1 or a2
    if e >= f then
      if t > e or t <= f or a1 ~= a2 then
        for i = 0, e - f do a2[t + i] = a1[f + i] end
      else
        for i = e - f, 0, -1 do a2[t + i] = a1[f + i] end
      end
    end
    return a2
  end
  return lib
end

return M
