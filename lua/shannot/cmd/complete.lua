-- shannot __complete SHELL WORD...: what the shell completions in
-- completions/ ask.  WORDS are the command line after "shannot" up to the
-- cursor, the last one the word being completed ("" for a new one).  The
-- answer: a first line "files" (the shell adds file names) or "words",
-- then one candidate a line, "VALUE<TAB>DESCRIPTION" for zsh and fish.
-- Everything is derived from what the commands declare (cli's list, each
-- command's usage lines and options table), so completion cannot drift
-- from them; only what a placeholder (ID, P, NAME, ...) or an option's
-- value stands for is said here.  It loads no more than an answer needs
-- and prints nothing at all when anything fails.
local cli = require("shannot.cli")
local const = require("shannot.const")

local M = {
  usage = "shannot __complete bash|zsh|fish WORD...",
  help = "The candidates for the last WORD (internal: asked by the shell completions).",
  options = {},
  stop_at_positional = true,
  needs_config = false,  -- a broken config must not say anything here
}

---------------------------------------------------------------------------
-- The commands' grammar, read from their usage lines
---------------------------------------------------------------------------

local function node()
  return { sub = {}, order = {}, slots = {} }
end

local function child(at, word)
  if not at.sub[word] then
    at.sub[word] = node()
    at.order[#at.order + 1] = word
  end
  return at.sub[word]
end

local function add_slot(at, k, token)
  at.slots[k] = at.slots[k] or {}
  for name in token:gsub("[%[%]]", ""):gsub("%.%.%.$", ""):gmatch("[^|]+") do
    at.slots[k][#at.slots[k] + 1] = name
  end
end

local function literal(word)
  return word:match("^[a-z][a-z0-9-]*$") ~= nil
end

-- One alternative of a usage line from `at` on: literals are subcommands
-- (until the first placeholder), placeholders fill the slots after them,
-- and an option ends it.  Returns the node that held the last literal's.
local function read_words(at, words)
  local parent, k = at, 0
  for _, w in ipairs(words) do
    if w:sub(1, 1) == "-" or w:sub(1, 1) == "'" then break end
    if k == 0 and literal(w) then
      parent, at = at, child(at, w)
    else
      k = k + 1
      add_slot(at, k, w)
    end
  end
  return parent
end

-- grammar(name, usage) -> the tree of a command's subcommands and
-- positional slots.  "a X | b Y" alternatives after a subcommand are its
-- siblings ("remote group add GROUP MEMBER... | list | remove GROUP").
function M.grammar(name, usage)
  local root = node()
  for line in (usage or ""):gmatch("[^\n]+") do
    line = line:gsub("%[%-[^%]]*%]%.*", "")  -- option groups: the options table says more
    local first = true
    local parent
    for part in (line .. " |"):gmatch("(.-)%s|%s*") do
      local words = {}
      for w in part:gmatch("%S+") do words[#words + 1] = w end
      if first then
        if words[1] ~= "shannot" or words[2] ~= name then break end
        parent = read_words(root, table.move(words, 3, #words, 1, {}))
        first = false
      elseif words[1] and literal(words[1]) then
        read_words(parent, words)
      end
    end
  end
  return root
end

---------------------------------------------------------------------------
-- Where the values come from
---------------------------------------------------------------------------

-- Sessions a command wants first (newest first within them); the rest
-- follow, newest first.
local PREFER = {
  approve = { pending = true }, execute = { approved = true }, deny = { pending = true, approved = true },
  revoke = { approved = true }, rollback = { executed = true, failed = true, approved = true },
  ["checkpoint show"] = { executed = true, failed = true, rolled_back = true },
}

local function sessions(ctx)
  local session = require("shannot.session")
  local prefer = PREFER[ctx.where]
  local first, rest = {}, {}
  for _, id in ipairs(session.ids()) do
    if id:sub(1, #ctx.prefix) == ctx.prefix then
      local status = (prefer or ctx.describe) and session.peek_status(id) or nil
      local entry = { id, status }
      if prefer and prefer[status] then first[#first + 1] = entry else rest[#rest + 1] = entry end
    end
  end
  return first, rest
end

local function runs()
  local out = {}
  for _, id in ipairs(require("shannot.fleet.runs").ids()) do out[#out + 1] = { id, "fleet run" } end
  return out
end

-- A broken config answers nothing at all (run() prints nothing): the
-- command itself will say what is wrong.
local function config_values()
  local cfg = require("shannot.config").load()
  if not cfg then error("no config", 0) end
  return cfg.values
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do
    if type(k) == "string" and not k:find("[%c%s]") and k:sub(1, 1) ~= "-" then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

local function remotes(values, out)
  for _, name in ipairs(sorted_keys(values.remotes)) do
    local r = values.remotes[name]
    out[#out + 1] = { name, type(r) == "table" and type(r.host) == "string" and r.host or "remote" }
  end
end

local function groups(values, out, at)
  for _, name in ipairs(sorted_keys(values.groups)) do out[#out + 1] = { (at or "") .. name, "group" } end
end

local function targets(kinds)
  local values, out = config_values(), {}
  if kinds.remotes then remotes(values, out) end
  if kinds.executors then
    for _, name in ipairs(sorted_keys(values.executor)) do
      if not (values.remotes or {})[name] then out[#out + 1] = { name, "executor" } end
    end
  end
  if kinds.groups then groups(values, out, kinds.at) end
  return out
end

local function profiles()
  local out = {}
  for _, name in ipairs(require("shannot.sandbox.profile").available()) do out[#out + 1] = { name, "profile" } end
  return out
end

local function commands()
  local out = {}
  for _, c in ipairs(cli.commands()) do out[#out + 1] = { c[1], c[2] } end
  return out
end

local function statuses()
  local out = {}
  for _, st in ipairs(require("shannot.session").STATUSES) do out[#out + 1] = { st } end
  return out
end

local FILES = { files = true }

-- What a positional placeholder of a usage line stands for:
-- fn(ctx) -> candidates [, more candidates] | FILES
M.PLACEHOLDERS = {
  ID = sessions, RUN = runs, P = profiles, COMMAND = commands,
  FILE = function() return FILES end, SCRIPT = function() return FILES end,
  NAME = function(ctx)
    if ctx.where == "remote add" then return {} end  -- a new name
    return targets({ remotes = true })
  end,
  GROUP = function() return targets({ groups = true }) end,
  MEMBER = function() return targets({ remotes = true, groups = true, at = "@" }) end,
}
-- Placeholders that take anything (no candidates).
M.FREE = { ARGS = true, JOBFILE = true, ["USER@HOST:PORT"] = true, WORD = true, CMD = true }

-- What an option's value stands for, by the option's name.
M.OPTION_VALUES = {
  ["--profile"] = function(ctx)
    if ctx.command == "remote" then return profiles() end
    return profiles(), FILES
  end,
  ["--target"] = function() return targets({ remotes = true, executors = true, groups = true, at = "@" }) end,
  ["--status"] = statuses,
  ["--session"] = sessions,
  ["--key"] = function() return FILES end,
  ["--inventory"] = function() return FILES end,
  ["--hide"] = function() return FILES end,
  ["--interpreter"] = function() return FILES end,
}
-- Options whose value is free text or a number.
M.FREE_OPTIONS = {
  ["-c"] = true, ["--timeout"] = true, ["--max-output"] = true, ["--reason"] = true, ["--why"] = true,
  ["--forks"] = true, ["--serial"] = true, ["--max-fail"] = true, ["--limit"] = true, ["--variant"] = true,
}

-- Values an option's usage lists itself: "[--client a|b|c]".
function M.listed_values(usage, option)
  local list = usage:match("%[" .. option:gsub("%-", "%%-") .. " ([%w|-]+)%]")
  if not list or not list:find("|", 1, true) then return nil end
  local out = {}
  for v in list:gmatch("[^|]+") do out[#out + 1] = { v } end
  return out
end

-- The line of a command's help that describes an option, as its summary.
local function option_summary(help, option)
  for line in (help or ""):gmatch("[^\n]+") do
    local rest = line:match("^%s+" .. option:gsub("%-", "%%-") .. "%s(.*)$")
    if rest then
      return (rest:gsub("^%u[%u%d_]*%s+", ""):gsub("^%s+", ""))
    end
  end
end

---------------------------------------------------------------------------
-- The answer
---------------------------------------------------------------------------

-- Where the words leave the cursor: {node, k (the slot), value_of (an
-- option whose value is being typed), after_dashdash, in_args}.
local function locate(cmd, root, words)
  local options, at, k, path = cmd.options or {}, root, 0, {}
  local state = {}
  local i = 2
  while i < #words do
    local w = words[i]
    if state.dashdash or state.args then
      k = k + 1
    elseif w == "--" then
      state.dashdash = true
    elseif w:sub(1, 1) == "-" and w ~= "-" then
      local o = options[w]
      if o and o.arg then
        if i + 1 == #words then state.value_of = w end
        i = i + 1
      end
    elseif k == 0 and at.sub[w] then
      at = at.sub[w]
      path[#path + 1] = w
    else
      k = k + 1
      if cmd.stop_at_positional then state.args = true end
    end
    i = i + 1
  end
  state.node, state.k, state.path = at, k, path
  return state
end

local function option_names(cmd, out)
  local names = {}
  for name in pairs(cmd.options or {}) do names[#names + 1] = name end
  names[#names + 1] = "--help"
  table.sort(names)
  for _, name in ipairs(names) do out[#out + 1] = { name, option_summary(cmd.help, name) } end
end

-- Adds what fn answered to out; files: whether the shell adds file names.
local function gather(out, ...)
  local files = false
  for i = 1, select("#", ...) do
    local list = select(i, ...)
    if list == FILES then
      files = true
    elseif type(list) == "table" then
      table.move(list, 1, #list, #out + 1, out)
    end
  end
  return files
end

local function value_candidates(cmd, ctx, option, out)
  local fn = M.OPTION_VALUES[option]
  if fn then return gather(out, fn(ctx)) end
  return gather(out, M.listed_values(cmd.usage or "", option))
end

local function positional_candidates(ctx, state, out)
  local files = false
  if state.k == 0 then
    for _, w in ipairs(state.node.order) do out[#out + 1] = { w } end
  end
  local seen = {}
  for _, name in ipairs(state.node.slots[state.k + 1] or {}) do
    local fn = M.PLACEHOLDERS[name]
    if fn and not seen[fn] then
      seen[fn] = true
      local first, rest = fn(ctx)
      if fn == sessions then
        ctx.rest = rest  -- the sessions not preferred go after everything else
        files = gather(out, first) or files
      else
        files = gather(out, first, rest) or files
      end
    end
  end
  if ctx.rest then gather(out, ctx.rest) end
  return files
end

-- candidates(words, describe) -> list of {value, description?}, files
function M.candidates(words, describe)
  local cur = words[#words] or ""
  local out = {}
  local ctx = { prefix = cur, describe = describe }
  if #words <= 1 then
    if cur:sub(1, 1) == "-" then return { { "--help" }, { "--version" } }, false end
    return commands(), false
  end
  local name = words[1]
  if name == "help" then return #words == 2 and commands() or {}, false end
  local cmd = cli.command(name)
  if not cmd then return {}, false end
  local state = locate(cmd, M.grammar(name, cmd.usage), words)
  ctx.command = name
  ctx.where = table.concat({ name, table.unpack(state.path) }, " ")
  if state.value_of then
    return out, value_candidates(cmd, ctx, state.value_of, out)
  end
  local opt, value = cur:match("^(%-%-[^=]+)=(.*)$")
  if opt and not state.dashdash and not state.args then
    ctx.prefix = value
    local files = value_candidates(cmd, ctx, opt, out)
    for _, c in ipairs(out) do c[1] = opt .. "=" .. c[1] end
    return out, files
  end
  if cur:sub(1, 1) == "-" and not state.dashdash and not state.args then
    option_names(cmd, out)
    return out, false
  end
  if state.dashdash or state.args then return out, cmd.stop_at_positional == true end
  return out, positional_candidates(ctx, state, out)
end

local function clean(s)
  return (tostring(s):gsub("[%c]", " "))
end

-- answer(shell, words) -> the text to print
function M.answer(shell, words)
  local describe = shell ~= "bash"
  local list, files = M.candidates(words, describe)
  local cur = words[#words] or ""
  local lines = { files and "files" or "words" }
  local seen = {}
  for _, c in ipairs(list) do
    local value = c[1]
    if type(value) == "string" and not value:find("[%c]") and value:sub(1, #cur) == cur and not seen[value] then
      seen[value] = true
      lines[#lines + 1] = (describe and c[2]) and (value .. "\t" .. clean(c[2])) or value
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

function M.run(_, args)
  local shell = args[1]
  if shell ~= "bash" and shell ~= "zsh" and shell ~= "fish" then return 1 end
  local words = table.move(args, 2, #args, 1, {})
  if #words == 0 then words[1] = "" end
  local ok, text = pcall(M.answer, shell, words)
  if not ok then return 1 end
  io.stdout:write(text)
  return const.EXIT.OK
end

return M
