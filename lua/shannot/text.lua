-- Wording helpers shared by every command: close-match suggestions for
-- misspelt names, and making untrusted strings safe to print.
local M = {}

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- suggest(word, candidates) -> the closest candidate, if close enough
function M.suggest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if not best_d or d < best_d or (d == best_d and c < best) then
      best, best_d = c, d
    end
  end
  if best and best_d <= math.max(2, #word // 3) then return best end
end

-- " (did you mean "x"?)" or ""
function M.did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  return s and string.format(' (did you mean "%s"?)', s) or ""
end

-- inert(s) -> s with every control character (escape sequences included)
-- shown as a visible \xNN, so nothing from a script can drive a terminal.
function M.inert(s)
  return (tostring(s):gsub("[%c\127]", function(c)
    if c == "\n" then return "\\n" end
    if c == "\t" then return "\\t" end
    return string.format("\\x%02x", c:byte())
  end))
end

-- quote(s) -> s as a POSIX shell word (for showing command lines)
function M.quote(s)
  if s ~= "" and not s:find("[^%w%%+,./:=@_%-]") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

function M.command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do words[i] = M.quote(M.inert(a)) end
  return table.concat(words, " ")
end

return M
