-- Command patterns ([profile] auto_approve / always_deny) and the argv
-- normaliser they are matched against.  The earlier shannot matched the
-- first word (`ls; rm -rf ~` passed as "ls") or exact strings (`rm -fr /`
-- slipped past "rm -rf /"); here both sides are normalised the same way:
--
--   * wrappers go: sudo/doas (and their options), env [-i] [-u N] [VAR=x],
--     nice [-n N], nohup, ionice, stdbuf, time, command, exec, builtin;
--   * the command is its base name (/usr/bin/rm and \rm are rm);
--   * bundled short flags split and flags are sorted and de-duplicated
--     (-rf, -fr, -r -f and --recursive --force are all -f -r), operands
--     keep their order after the flags; "--" ends flags.
--
-- A pattern is words split on spaces.  Each word is a glob (fnmatch, "*"
-- never crossing "/") for
-- one normalised word; a last word "*" stands for any remaining operands.
--   approve (match_exact):  the flags must be the same set, the operands
--     must match one for one.  "ls *" is ls with anything; "date" is bare
--     date only (date -s sets the clock).
--   deny (match_contains):  the command's flags must include the
--     pattern's and every pattern operand must match some operand, so
--     extra flags or operands (rm -rfv /tmp /) do not dodge it.
local glob = require("shannot.glob")

local M = {}

-- Long options that mean a short flag, per command.
local LONG = {
  rm = { ["--recursive"] = "-r", ["--force"] = "-f", ["--dir"] = "-d" },
  cp = { ["--recursive"] = "-r", ["--force"] = "-f" },
  mv = { ["--force"] = "-f" },
  chmod = { ["--recursive"] = "-R" },
  chown = { ["--recursive"] = "-R" },
  chgrp = { ["--recursive"] = "-R" },
  shred = { ["--remove"] = "-u", ["--zero"] = "-z" },
}

-- Short flags that are the same thing, per command.
local SAME = { rm = { ["-R"] = "-r" }, cp = { ["-R"] = "-r" } }

-- wrapper -> set of its options that take a value
local WRAPPERS = {
  sudo = { ["-u"] = true, ["-g"] = true, ["-C"] = true, ["-D"] = true, ["-h"] = true,
    ["-p"] = true, ["-r"] = true, ["-t"] = true, ["-U"] = true, ["-T"] = true },
  doas = { ["-u"] = true, ["-C"] = true },
  env = { ["-u"] = true, ["-C"] = true, ["-S"] = true },
  nice = { ["-n"] = true },
  ionice = { ["-c"] = true, ["-n"] = true, ["-p"] = true },
  stdbuf = { ["-i"] = true, ["-o"] = true, ["-e"] = true },
  nohup = {}, time = {}, command = {}, exec = {}, builtin = {},
}

local function basename(word)
  word = word:gsub("^\\", "")
  return word:match("([^/]*)$")
end

-- Skips wrappers; returns the index of the real command in argv.
local function skip_wrappers(argv)
  local i = 1
  while argv[i] do
    local name = basename(argv[i])
    local takes_value = WRAPPERS[name]
    if not takes_value then return i end
    i = i + 1
    while argv[i] do
      local a = argv[i]
      if a == "--" then i = i + 1; break end
      if name == "env" and a:find("^[%a_][%w_]*=") then
        i = i + 1
      elseif a:sub(1, 1) == "-" and #a > 1 then
        i = i + ((takes_value[a] and 2) or 1)
      else
        break
      end
    end
  end
  return i
end

local function add_flag(flags, seen, flag)
  if not seen[flag] then
    seen[flag] = true
    flags[#flags + 1] = flag
  end
end

-- normalise(argv) -> {command, flags = {...}, operands = {...}}, or nil
-- for an empty command line.
function M.normalise(argv)
  local start = skip_wrappers(argv)
  if argv[start] == nil then return nil end
  local command = basename(argv[start])
  local long, same = LONG[command] or {}, SAME[command] or {}
  local flags, operands, seen = {}, {}, {}
  local only_operands = false
  for i = start + 1, #argv do
    local a = argv[i]
    if only_operands or a == "-" or a:sub(1, 1) ~= "-" then
      operands[#operands + 1] = a
    elseif a == "--" then
      only_operands = true
    elseif a:find("^%-%a+$") then  -- bundled short flags: -rf
      for c in a:sub(2):gmatch(".") do
        local f = "-" .. c
        add_flag(flags, seen, same[f] or f)
      end
    else
      add_flag(flags, seen, long[a] or a)
    end
  end
  table.sort(flags)
  return { command = command, flags = flags, operands = operands }
end

-- Splits a pattern into words (no quoting: a pattern is not shell code).
local function words(pattern)
  local out = {}
  for w in pattern:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- compile(pattern) -> compiled | nil, msg
function M.compile(pattern)
  if type(pattern) ~= "string" then return nil, "must be a string" end
  local w = words(pattern)
  if #w == 0 then return nil, "is empty" end
  local rest = false
  if #w > 1 and w[#w] == "*" then
    rest = true
    w[#w] = nil
  end
  local n = M.normalise(w)
  if not n then return nil, "names no command" end
  n.rest, n.text = rest, pattern
  return n
end

-- fnmatch with FNM_PATHNAME: in "rm -r /*", * stops at "/".
local function word_match(pattern, word)
  return glob.match(pattern, word)
end

-- match_exact(compiled, normalised) -> boolean.  A command line that
-- names no command (a bare `sudo` or `env`) matches nothing.
function M.match_exact(p, n)
  if n == nil then return false end
  if not word_match(p.command, n.command) then return false end
  if not p.rest then
    if #p.flags ~= #n.flags then return false end
    for i, f in ipairs(p.flags) do
      if not word_match(f, n.flags[i]) then return false end
    end
  end
  if #n.operands < #p.operands or (not p.rest and #n.operands ~= #p.operands) then
    return false
  end
  for i, o in ipairs(p.operands) do
    if not word_match(o, n.operands[i]) then return false end
  end
  return true
end

local function any_match(pattern, list)
  for _, w in ipairs(list) do
    if word_match(pattern, w) then return true end
  end
  return false
end

-- match_contains(compiled, normalised) -> boolean
function M.match_contains(p, n)
  if n == nil then return false end
  if not word_match(p.command, n.command) then return false end
  for _, f in ipairs(p.flags) do
    if not any_match(f, n.flags) then return false end
  end
  for _, o in ipairs(p.operands) do
    if not any_match(o, n.operands) then return false end
  end
  return true
end

return M
