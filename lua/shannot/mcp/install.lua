-- shannot mcp install: adds a "shannot" server to an MCP client's config:
-- JSON for Claude Desktop, Claude Code and LM Studio, TOML for Codex.
-- The file is edited as text, so everything outside the "shannot" entry
-- (and the "mcpServers" object it is added to) stays byte for byte; a
-- malformed file is reported, never rewritten.
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local text = require("shannot.text")

local M = {}

M.MAX_BYTES = 64 * 1024 * 1024  -- ~/.claude.json keeps history: it grows

-- mode: of a file we create (~/.claude.json holds OAuth account data,
-- the others may hold a server's tokens)
M.CLIENTS = {
  { id = "claude-desktop", name = "Claude Desktop", mode = 420 },  -- 0644
  { id = "claude-code", name = "Claude Code", mode = 384 },        -- 0600
  { id = "codex", name = "Codex", mode = 384, toml = true },
  { id = "lmstudio", name = "LM Studio", mode = 384 },
}

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
end

-- config_dir(client_id [, getenv]) -> the directory the client keeps its
-- config in, the file's name there
function M.config_dir(id, getenv)
  getenv = getenv or os.getenv
  local home = nonempty(getenv("HOME")) or paths.home()
  if id == "claude-desktop" then
    return (nonempty(getenv("XDG_CONFIG_HOME")) or (home .. "/.config")) .. "/Claude", "claude_desktop_config.json"
  elseif id == "claude-code" then
    -- Claude Code keeps .claude.json in CLAUDE_CONFIG_DIR when that is set.
    return nonempty(getenv("CLAUDE_CONFIG_DIR")) or home, ".claude.json"
  elseif id == "codex" then
    return nonempty(getenv("CODEX_HOME")) or (home .. "/.codex"), "config.toml"
  elseif id == "lmstudio" then
    return home .. "/.lmstudio", "mcp.json"
  end
  error("mcp install: unknown client " .. tostring(id), 2)
end

-- config_path(client_id [, getenv]) -> the client's config file
function M.config_path(id, getenv)
  local dir, file = M.config_dir(id, getenv)
  return dir .. "/" .. file
end

-- present(client_id [, getenv]) -> true | nil, why: whether the client
-- looks installed for this user (its config directory exists; for Claude
-- Code, ~/.claude.json or ~/.claude).
function M.present(id, getenv)
  local dir = M.config_dir(id, getenv)
  if id == "claude-code" then
    local file, own = M.config_path(id, getenv), dir .. "/.claude"
    if fs.lstat(file) or fs.is_dir(own) then return true end
    return nil, string.format("no %s or %s", file, own)
  end
  if fs.is_dir(dir) then return true end
  return nil, string.format("no %s", dir)
end

-- entry(bin [, target [, profile]]) -> {command = bin, args = {"mcp", ...}}
function M.entry(bin, target, profile)
  local args = { "mcp" }
  if target then table.move({ "--target", target }, 1, 2, #args + 1, args) end
  if profile then table.move({ "--profile", profile }, 1, 2, #args + 1, args) end
  return { command = bin, args = args }
end

---------------------------------------------------------------------------
-- A scanner for text cjson has already accepted: it finds where a value
-- starts and ends, and lists an object's members only when asked (a
-- ~/.claude.json of megabytes is mostly skipped over).

local function skip_ws(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

-- The index of the '"' that ends the string opening at i.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = s:find('["\\]', j)
    if s:byte(k) == 34 then return k end
    j = k + 2
  end
end

-- The index of the bracket that closes the object or array opening at i.
local function container_end(s, i)
  local depth, j = 0, i
  while true do
    local k = s:find('[][{}"]', j)
    local c = s:byte(k)
    if c == 34 then
      k = string_end(s, k)
    elseif c == 123 or c == 91 then
      depth = depth + 1
    else
      depth = depth - 1
      if depth == 0 then return k end
    end
    j = k + 1
  end
end

local KIND = { [123] = "object", [91] = "array", [34] = "string" }

-- value_at(s, i) -> {kind, s, e} (e: its last byte), the index after it
local function value_at(s, i)
  local c = s:byte(i)
  local e
  if c == 123 or c == 91 then e = container_end(s, i)
  elseif c == 34 then e = string_end(s, i)
  else e = (s:find("[ \t\r\n,%]}]", i) or #s + 1) - 1 end
  local kind = KIND[c]
  if not kind then
    local word = s:sub(i, e)
    kind = word == "null" and "null" or (word == "true" or word == "false") and "boolean" or "number"
  end
  return { kind = kind, s = i, e = e }, e + 1
end

-- members(s, obj) -> { {key, ks, ke, node}, ... } in file order
local function members(s, obj)
  if obj.members then return obj.members end
  local list, i = {}, skip_ws(s, obj.s + 1)
  while s:byte(i) ~= 125 do                                   -- }
    local ke = string_end(s, i)
    local key = s:sub(i + 1, ke - 1)
    if key:find("\\", 1, true) then key = json.decode('"' .. key .. '"') end
    local node, ni = value_at(s, skip_ws(s, skip_ws(s, ke + 1) + 1))   -- past ':'
    list[#list + 1] = { key = key, ks = i, ke = ke, node = node }
    i = skip_ws(s, ni)
    if s:byte(i) == 44 then i = skip_ws(s, i + 1) end        -- ,
  end
  obj.members = list
  return list
end

-- The last member named key (cjson, like JavaScript, keeps the last).
local function member(s, obj, key)
  local list = members(s, obj)
  for k = #list, 1, -1 do
    if list[k].key == key then return list[k] end
  end
end

---------------------------------------------------------------------------
-- Writing new members in the file's own style.

local ORDERED = {}  -- metatable of an object given as { {key, value}, ... }

local function ordered(pairs_)
  return setmetatable(pairs_, ORDERED)
end

local function line_indent(s, pos)
  local start = pos
  while start > 1 and s:byte(start - 1) ~= 10 do start = start - 1 end
  return s:match("^[ \t]*", start)
end

-- render(value, style, base) -> JSON text; base: the indent of its line
local function render(v, style, base)
  if type(v) == "string" then return json.encode(v) end
  local inner, parts = base .. style.unit, {}
  for _, x in ipairs(v) do
    if getmetatable(v) == ORDERED then
      parts[#parts + 1] = json.encode(x[1]) .. style.sep .. render(x[2], style, inner)
    else
      parts[#parts + 1] = render(x, style, inner)
    end
  end
  local open, close = "[", "]"
  if getmetatable(v) == ORDERED then open, close = "{", "}" end
  if #parts == 0 then return open .. close end
  if not style.multiline then return open .. table.concat(parts, style.comma) .. close end
  return open .. "\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. base .. close
end

-- The file's style, from its top-level object: one member per line or
-- all on one line, the indent step, and what surrounds ':'.
local function file_style(s, top)
  local style = { multiline = true, unit = "  ", sep = ": ", comma = ", " }
  local first = members(s, top)[1]
  if not first then return style end
  style.sep = s:sub(first.ke + 1, first.node.s - 1)
  if style.sep:find("\n", 1, true) then style.sep = ": " end
  style.comma = style.sep:find(" ", 1, true) and ", " or ","
  style.multiline = s:sub(top.s, first.ks):find("\n", 1, true) ~= nil
  local outer, inner = line_indent(s, top.s), line_indent(s, first.ks)
  if #inner > #outer and inner:sub(1, #outer) == outer then style.unit = inner:sub(#outer + 1) end
  return style
end

-- Edits (into doc.edits) that give obj each {key, value} of wanted:
-- existing members get a new value in place, missing ones are appended
-- after the last member.  doc: {text, style (the file's, file_style's),
-- edits}.
local function set_members(doc, obj, wanted)
  local s, g, edits = doc.text, doc.style, doc.edits
  local list = members(s, obj)
  local first = list[1]
  local style = { unit = g.unit, sep = g.sep, comma = g.comma, multiline = g.multiline }
  if first then style.multiline = s:sub(obj.s, first.ks):find("\n", 1, true) ~= nil end
  local missing = {}
  for _, kv in ipairs(wanted) do
    local m = member(s, obj, kv[1])
    if m then
      edits[#edits + 1] = { m.node.s, m.node.e, render(kv[2], style, line_indent(s, m.ks)) }
    else
      missing[#missing + 1] = kv
    end
  end
  if #missing == 0 then return end
  local last = list[#list]
  local base = last and line_indent(s, last.ks) or (line_indent(s, obj.s) .. style.unit)
  local parts = {}
  for _, kv in ipairs(missing) do
    parts[#parts + 1] = json.encode(kv[1]) .. style.sep .. render(kv[2], style, base)
  end
  local lead = style.multiline and (",\n" .. base) or style.comma
  if last then
    edits[#edits + 1] = { last.node.e + 1, last.node.e, lead .. table.concat(parts, lead) }
  elseif style.multiline then
    edits[#edits + 1] = { obj.s + 1, obj.e - 1,
      "\n" .. base .. table.concat(parts, lead) .. "\n" .. line_indent(s, obj.s) }
  else
    edits[#edits + 1] = { obj.s + 1, obj.e - 1, table.concat(parts, lead) }
  end
end

local function apply_edits(s, edits)
  table.sort(edits, function(a, b) return a[1] > b[1] end)
  for _, e in ipairs(edits) do s = s:sub(1, e[1] - 1) .. e[3] .. s:sub(e[2] + 1) end
  return s
end

---------------------------------------------------------------------------
-- edit(old, entry, name) -> new text, "added"|"updated"|"same" | nil, msg
-- old: the file's text (nil: no file); name: for messages.

local function entry_value(entry)
  return ordered({ { "command", entry.command }, { "args", json.array(entry.args) } })
end

local function same_entry(cur, entry)
  if type(cur) ~= "table" or cur.command ~= entry.command or type(cur.args) ~= "table" then return false end
  local n = 0
  for _ in pairs(cur.args) do n = n + 1 end
  if n ~= #entry.args then return false end
  for i, a in ipairs(entry.args) do
    if cur.args[i] ~= a then return false end
  end
  return true
end

local function deep_equal(a, b)
  if a == b or (a ~= a and b ~= b) then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- The edit must change the "shannot" entry's command and args and nothing
-- else; anything more is a bug here, and the file is not written.
-- how: entry, name (of the file), keep (the old entry was an object,
-- whose other members stay).
local function verify(old_doc, new, how)
  local entry, name, keep = how.entry, how.name, how.keep
  local new_doc = json.decode(new, name)
  local want = old_doc
  want.mcpServers = type(want.mcpServers) == "table" and want.mcpServers or {}
  want.mcpServers.shannot = keep and want.mcpServers.shannot or {}
  want.mcpServers.shannot.command = entry.command
  want.mcpServers.shannot.args = entry.args
  if not new_doc or not deep_equal(want, new_doc) then
    error("mcp install: the edit of " .. name .. " changed more than the shannot entry")
  end
end

local A_KIND = { array = "an array", string = "a string", number = "a number", boolean = "a boolean",
  null = "null" }

local function kind_error(name, what, node)
  return nil, string.format("%s: %s is not a JSON object (it is %s); not changed", name, what, A_KIND[node.kind])
end

local BOM = "\239\187\191"

function M.edit(old, entry, name)
  name = name or "json"
  local ev = entry_value(entry)
  local bom = old and old:sub(1, 3) == BOM and BOM or ""
  local body = old and old:sub(#bom + 1)
  if not body or body:match("^[ \t\r\n]*$") then
    local g = { multiline = true, unit = "  ", sep = ": ", comma = ", " }
    return render(ordered({ { "mcpServers", ordered({ { "shannot", ev } }) } }), g, "") .. "\n", "added"
  end
  local doc, derr = json.decode(body, name)
  if doc == nil then return nil, derr .. "; not changed" end
  local top = value_at(body, skip_ws(body, 1))
  if top.kind ~= "object" then return kind_error(name, "the top level", top) end
  local servers = member(body, top, "mcpServers")
  if servers and servers.node.kind ~= "object" then return kind_error(name, '"mcpServers"', servers.node) end
  local cur = servers and member(body, servers.node, "shannot")
  if cur and same_entry(doc.mcpServers.shannot, entry) then return old, "same" end
  local target = { text = body, style = file_style(body, top), edits = {} }
  if not servers then
    set_members(target, top, { { "mcpServers", ordered({ { "shannot", ev } }) } })
  elseif cur and cur.node.kind == "object" then
    set_members(target, cur.node, ev)
  else
    set_members(target, servers.node, { { "shannot", ev } })
  end
  local new = apply_edits(body, target.edits)
  verify(doc, new, { entry = entry, name = name, keep = cur and cur.node.kind == "object" })
  return bom .. new, cur and "updated" or "added"
end

---------------------------------------------------------------------------
-- edit_toml(old, entry, name) -> new text, "added"|"updated"|"same" | nil,
-- msg: the same for Codex's config.toml and its [mcp_servers.shannot]
-- table, through the comment-preserving TOML editor (a table already
-- there keeps its other keys).

function M.edit_toml(old, entry, name)
  local toml = require("shannot.toml")
  local doc, perr = toml.parse(old or "", name)
  if not doc then return nil, tostring(perr) .. "; not changed" end
  local servers = doc.mcp_servers
  local cur = type(servers) == "table" and servers.shannot or nil
  if cur ~= nil and same_entry(cur, entry) then return old, "same" end
  local args = setmetatable(table.move(entry.args, 1, #entry.args, 1, {}), toml.array_mt)
  local new, terr = toml.update_table(old or "", { "mcp_servers", "shannot" },
    { { "command", entry.command }, { "args", args } }, name)
  if not new then return nil, tostring(terr) .. "; not changed" end
  return new, cur ~= nil and "updated" or "added"
end

---------------------------------------------------------------------------
-- plan(path, entry, opts) -> plan | nil, err
-- opts: mode (of a new file), client (its name, for messages), toml (the
-- file is TOML, not JSON).
-- plan: path, real (the file written: symlinks resolved), old (nil: no
-- file), new, status ("added"|"updated"|"same"), mode.

local function read(path)
  local st, msg, code = fs.lstat(path)
  if not st then
    if code == "ENOENT" then return { real = path } end
    return nil, err.env("cannot read %s", msg)
  end
  local real = fs.realpath(path)
  st = real and fs.stat(real)
  if not st then return nil, err.env("%s: a symlink to nothing; not changed", path) end
  if st.type ~= "file" then return nil, err.usage("%s: not a regular file; not changed", path) end
  local data, rmsg, rcode = fs.read_file(real, M.MAX_BYTES)
  if not data then
    if rcode == "EFBIG" then return nil, err.usage("%s: larger than %d bytes; not changed", path, M.MAX_BYTES) end
    return nil, err.env("cannot read %s", rmsg)
  end
  return { real = real, old = data, mode = st.mode }
end

function M.plan(path, entry, opts)
  opts = opts or {}
  local p, rerr = read(path)
  if not p then return nil, rerr end
  local new, status = (opts.toml and M.edit_toml or M.edit)(p.old, entry, path)
  if not new then
    return nil, err.usage("%s%s", status, opts.client and (" (" .. opts.client .. ")") or "")
  end
  p.path, p.new, p.status = path, new, status
  p.mode = p.mode or opts.mode or 384
  return p
end

-- write(plan) -> true | nil, err.  Refuses if the file changed since it was
-- read (the client itself may be rewriting it).
function M.write(p)
  if p.status == "same" then return true end
  local now = fs.read_file(p.real, M.MAX_BYTES)
  if now ~= p.old then
    return nil, err.refused("%s changed while shannot was editing it; not changed, try again", p.path)
  end
  if p.old == nil then
    local dir = p.real:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then
      local ok, msg = fs.mkdir_p(dir, 448)
      if not ok then return nil, err.env("cannot make %s", msg) end
    end
  end
  local ok, msg = fs.write_atomic(p.real, p.new, p.mode)
  if not ok then return nil, err.env("cannot write %s", msg) end
  return true
end

---------------------------------------------------------------------------
-- The command.

local function check_target(target, cfg)
  if target == nil then return true end
  local values = cfg and cfg.values
  local e = values and values.executor and values.executor[target]
  if values and ((values.remotes and values.remotes[target]) or (e and e.type == "ssh")) then return true end
  return nil, err.usage('mcp install: unknown target "%s": not a configured remote (shannot remote list)',
    text.inert(target))
end

local function check_profile(profile)
  if profile == nil then return nil end
  local p, perr = require("shannot.sandbox.profile").load(profile)
  if not p then return nil, perr end
  -- the client starts shannot elsewhere: a profile file needs its full path
  if profile:find("/", 1, true) or profile:match("%.json$") then return fs.realpath(profile) or profile end
  return profile
end

local CLIENT_IDS = {}
for i, c in ipairs(M.CLIENTS) do CLIENT_IDS[i] = c.id end
M.CLIENT_LIST = table.concat(CLIENT_IDS, ", ") .. " or all"

-- clients(which, getenv) -> the clients to install into, the skipped
-- ({client, why}...) | nil, err.  "all": those that look installed.
local function clients(which, getenv)
  if which == nil or which == "all" then
    local list, skipped = {}, {}
    for _, c in ipairs(M.CLIENTS) do
      local ok, why = M.present(c.id, getenv)
      if ok then list[#list + 1] = c else skipped[#skipped + 1] = { client = c, why = why } end
    end
    return list, skipped
  end
  for _, c in ipairs(M.CLIENTS) do
    if c.id == which then return { c }, {} end
  end
  local ids = table.move(CLIENT_IDS, 1, #CLIENT_IDS, 1, {})
  ids[#ids + 1] = "all"
  return nil, err.usage('mcp install: unknown client "%s"%s; use %s', text.inert(which),
    text.did_you_mean(which, ids), M.CLIENT_LIST)
end

local function show_diff(p)
  if p.status == "same" then return nil end
  local d = require("shannot.diff").describe(p.old, p.new,
    { a_label = p.old and p.path or "/dev/null", b_label = p.path })
  return d.kind == "text" and d.text or d.summary
end

-- What happened to one client's file, for the front end to say.
local function report(p, client, opts)
  local doc = { client = client.id, name = client.name, path = p.path,
    status = p.status == "same" and "up-to-date" or p.status, created = p.old == nil and p.status ~= "same",
    changed = p.status ~= "same" and not opts.dry_run, dry_run = opts.dry_run == true }
  if opts.dry_run then doc.diff = show_diff(p) end
  return doc
end

-- install(opts) -> {clients = {report...}, skipped = {...}, entry =} |
-- nil, err [, warnings].  opts: bin, client ("all" default: the clients
-- whose config directory exists), target, profile (already checked),
-- dry_run, getenv.  A report: client, name, path, status ("added",
-- "updated", "up-to-date"), created, changed, dry_run, diff; a skipped
-- one: client, name, why.  Every file is read and edited before any is
-- written: a malformed one means none is changed.
function M.install(opts)
  local list, skipped = clients(opts.client, opts.getenv)
  if not list then return nil, skipped end
  local passed = {}
  for i, s in ipairs(skipped) do passed[i] = { client = s.client.id, name = s.client.name, why = s.why } end
  if #list == 0 then
    local whys = {}
    for i, s in ipairs(passed) do whys[i] = s.name .. ": " .. s.why end
    return nil, err.usage("mcp install: found no MCP client (%s); name one with --client (%s)",
      table.concat(whys, "; "), table.concat(CLIENT_IDS, ", "))
  end
  local entry = M.entry(opts.bin, opts.target, opts.profile)
  local plans, errs = {}, {}
  for i, c in ipairs(list) do
    local p, perr = M.plan(M.config_path(c.id, opts.getenv), entry,
      { mode = c.mode, client = c.name, toml = c.toml })
    plans[i], errs[#errs + 1] = p, perr
  end
  if #errs > 0 then
    local others = {}
    for i = 1, #errs - 1 do others[i] = errs[i].message end
    return nil, errs[#errs], others
  end
  local docs = {}
  for i, c in ipairs(list) do
    if not opts.dry_run then
      local ok, werr = M.write(plans[i])
      if not ok then return nil, werr end
    end
    docs[i] = report(plans[i], c, opts)
  end
  return { clients = docs, skipped = passed, entry = entry }
end

-- run(opts, args) -> install's result | nil, err [, warnings]: `shannot
-- mcp install`.
-- opts: client, target, profile, dry_run, json, config (as parsed by
-- cmd/mcp.lua); bin (the binary to install) defaults to this one.
function M.run(opts, args)
  if args and #args > 0 then
    return nil, err.usage('mcp install: unexpected "%s"; usage: shannot mcp install ' ..
      "[--client C] [--target T] [--dry-run]", text.inert(args[1]))
  end
  local ok, terr = check_target(opts.target, opts.config)
  if not ok then return nil, terr end
  local profile, perr = check_profile(opts.profile)
  if perr then return nil, perr end
  local bin = opts.bin or fs.realpath("/proc/self/exe")
  if not bin then return nil, err.env("mcp install: cannot find the shannot binary (/proc/self/exe)") end
  if not utf8.len(bin) then
    return nil, err.env("mcp install: the binary's path %s is not UTF-8, which JSON and TOML cannot hold",
      text.inert(bin))
  end
  return M.install({ bin = bin, client = opts.client, target = opts.target, profile = profile,
    dry_run = opts.dry_run, getenv = opts.getenv })
end

return M
