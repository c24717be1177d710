-- The interactive Lua prompt (`shannot repl`): an environment with the
-- shannot API, the line editor (shannot.ui.lineedit) with history and
-- completion, multi-line input, and a pretty-printer for results.
-- Without a terminal it reads plain lines and prints results.
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local lineedit = require("shannot.ui.lineedit")
local paths = require("shannot.paths")
local sys = require("shannot.core.sys")
local term = require("shannot.term")
local text = require("shannot.text")

local M = {}

local IN, OUT = 0, 1
M.PROMPT, M.MORE = "> ", "..> "
M.HISTORY_MAX = 1000              -- entries kept
M.HISTORY_MAX_BYTES = 1024 * 1024 -- a larger history file is not read
local SIGTERM = 15

---------------------------------------------------------------------------
-- Pretty-printing
---------------------------------------------------------------------------

M.WIDTH = 78        -- a table that fits in this many columns is one line
M.MAX_ITEMS = 50    -- items shown of one table
M.MAX_DEPTH = 8     -- tables nested deeper show as {...}
M.MAX_NODES = 2000  -- values shown in all: a huge structure stays readable
M.MAX_STRING = 200  -- bytes shown of a string inside a table
M.MAX_TOP_STRING = 64 * 1024

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local
  nil not or repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function is_name(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

-- quote(s, max) -> s as an inert, double-quoted one-line literal, cut to max bytes
local function quote(s, max)
  local more = ""
  if #s > max then
    local cut = max
    while cut > 0 and (s:byte(cut + 1) or 0) & 0xc0 == 0x80 do cut = cut - 1 end
    more = string.format("...(%d more bytes)", #s - cut)
    s = s:sub(1, cut)
  end
  return '"' .. text.inert((s:gsub("\\", "\\\\"))):gsub('"', '\\"') .. '"' .. more
end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and text.inert(s) or ("<" .. type(v) .. ">")
end

local TYPE_RANK = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_RANK[ta] or 4) < (TYPE_RANK[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  return safe_tostring(a) < safe_tostring(b)
end

-- The keys of t (its __pairs honoured): the array part 1..n, the rest sorted.
local function table_keys(t)
  local keys, seen = {}, 0
  local ok = pcall(function()
    for k in pairs(t) do
      keys[#keys + 1] = k
      seen = seen + 1
      if seen > 100000 then break end
    end
  end)
  if not ok then return nil end
  local present = {}
  for _, k in ipairs(keys) do present[k] = true end
  local n = 0
  while present[n + 1] do n = n + 1 end
  local rest = {}
  for _, k in ipairs(keys) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then rest[#rest + 1] = k end
  end
  table.sort(rest, key_less)
  return n, rest
end

local render

local function render_table(t, indent, st)
  if st.path[t] then return "<cycle>" end
  if st.depth >= M.MAX_DEPTH or st.nodes >= M.MAX_NODES then return "{...}" end
  local n, rest = table_keys(t)
  if not n then return "<" .. safe_tostring(t) .. ": pairs failed>" end
  st.path[t], st.depth = true, st.depth + 1
  local items, total = {}, n + #rest
  local function value_of(k)
    local ok, v = pcall(function() return t[k] end)
    return ok and v or nil
  end
  local function add(item)
    if #items >= M.MAX_ITEMS or st.nodes >= M.MAX_NODES then return false end
    items[#items + 1] = item
    return true
  end
  local shown = 0
  for i = 1, n do
    if not add(render(value_of(i), indent + 2, st)) then break end
    shown = shown + 1
  end
  local array_shown = shown
  for _, k in ipairs(shown == n and rest or {}) do
    local key = is_name(k) and k or ("[" .. (type(k) == "string" and quote(k, M.MAX_STRING) or safe_tostring(k)) .. "]")
    if not add(key .. " = " .. render(value_of(k), indent + 2, st)) then break end
    shown = shown + 1
  end
  st.path[t], st.depth = nil, st.depth - 1
  if shown < total then items[#items + 1] = string.format("...(%d more)", total - shown) end
  if #items == 0 then return "{}" end
  local one = "{ " .. table.concat(items, ", ") .. " }"
  if not one:find("\n", 1, true) and indent + #one <= M.WIDTH then return one end
  -- One item a line, but one-line values of the array part packed.
  local pad = string.rep(" ", indent + 2)
  local lines, cur = {}, nil
  for i, item in ipairs(items) do
    local packable = i <= array_shown and not item:find("\n", 1, true)
    if cur and packable and #cur + 2 + #item <= M.WIDTH then
      cur = cur .. ", " .. item
    else
      if cur then lines[#lines + 1] = cur end
      cur = pad .. item
      if not packable then
        lines[#lines + 1] = cur
        cur = nil
      end
    end
  end
  if cur then lines[#lines + 1] = cur end
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. string.rep(" ", indent) .. "}"
end

function render(v, indent, st)
  st.nodes = st.nodes + 1
  local tv = type(v)
  if tv == "string" then return quote(v, st.depth == 0 and M.MAX_TOP_STRING or M.MAX_STRING) end
  if tv == "table" then return render_table(v, indent, st) end
  if tv == "number" or tv == "boolean" or tv == "nil" then return tostring(v) end
  return safe_tostring(v)
end

-- pretty(v) -> v as text: nested tables indented with their keys sorted,
-- cycles as <cycle>, strings quoted and inert, big tables cut short.
function M.pretty(v)
  return render(v, 0, { path = {}, depth = 0, nodes = 0 })
end

-- show(...) -> the values separated by tabs, as the prompt prints results
local function show(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = M.pretty((select(i, ...))) end
  return table.concat(out, "\t")
end

---------------------------------------------------------------------------
-- Compiling and running what was typed
---------------------------------------------------------------------------

-- compile(lines, env) -> chunk | "incomplete" | nil, message.  An
-- expression prints its value (tried with "return " first, as lua.c does;
-- "=expr" is the old spelling).
function M.compile(lines, env)
  local src = table.concat(lines, "\n")
  if #lines == 1 then
    local expr = src:match("^%s*=(.*)$") or src
    local chunk = load("return " .. expr, "=stdin", "t", env)
    if chunk then return chunk end
  end
  local chunk, msg = load(src, "=stdin", "t", env)
  if chunk then return chunk end
  if msg:sub(-5) == "<eof>" then return "incomplete" end
  return nil, msg
end

local function error_message(e)
  if err.is(e) then return e.message end
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if type(mt) == "table" and mt.__tostring then return safe_tostring(e) end
  return string.format("(error object is a %s value)", type(e))
end

local function is_interrupt(e)
  return type(e) == "string" and e:find("interrupted$") ~= nil and sys.interrupted() ~= nil
end

-- The host's interrupt flag stays set once a signal came (main.lua turns
-- it into exit code 128+N); the prompt handles a Ctrl-C and carries on.
local function clear_interrupt()
  sys.clear_interrupt()
end

-- run_chunk(chunk) -> true, text of the results | false, one-line message
function M.run_chunk(chunk)
  local res = table.pack(xpcall(chunk, function(e)
    if is_interrupt(e) then return "interrupted" end
    return error_message(e)
  end))
  if not res[1] then return false, text.inert(res[2]) end
  return true, show(table.unpack(res, 2, res.n))
end

-- environment(opts) -> the standard globals, shannot, config, target, p
function M.environment(opts)
  local env = {}
  for k, v in pairs(_G) do env[k] = v end
  env._G = env
  env.shannot = require("shannot")
  env.config = opts.config
  env.target = opts.target
  env.p = function(...)
    for i = 1, select("#", ...) do io.stdout:write(M.pretty((select(i, ...))), "\n") end
    io.stdout:flush()
  end
  return env
end

---------------------------------------------------------------------------
-- Completion
---------------------------------------------------------------------------

local function index(v, k)
  local ok, r = pcall(function() return v[k] end)
  if ok then return r end
end

-- The names v offers after "." or ":": its string keys, those of its
-- metatable's __index table (methods), the string library for a string,
-- and the lazily loaded modules of the shannot table.
local function members(v, out)
  out = out or {}
  local tv = type(v)
  if tv == "string" then return members(string, out) end
  if tv == "table" then
    pcall(function()
      for k in pairs(v) do
        if is_name(k) then out[k] = true end
      end
    end)
    local mods = rawget(v, "modules")
    if v == package.loaded.shannot and type(mods) == "table" then
      for _, k in ipairs(mods) do out[k] = true end
    end
  end
  if tv == "table" or tv == "userdata" then
    local mt = getmetatable(v)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) == "table" and idx ~= v then
      for k in pairs(idx) do
        if is_name(k) then out[k] = true end
      end
    end
  end
  return out
end

-- complete(before, env) -> candidates (sorted), the partial word they
-- complete; before is the line up to the cursor.  The identifier chain
-- ending there ("shannot.session.l") is resolved in env.
function M.complete(before, env)
  local chain = before:match("[%w_%.:]*$")
  if chain == "" or not chain:match("^[%a_]") then return {}, chain end
  local parts, seps, pos = {}, {}, 1
  repeat
    local part, sep, nxt = chain:match("^([^%.:]*)([%.:]?)()", pos)
    parts[#parts + 1], seps[#seps + 1], pos = part, sep, nxt
  until sep == ""
  local partial = parts[#parts]
  local names
  if #parts == 1 then
    names = members(env)
    for k in pairs(KEYWORDS) do names[k] = true end
  else
    local v = env
    for i = 1, #parts - 1 do
      if not is_name(parts[i]) or (seps[i] == ":" and i < #parts - 1) then return {}, partial end
      v = index(v, parts[i])
      if v == nil then return {}, partial end
    end
    names = members(v)
  end
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #partial) == partial then out[#out + 1] = k end
  end
  table.sort(out)
  return out, partial
end

---------------------------------------------------------------------------
-- History: one entry a line in $XDG_DATA_HOME/shannot/repl_history
---------------------------------------------------------------------------

local History = {}
History.__index = History

local function printable(s)
  return s ~= "" and utf8.len(s) ~= nil and not s:find("[%z\1-\31\127]")
end

-- history_file() -> where the history lives
function M.history_file()
  return paths.data_dir() .. "/repl_history"
end

-- load_history(file) -> History (entries read from file, if any)
function M.load_history(file)
  local h = setmetatable({ file = file, entries = {} }, History)
  local data = fs.read_file(file, M.HISTORY_MAX_BYTES)
  if not data then return h end
  local all = {}
  for line in data:gmatch("[^\n]+") do
    if printable(line) then all[#all + 1] = line end
  end
  local first = math.max(1, #all - M.HISTORY_MAX + 1)
  h.entries = table.move(all, first, #all, 1, {})
  if #all > 2 * M.HISTORY_MAX then  -- compact now and then, not at each line
    fs.write_atomic(file, table.concat(h.entries, "\n") .. "\n", 384)
  end
  return h
end

-- History:add(line): kept in memory and appended to the file (mode 0600;
-- a failure is said once, and the prompt goes on without saving).
function History:add(line)
  if not printable(line) or line:find("^%s*$") or self.entries[#self.entries] == line then return end
  self.entries[#self.entries + 1] = line
  if #self.entries > M.HISTORY_MAX then table.remove(self.entries, 1) end
  if self.broken then return end
  local ok, msg = fs.mkdir_p(paths.data_dir(), 448)
  local f
  if ok then f, msg = fs.open(self.file, "a", 384) end
  if f then
    ok, msg = f:write(line .. "\n")
    f:close()
  end
  if not (ok and f) then
    self.broken = true
    io.stderr:write("shannot: history not saved: ", text.inert(msg or "?"), "\n")
  end
end

---------------------------------------------------------------------------
-- The loops
---------------------------------------------------------------------------

-- say(file, s): s and a newline, unless s is empty
M.decode = term.decode  -- (the specs check the keys the editor gets)

local function say(f, s)
  if s ~= "" then
    f:write(s, "\n")
    f:flush()
  end
end

-- The terminal: the editor, history, Ctrl-C cancelling a line or a run.
local function interactive(env, history)
  local ed = lineedit.new({ history = history, complete = function(before) return M.complete(before, env) end })
  term.write(OUT, string.format("shannot %s, %s: shannot, config, target, p(v); Ctrl-D leaves\n",
    const.VERSION, _VERSION))
  local lines, phase = {}, "read"
  local function step()
    phase = "read"
    local line, rerr = ed:read(#lines == 0 and M.PROMPT or M.MORE)
    if line == nil then return rerr and err.env("repl: %s", rerr) or "eof" end
    if line == false then
      lines = {}
      return
    end
    history:add(line)
    lines[#lines + 1] = line
    local chunk, cerr = M.compile(lines, env)
    if chunk == "incomplete" then return end
    lines = {}
    if not chunk then return say(io.stderr, text.inert(cerr)) end
    phase = "run"
    local ok, out = M.run_chunk(chunk)
    say(ok and io.stdout or io.stderr, out)
  end
  while true do
    local ok, res = pcall(step)
    if not ok then
      if not is_interrupt(res) then
        io.stderr:write("shannot: repl: ", text.inert(error_message(res)), "\n")
      elseif sys.interrupted() == SIGTERM then
        return nil, err.failed("interrupted")
      elseif phase == "read" then
        ed:cancelled()
      else
        io.stdout:flush()
        io.stderr:write("interrupted\n")
      end
      lines = {}
    elseif res == "eof" then
      return const.EXIT.OK
    elseif res then
      return nil, res
    end
    if sys.interrupted() then clear_interrupt() end
  end
end

-- Plain lines (a pipe or a file): no prompt, no editing, no history;
-- the exit code is 1 when any input failed.
local function plain(env)
  local lines, failed = {}, false
  for line in io.stdin:lines() do
    lines[#lines + 1] = line
    local chunk, cerr = M.compile(lines, env)
    if chunk ~= "incomplete" then
      lines = {}
      if not chunk then
        failed = true
        say(io.stderr, text.inert(cerr))
      else
        local ok, out = M.run_chunk(chunk)
        if not ok and out == "interrupted" then return nil, err.failed("interrupted") end
        if not ok then failed = true end
        say(ok and io.stdout or io.stderr, out)
      end
    end
  end
  if #lines > 0 then
    local _, cerr = load(table.concat(lines, "\n"), "=stdin", "t", env)
    say(io.stderr, text.inert(cerr or "incomplete input"))
    failed = true
  end
  return failed and const.EXIT.FAILED or const.EXIT.OK
end

-- run(opts) -> exit code | nil, err.  opts: config, target (a name: one
-- connection made here and kept for the whole session), accept_new.
function M.run(opts)
  local session
  if opts.target and opts.target ~= "local" then
    local remote = require("shannot.remote")
    local t, terr = remote.resolve(opts.target, opts.config)
    if not t then return nil, terr end
    local s, cerr = remote.connect(t, { accept_new = opts.accept_new })
    if not s then return nil, cerr end
    session = s
  end
  local _ <close> = session
  local env = M.environment({ config = opts.config, target = session })
  if term.isatty(IN) and term.isatty(OUT) then
    return interactive(env, M.load_history(M.history_file()))
  end
  return plain(env)
end

return M
