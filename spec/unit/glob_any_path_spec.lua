-- glob.any_path (capture's [capture] ignore, tried on every path walked):
-- a glob is tried only on a path holding its longest plain text, which
-- must find exactly what a loop of match_path over the list finds, for
-- globs of every shape ("**/", "/**/", classes, ?) and random paths.
-- And diff.is_binary's fast path (magic numbers by first byte, no count
-- of control bytes where there is none) against the rule as it was.
local diff = require("shannot.diff")
local glob = require("shannot.glob")
local h = require("support.h")

local function any_loop(list, path)
  for _, g in ipairs(list) do
    if glob.match_path(g, path) then return true end
  end
  return false
end

local PARTS = { "var", "log", "**", "*", "?og", "[lv]og", "__pycache__", "a", "*.pyc", "cache", "x[!a]", "[", "]" }
local NAMES = { "var", "log", "a", "__pycache__", "x.pyc", "cache", "xb", "xa", "[", "]", "" }

local function random_glob(rng)
  local parts = {}
  for i = 1, rng(1, 5) do parts[i] = PARTS[rng(1, #PARTS)] end
  local g = table.concat(parts, "/")
  if rng(1, 4) ~= 1 then g = "/" .. g end
  return g
end

local function random_path(rng)
  local parts = {}
  for i = 1, rng(0, 6) do parts[i] = NAMES[rng(1, #NAMES)] end
  return "/" .. table.concat(parts, "/")
end

-- diff.is_binary as it was before its fast path
local MAGIC = { "\127ELF", "\31\139", "PK\3\4", "\137PNG", "\253" .. "7zXZ", "BZh91", "\40\181\47\253",
  "!<arch>\n", "SQLite format 3\0", "\255\216\255", "GIF8", "%PDF-" }
local function was_binary(s)
  local head = s:sub(1, 8192)
  for _, m in ipairs(MAGIC) do
    if head:sub(1, #m) == m then return true end
  end
  local _, controls = head:gsub("[%z\1-\7\14-\26\28-\31\127]", "")
  return controls > 2 and controls * 20 > #head
end

describe("glob.any_path", function()
  it("matches what a loop of match_path over the list matches", function()
    local rng, seed = h.seeded()
    for _ = 1, 300 do
      local list = {}
      for i = 1, rng(0, 6) do list[i] = random_glob(rng) end
      local any = glob.any_path(list)
      for _ = 1, 60 do
        local path = random_path(rng)
        if any(path) ~= any_loop(list, path) then
          error(string.format("seed %d: %s against {%s}: %s", seed, path, table.concat(list, ", "),
            tostring(any(path))))
        end
      end
    end
  end)

  it("leaves out what the default [capture] ignore names, and nothing else", function()
    local any = glob.any_path(require("shannot.config").DEFAULT_CAPTURE_IGNORE)
    assert.is_true(any("/var/log/syslog"))
    assert.is_true(any("/usr/lib/python3/__pycache__/x.pyc"))
    assert.is_true(any("/__pycache__/x"))
    assert.is_false(any("/var/log"))
    assert.is_false(any("/opt/app/f1"))
  end)
end)

describe("diff.is_binary", function()
  it("says what the rule without its fast path says, for random heads", function()
    local rng, seed = h.seeded()
    local pieces = { "text ", "\n", "\0", "\1\2\3", "\27[1m", "\127ELF", "PK\3\4", "%PDF-", "GIF8", "\255\216\255",
      "\31\139", "x", string.rep("y", 3000) }
    for _ = 1, 3000 do
      local parts = {}
      for i = 1, rng(0, 12) do parts[i] = pieces[rng(1, #pieces)] end
      local s = table.concat(parts)
      if diff.is_binary(s) ~= was_binary(s) then
        error(string.format("seed %d: %q", seed, s:sub(1, 80)))
      end
    end
  end)
end)
