-- One review per distinct change (issue 16.3): the hosts of a fleet run
-- grouped by identical change sets (same paths, kinds, modes, owners,
-- link targets, content hashes, extended attributes and deferred
-- commands; never times or the state before), the largest group variant
-- A, then B, ...; hosts without a change set grouped by what happened.
local text = require("shannot.text")

local M = {}

local function field(v)
  if v == nil then return "" end
  return tostring(v)
end

local function xattr_sig(x)
  if type(x) ~= "table" then return "" end
  local names = {}
  for k in pairs(x) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do names[i] = k .. "=" .. tostring(x[k]) end
  return table.concat(names, ",")
end

-- The signature of one operation: what it makes of its path.  Deferred
-- commands and questions by their argv (and working directory).
local function op_sig(op)
  if op.kind == "exec" or op.kind == "query" then
    return op.kind .. "\0" .. table.concat(op.argv or {}, "\0") .. "\0" .. field(op.cwd)
  end
  local n = op.new or {}
  return table.concat({ op.kind, field(op.path), field(op.from), field(n.exists), field(n.type), field(n.mode),
    field(n.uid), field(n.gid), field(n.hash), field(n.link), field(n.size), field(n.hardlink), xattr_sig(n.xattrs) },
    "\0")
end

-- change_set(s) -> {key, paths = {path = sig}, deferred = {sig...}}: the
-- session's operations, file ones by path (sorted: the order a tree was
-- walked in is not part of the change), deferred ones in their order
function M.change_set(s)
  local files, deferred, paths = {}, {}, {}
  for _, op in ipairs(s.operations) do
    local sig = op_sig(op)
    if op.kind == "exec" or op.kind == "query" then
      deferred[#deferred + 1] = sig
    else
      files[#files + 1] = sig
      local p = op.path or ""
      paths[p] = (paths[p] and (paths[p] .. "\1") or "") .. sig
    end
  end
  table.sort(files)
  return { key = table.concat(files, "\n") .. "\n--\n" .. table.concat(deferred, "\n"), paths = paths,
    deferred = table.concat(deferred, "\n") }
end

-- A, B, ..., Z, AA, AB, ...
local function label(i)
  local s = ""
  repeat
    local r = (i - 1) % 26
    s = string.char(65 + r) .. s
    i = (i - 1 - r) // 26
  until i == 0
  return s
end

-- differs(a, b) -> the paths whose change differs between two change sets
-- (sorted), and whether the deferred commands differ
local function differs(a, b)
  local out = {}
  for p, sig in pairs(a.paths) do if b.paths[p] ~= sig then out[#out + 1] = p end end
  for p in pairs(b.paths) do if a.paths[p] == nil then out[#out + 1] = p end end
  table.sort(out)
  return out, a.deferred ~= b.deferred
end

-- What a host without a change set became, in the order they are listed.
local OTHER = { "unchanged", "failed", "unreachable", "refused", "error", "pending", "missing" }

-- group(run, sessions) -> {variants = {{label, hosts, sessions, session,
-- change, differs, deferred_differ}}, others = {{state, hosts = {{name,
-- error, session}}}}}.  sessions: host name -> session.  A host whose run
-- failed is listed apart even when it captured something: it may be a
-- partial change.
function M.group(run, sessions)
  local by_key, variants, others = {}, {}, {}
  for _, h in ipairs(run.hosts) do
    local s = h.session and sessions[h.name]
    if s and h.state == "captured" then
      local cs = M.change_set(s)
      local v = by_key[cs.key]
      if not v then
        v = { hosts = {}, sessions = {}, session = s, change = cs }
        by_key[cs.key] = v
        variants[#variants + 1] = v
      end
      v.hosts[#v.hosts + 1] = h.name
      v.sessions[#v.sessions + 1] = s
    else
      local state = (h.session and not s) and "missing" or h.state
      others[state] = others[state] or {}
      table.insert(others[state], { name = h.name, error = h.error, session = h.session })
    end
  end
  -- the most hosts first; a tie in the run's order
  for i, v in ipairs(variants) do v.first = i end
  table.sort(variants, function(a, b)
    if #a.hosts ~= #b.hosts then return #a.hosts > #b.hosts end
    return a.first < b.first
  end)
  for i, v in ipairs(variants) do
    v.label = label(i)
    if i > 1 then v.differs, v.deferred_differ = differs(variants[1].change, v.change) end
  end
  local other_list = {}
  for _, state in ipairs(OTHER) do
    if others[state] then other_list[#other_list + 1] = { state = state, hosts = others[state] } end
  end
  return { variants = variants, others = other_list, problems = {} }
end

-- of(run, opts) -> group's, with problems (sessions that could not be
-- read).  opts: session.current's.
function M.of(run, opts)
  local sessions, problems = require("shannot.fleet.runs").sessions(run, opts)
  local groups = M.group(run, sessions)
  groups.problems = problems
  return groups
end

-- approve(v, opts) -> approved {{host, session, variant}}, refused {{host,
-- session, message}}: every session of variant v approved as `approve
-- ID` approves one (session/approve.lua: its lock, the policy of now); a
-- session whose run failed only with opts.allow_failed; one that cannot
-- be approved is left, the others are approved.  opts: config, actor,
-- warn, who, allow_failed.
function M.approve(v, opts)
  local approve = require("shannot.session.approve")
  local approved, refused = {}, {}
  for i, s in ipairs(v.sessions) do
    local failure = require("shannot.session").run_failure(s)
    local ok, e
    if failure and not opts.allow_failed then
      e = { message = string.format("its run %s (approve it with --allow-failed)", failure) }
    else
      ok, e = approve.session(s.id, opts)
    end
    if ok then
      approved[#approved + 1] = { host = v.hosts[i], session = s.id, variant = v.label }
    else
      refused[#refused + 1] = { host = v.hosts[i], session = s.id, message = e.message }
    end
  end
  return approved, refused
end

-- find(groups, label) -> the variant of that label, or nil
function M.find(groups, wanted)
  for _, v in ipairs(groups.variants) do
    if v.label == wanted:upper() then return v end
  end
end

local function hosts_word(n)
  return n .. (n == 1 and " host" or " hosts")
end

local function names(list, max)
  local out = {}
  for i, h in ipairs(list) do
    if i > max then
      out[#out + 1] = string.format("and %d more", #list - max)
      break
    end
    out[#out + 1] = type(h) == "table" and h.name or h
  end
  return text.inert(table.concat(out, " "))
end

-- what_differs(v) -> "differs in /etc/hosts, /etc/motd" (up to 5 paths)
function M.what_differs(v)
  if not v.differs then return "" end
  local parts = {}
  for i, p in ipairs(v.differs) do
    if i > 5 then parts[#parts + 1] = string.format("%d more", #v.differs - 5) break end
    parts[#parts + 1] = p
  end
  local s = #parts > 0 and ("differs in " .. table.concat(parts, ", ")) or ""
  if v.deferred_differ then s = s .. (s ~= "" and "; " or "") .. "deferred commands differ" end
  return text.inert(s)
end

local OTHER_WORDS = { unchanged = "no changes", failed = "run failed", unreachable = "unreachable",
  refused = "refused", error = "error", pending = "not run", missing = "session missing" }

-- render(run, groups) -> the text `run` and `show RUN` print
function M.render(run, groups)
  local lines = { string.format("run %s: %s on %s (%s)", run.id, text.inert(text.command_line(run.command)),
    hosts_word(#run.hosts), text.inert(run.targets .. (run.limit and (" --limit " .. run.limit) or ""))) }
  for _, v in ipairs(groups.variants) do
    local what = v.label == "A" and "" or (" (" .. M.what_differs(v) .. ")")
    lines[#lines + 1] = string.format("  %s: variant %s, %d operation%s%s: %s", hosts_word(#v.hosts), v.label,
      #v.session.operations, #v.session.operations == 1 and "" or "s", what, names(v.hosts, 12))
  end
  for _, o in ipairs(groups.others) do
    lines[#lines + 1] = string.format("  %s: %s: %s", hosts_word(#o.hosts), OTHER_WORDS[o.state] or o.state,
      names(o.hosts, 12))
    for _, h in ipairs(o.hosts) do
      if h.error then lines[#lines + 1] = string.format("    %s: %s", text.inert(h.name), text.inert(h.error)) end
    end
  end
  for _, p in ipairs(groups.problems) do lines[#lines + 1] = "  " .. text.inert(p) end
  return table.concat(lines, "\n") .. "\n"
end

-- document(run, groups) -> the JSON of a run with its variants
function M.document(run, groups)
  local json = require("shannot.json")
  local vs = {}
  for i, v in ipairs(groups.variants) do
    local sessions = {}
    for j, s in ipairs(v.sessions) do sessions[j] = s.id end
    vs[i] = { label = v.label, hosts = json.array(v.hosts), sessions = json.array(sessions),
      operations = #v.session.operations, differs_in = json.array(v.differs or {}),
      deferred_differ = v.deferred_differ or false }
  end
  local others = {}
  for i, o in ipairs(groups.others) do others[i] = { state = o.state, hosts = json.array(o.hosts) } end
  return { id = run.id, created_at = run.created_at, targets = run.targets, limit = run.limit or json.null,
    command = run.command, hosts = run.hosts, variants = json.array(vs), others = json.array(others) }
end

return M
