-- Sessions (DESIGN §3): one directory per captured run under the data
-- directory, session.json written atomically, ids checked before they
-- touch a path, and every status change made here and only here.
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local text = require("shannot.text")
local durable = require("shannot.durable")
local lines = require("shannot.session.lines")

local guard = require("shannot.guard")
local M = {}

M.DEFAULT_TTL = 3600
M.MAX_JSON_BYTES = 256 * 1024 * 1024
-- Finished sessions older than this are removed by prune.
M.KEEP_FINISHED = 30 * 24 * 3600
-- A session directory without session.json this old is the remains of a
-- killed run (a run saves its session within moments of reserving it).
M.INCOMPLETE_AFTER = 600

M.STATUSES = { "pending", "approved", "rejected", "expired", "executed", "failed", "rolled_back" }

-- status -> the statuses it may move to
local TRANSITIONS = {
  pending = { approved = true, rejected = true, expired = true },
  -- approved -> rolled_back: an execution that was killed midway;
  -- -> pending: revoked; -> expired: its TTL passed before an execute
  approved = { executed = true, failed = true, rolled_back = true, pending = true, expired = true },
  executed = { rolled_back = true },
  failed = { rolled_back = true },
}

-- valid_id(s) -> true | false: `^[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{4}$`
M.valid_id = require("shannot.session.id").valid

-- The metatable of what list() gives from its cache: a summary, which
-- save() refuses (it lacks the history, the approval...).
M.SUMMARY = { __name = "session summary" }

function M.root()
  return paths.data_dir() .. "/sessions"
end

local function check_id(id)
  if M.valid_id(id) then return true end
  if id == "" then return nil, err.usage("empty session id") end
  return nil, err.usage('invalid session id "%s" (expected YYYYMMDD-HHMMSS-NAME-XXXX)',
    text.inert(#id > 80 and id:sub(1, 80) .. "..." or id))
end

-- dir(id) -> path | nil, err (the id is checked first)
function M.dir(id)
  local ok, e = check_id(id)
  if not ok then return nil, e end
  return M.root() .. "/" .. id
end

-- name_from(argv0) -> the NAME part of an id: a-z 0-9 -, at most 40
function M.name_from(s)
  local base = (s or ""):match("([^/]*)$"):gsub("%.%w+$", "")
  local name = base:lower():gsub("[^a-z0-9]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  name = name:sub(1, 40):gsub("%-+$", "")
  return name ~= "" and name or "run"
end

local function random_hex4()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(2)
  if f then f:close() end
  if not b or #b < 2 then b = string.char(math.random(0, 255), math.random(0, 255)) end
  return string.format("%02x%02x", b:byte(1), b:byte(2))
end

function M.new_id(name, now)
  return os.date("!%Y%m%d-%H%M%S", now) .. "-" .. M.name_from(name) .. "-" .. random_hex4()
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function parse_iso(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  if not y then return nil end
  -- os.time reads local time; the difference to UTC is added back.
  local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = sec, isdst = false })
  local utc_offset = os.time(os.date("*t", t)) - os.time(os.date("!*t", t))
  return t + utc_offset
end
M.parse_time = parse_iso

-- reserve(name, now) -> id, dir | nil, err: a new, empty session directory
function M.reserve(name, now)
  local ok, msg = fs.mkdir_p(M.root(), 448)
  if not ok then return nil, err.env("cannot make the session store %s", msg) end
  for _ = 1, 16 do
    local id = M.new_id(name, now)
    local dir = M.root() .. "/" .. id
    local made, merr, code = fs.mkdir(dir, 448)
    if made then return id, dir end
    if code ~= "EEXIST" then return nil, err.env("cannot make the session directory %s", merr) end
  end
  return nil, err.env("cannot find a free session id")
end

-- run_failure(s) -> nil | how the captured run failed ("exited with code
-- 1", "was killed by signal KILL", "timed out"): what it captured may be
-- only part of what it meant to do
function M.run_failure(s)
  if s.timed_out then return "timed out" end
  if type(s.signal) == "string" then return "was killed by signal " .. s.signal end
  local code = math.type(s.exit_code) and math.tointeger(s.exit_code)
  if code and code ~= 0 then return "exited with code " .. code end
end

-- new(fields) -> session table (not yet saved)
function M.new(f)
  local now = f.now or os.time()
  return {
    id = f.id, name = M.name_from(f.name), status = "pending",
    created_at = iso(now), expires_at = iso(now + (f.ttl or M.DEFAULT_TTL)),
    target = f.target or "local", profile = f.profile, command = json.array(f.command or {}),
    exit_code = f.exit_code == nil and json.null or f.exit_code,
    signal = f.signal, timed_out = f.timed_out or nil,
    operations = json.array(f.operations or {}), counts = f.counts or {},
    checkpoint = {}, results = json.array({}),
    history = json.array({ { at = iso(now), status = "pending" } }),
  }
end

-- JSON text is UTF-8 and the encoder replaces invalid bytes; a file name
-- may be any bytes but "/" and NUL.  Such strings also go out as hex
-- (KEY_hex), and load() puts the exact bytes back.
local RAW_KEYS = { "path", "link", "cwd", "hardlink", "from" }

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local function not_utf8(v)
  return type(v) == "string" and utf8.len(v) == nil
end

local function protect(t)
  for _, key in ipairs(RAW_KEYS) do
    if not_utf8(t[key]) then t[key .. "_hex"] = hex(t[key]) end
  end
end

local function restore(t)
  for _, key in ipairs(RAW_KEYS) do
    if type(t[key .. "_hex"]) == "string" then t[key] = unhex(t[key .. "_hex"]) end
  end
end

local function records_of(op, fn)
  fn(op)
  if type(op.new) == "table" then fn(op.new) end
  if type(op.base) == "table" then fn(op.base) end
  if type(op.from_base) == "table" then fn(op.from_base) end
end

local function protect_op(op)
  records_of(op, protect)
  if type(op.argv) == "table" then
    for _, a in ipairs(op.argv) do
      if not_utf8(a) then
        local h = {}
        for i, x in ipairs(op.argv) do h[i] = hex(x) end
        op.argv_hex = json.array(h)
        break
      end
    end
  end
end

-- An optional field written as null is as good as absent (the schema
-- lets it be): nothing after load ever meets json.null in its place.
local function drop_nulls(t)
  for k, v in pairs(t) do
    if v == json.null then
      t[k] = nil
    elseif type(v) == "table" then
      drop_nulls(v)
    end
  end
end

local function restore_op(op)
  records_of(op, restore)
  if type(op.argv_hex) == "table" then
    for i, x in ipairs(op.argv_hex) do op.argv[i] = unhex(tostring(x)) end
  end
end

-- The lists that grow with the operations live beside session.json, one
-- record per line (session/lines.lua): session.json stays a header a
-- listing reads at once, and execute, rollback and show stream the rest.
M.FILES = { operations = "operations.jsonl", results = "results.jsonl", checkpoint = "checkpoint.jsonl",
  approval = "approval.jsonl" }

-- file(s, name) -> the path of one of a session's M.FILES
function M.file(s, name)
  return M.root() .. "/" .. s.id .. "/" .. M.FILES[name]
end

-- encode_operation(op) -> its line (names that are not UTF-8 kept in hex)
-- (a record lua-cjson writes as it is has no name that is not UTF-8: one
-- check in C, where looking at each name field took a fifth of a capture's
-- interpreter time)
local plain = require("shannot.core.data").plain

function M.encode_operation(op)
  if not plain(op) then protect_op(op) end
  return json.encode_line(op)
end

-- encode_entry(e) -> a checkpoint entry's line
function M.encode_entry(e)
  if not plain(e) then protect(e) end
  return json.encode_line(e)
end

-- count(s) -> how many operations the session has
function M.count(s)
  if type(s.operations) == "table" then return #s.operations end
  return s.operation_count or 0
end

local function without(t, key)
  local copy = {}
  for k, v in pairs(t) do
    if k ~= key then copy[k] = v end
  end
  return copy
end

local RANK = { safe = 1, caution = 2, danger = 3 }

-- worse(a, b) -> the worse of two dangers (either may be nil)
local function worse(a, b)
  return (RANK[b] or 0) > (RANK[a] or 0) and b or a
end

-- write_operations(s, dir, each, how) -> bytes written, count | nil,
-- err.  each(fn) calls fn(op) for every operation (they need not be in
-- memory at once); it may err.throw, and nothing is written then.  how:
-- max_bytes, batch (durable.lua's: the file is handed to it, not yet in
-- place; without one it is durable and in place on return).
local function write_operations(s, dir, each, how)
  local max_bytes = how.max_bytes
  -- (<close>: a raised error, a policy's, leaves no temp file behind)
  local w <close>, msg = lines.writer(dir .. "/" .. M.FILES.operations)
  if not w then return nil, err.env("cannot write session %s: %s", s.id, msg) end
  local bytes, worst, n = 0, nil, 0
  local ok, e = err.try(function()
    each(function(op)
      n = n + 1
      worst = worse(worst, op.danger)
      local line = M.encode_operation(op)
      bytes = bytes + #line + 1
      -- past the limit, only counted: the refusal says how large it is
      if bytes <= max_bytes then
        local added, werr = w:add_line(line)
        if not added then err.throw(err.env("cannot write session %s: %s", s.id, werr)) end
      end
    end)
    return true
  end)
  if not ok then
    w:abandon()
    return nil, e
  end
  if bytes > max_bytes then
    w:abandon()
    return nil, err.refused("session %s would be %.1f MiB of JSON (%d operations), more than the %.1f MiB it " ..
      "may be", s.id, bytes / 1048576, n, max_bytes / 1048576)
  end
  local committed, cerr = w:commit(how.batch)
  if not committed then return nil, err.env("cannot write session %s: %s", s.id, cerr) end
  -- what a listing shows of the session without reading its operations
  s.worst_danger = worst
  return bytes, n
end

-- A list kept in memory (a session made by the Lua API, or an old
-- session.json holding it) goes to its file the first time; after that
-- only execute writes it, record by record.
local function write_once(path, list, encode, batch)
  if #list == 0 or fs.lstat(path) then return true end
  return lines.write(path, list, encode, batch)
end

-- What save() writes, handed to how.batch (nothing in place yet): the
-- operations, the lists held in memory, and the header.  how: max_bytes,
-- each, batch.  -> true | nil, err or msg
local function write_header_and_lists(s, dir, how)
  local max_bytes, each, batch = how.max_bytes, how.each, how.batch
  local header = without(s, "operations")
  header.results = nil
  local used = 0
  if type(s.operations) == "table" and not each then
    local list = s.operations
    each = function(fn) for _, op in ipairs(list) do fn(op) end end
  end
  if each then
    local bytes, n = write_operations(s, dir, each, { max_bytes = max_bytes, batch = batch })
    if not bytes then return nil, n end
    used, s.operation_count, header.operation_count = bytes, n, n
    header.worst_danger = s.worst_danger
  end
  local ok, msg = true, nil
  if type(s.results) == "table" then
    ok, msg = write_once(dir .. "/" .. M.FILES.results, s.results, nil, batch)
  end
  -- (a checkpoint or an approval sealed before the lists moved beside
  -- session.json, without a count, stays in it: its seal is over it there)
  if ok and type(s.checkpoint) == "table" and type(s.checkpoint.entries) == "table" and s.checkpoint.count then
    header.checkpoint = without(s.checkpoint, "entries")
    ok, msg = write_once(dir .. "/" .. M.FILES.checkpoint, s.checkpoint.entries, M.encode_entry, batch)
  end
  if ok and type(s.approval) == "table" and type(s.approval.operations) == "table" and s.approval.count then
    header.approval = without(s.approval, "operations")
    ok, msg = lines.write(dir .. "/" .. M.FILES.approval, s.approval.operations, nil, batch)
  end
  if not ok then return nil, msg end
  local data = json.encode(header)
  if used + #data + 1 > max_bytes then
    return nil, err.refused("session %s would be %.1f MiB of JSON, more than the %.1f MiB it may be", s.id,
      (used + #data + 1) / 1048576, max_bytes / 1048576)
  end
  local w, werr = lines.writer(dir .. "/session.json")
  if not w then return nil, werr end
  ok, msg = w:add_line(data)
  if not ok then w:abandon(); return nil, msg end
  return w:commit(batch)
end

-- save(s [, max_bytes [, each [, batch]]]) -> true | nil, err.  The
-- operations (when s holds them, or each(fn) gives them, fn(op) for every
-- one: a capture streams them; a session loaded with load(id, {header =
-- true}) has none, and they stay as they are on disk) and the header
-- (session.json) are written, synced together, then renamed into place,
-- operations.jsonl first: a session is complete once session.json is
-- there.  More than max_bytes (default MAX_JSON_BYTES) of JSON is refused,
-- the files on disk left as they were.  batch (durable.lua's): the
-- session's directory is left in it, for the caller to sync together with
-- what it writes next (the audit line); without one it is synced here.
function M.save(s, max_bytes, each, batch)
  if getmetatable(s) == M.SUMMARY then
    error("session.save: a listing's summary is not a session (load it)", 2)
  end
  local dir, e = M.dir(s.id)
  if not dir then
    if batch then batch:abandon() end
    return nil, e
  end
  local own = batch == nil
  batch = batch or durable.batch()
  local ok, msg = write_header_and_lists(s, dir, { max_bytes = max_bytes or M.MAX_JSON_BYTES, each = each,
    batch = batch })
  if ok then ok, msg = batch:place() end
  if ok and own then ok, msg = batch:commit() end
  if not ok then
    batch:abandon()
    return nil, err.is(msg) and msg or err.env("cannot write session %s: %s", s.id, msg)
  end
  return true
end

-- transition(s, to, how) -> true | nil, err: the only way a status
-- changes, and it writes the audit event of the change itself.  how:
-- note (kept in the history), actor ("cli", "ui", "mcp"; default "lua":
-- every front end names itself, so an unnamed caller is an operator's
-- script), config (whose [audit] settings; the default config when
-- absent), extra (more fields for the event), warn (the front end's, told
-- when the audit log could not be written), now (for tests), batch
-- (durable.lua's: what the caller wrote before, synced with the change).
function M.transition(s, to, how)
  how = how or {}
  local note, now = how.note, how.now
  local from = s.status
  if not (TRANSITIONS[s.status] or {})[to] then
    return nil, err.refused('session %s is %s; it cannot become %s', s.id, s.status, to)
  end
  -- the new session.json's rename becomes durable with the audit line
  local batch = how.batch or durable.batch()
  if to == "approved" then
    -- what is approved is bound here: execute checks it (approval.lua)
    local ok, msg = require("shannot.session.approval").seal(s, M.reader(s), batch)
    if not ok then return nil, err.env("cannot seal the approval of %s: %s", s.id, msg) end
  elseif s.status == "approved" and (to == "pending" or to == "expired") then
    s.approval = nil  -- revoked or expired: the seal approves nothing any more
  end
  s.status = to
  s.history[#s.history + 1] = { at = iso(now or os.time()), status = to, note = note }
  local ok, serr = M.save(s, nil, nil, batch)
  if not ok then return nil, serr end
  local event = (from == "approved" and to == "pending") and "revoked" or to
  require("shannot.session.audit_event").session({ what = event, session = s, config = how.config, extra = how.extra,
    actor = how.actor, client = how.client, warn = how.warn, batch = batch })
  batch:commit()  -- no line written: the directory alone
  return true
end

-- A pending session, and an approved one no execute has started, expire
-- with their TTL: an approval is not a standing order.  now_iso: now as
-- ISO 8601, made once by a caller that asks this of many sessions.
function M.is_expired(s, now, now_iso)
  local open = s.status == "pending" or (s.status == "approved" and s.execution == nil)
  if not open then return false end
  -- ISO 8601 UTC times of one width compare as strings (a listing asks
  -- this of every session, now_iso made once for all of them)
  if type(s.expires_at) == "string" and s.expires_at:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") then
    return (now_iso or iso(now or os.time())) >= s.expires_at
  end
  local t = parse_iso(s.expires_at)
  return t ~= nil and (now or os.time()) >= t
end

local integers = json.integers

---------------------------------------------------------------------------
-- The schema of session.json: every field anything reads, checked before
-- anything is done, so a damaged or hand-edited file is one line naming
-- the field, never a traceback halfway through an execute.
---------------------------------------------------------------------------

-- A rule: a kind name ("string", "integer", "boolean", "number", "hash",
-- "table"), a table {list = rule}, {fields = {name = rule}}, {one_of =
-- {...}}; `opt(rule)` lets the field be absent (or null).
local function opt(rule) return { optional = rule } end
-- one of a list of values (looked up in a set: checked at every read)
local function one_of(list)
  local set = {}
  for _, x in ipairs(list) do set[x] = true end
  return { one_of = list, set = set }
end

local STATE = { fields = {
  exists = opt("boolean"), type = opt("string"), mode = opt("integer"), uid = opt("integer"),
  gid = opt("integer"), hash = opt("hash"), size = opt("integer"), link = opt("string"),
  stored = opt("boolean"), content = opt("string"), mtime_sec = opt("integer"),
  mtime_nsec = opt("integer"), hardlink = opt("string"), xattrs = opt("xattrs"),
  digest = opt("hash"), count = opt("integer"), bytes = opt("integer"),
} }

local OPERATION = { fields = {
  id = "integer",
  kind = one_of({ "write", "mkdir", "replace_dir", "symlink", "mkfifo", "link", "delete", "chmod", "chown",
    "xattr", "touch", "rename", "query", "exec" }),
  path = opt("path"), decision = opt(one_of({ "approve", "deny", "review" })),
  danger = opt("string"), reason = opt("string"), new = opt(STATE), base = opt(STATE),
  from = opt("path"), from_base = opt(STATE),
  answer = opt({ fields = { code = "integer", stdout = opt("string"), sha256 = "hash" } }),
  argv = opt({ list = "string" }), cwd = opt("string"),
} }

local CHECKPOINT_ENTRY = { fields = {
  path = "string", exists = "boolean", type = opt("string"), mode = opt("integer"), uid = opt("integer"),
  gid = opt("integer"), hash = opt("hash"), size = opt("integer"), link = opt("string"),
  op = opt("integer"), below = opt("integer"), mtime_sec = opt("integer"),
  mtime_nsec = opt("integer"), xattrs = opt("xattrs"), moved_to = opt("string"), moved_from = opt("string"),
} }

local SCHEMA = { fields = {
  id = "string", name = opt("string"), status = one_of(M.STATUSES), created_at = "string",
  expires_at = "string", target = opt("string"), profile = opt("string"), command = opt({ list = "string" }),
  exit_code = opt("integer"), signal = opt("string"), timed_out = opt("boolean"),
  operations = opt({ list = OPERATION }), operation_count = opt("integer"), counts = opt("table"),
  worst_danger = opt(one_of({ "safe", "caution", "danger" })),
  checkpoint = opt({ fields = { created_at = opt("string"), entries = opt({ list = CHECKPOINT_ENTRY }),
    count = opt("integer"),
    dir_times = opt({ list = { fields = { path = "string", mtime_sec = "integer", mtime_nsec = "integer" } } }) } }),
  results = opt({ list = { fields = { id = "integer", ok = "boolean", error = opt("string") } } }),
  history = opt({ list = { fields = { at = "string", status = "string", note = opt("string") } } }),
  approval = opt({ fields = { digest = "string", target = opt("string"), operations = opt({ list = "string" }) } }),
  execution = opt("table"), skipped = opt("table"), ignored = opt("integer"),
  where = opt({ fields = { name = "string", user = opt("string"), host = "string", port = opt("integer"),
    fingerprint = opt("string"), key_file = opt("string") } }),
  fleet_run = opt("string"),
  script = opt({ fields = { sha256 = "hash", size = "integer", name = "string" } }),
  rationale = opt("string"),
  client = opt({ fields = { name = "string", version = "string" } }),
  dir_times = opt({ list = { fields = { path = "string", mtime_sec = "integer", mtime_nsec = "integer",
    base_sec = opt("integer"), base_nsec = opt("integer") } } }),
} }

local KINDS = {
  string = function(v) return type(v) == "string" end,
  integer = function(v) return math.type(v) == "integer" end,
  number = function(v) return type(v) == "number" end,
  boolean = function(v) return type(v) == "boolean" end,
  table = function(v) return type(v) == "table" end,
  hash = function(v) return type(v) == "string" and #v == 64 and v:find("^[0-9a-f]+$") ~= nil end,
  -- a path an operation acts on, as a capture writes it: absolute and
  -- clean, so no consumer (execute, rollback, shell) can be led outside
  -- by "..", "." or an empty component
  path = function(v)
    if type(v) ~= "string" or v:sub(1, 1) ~= "/" or v:find("\0", 1, true) then return false end
    if v == "/" then return true end
    if v:sub(-1) == "/" or v:find("//", 1, true) then return false end
    -- a "." or ".." component: between two slashes, or after the last
    return not (v:find("/%.%.?/") or v:find("/%.%.?$"))
  end,
  -- extended attributes: names of the kept namespaces, values in even hex
  xattrs = function(v)
    if type(v) ~= "table" then return false end
    for name, value in pairs(v) do
      if type(name) ~= "string" or not require("shannot.xattrs").kept(name) or type(value) ~= "string"
        or #value % 2 ~= 0 or not value:find("^[0-9a-f]*$") then
        return false
      end
    end
    return true
  end,
}
local KIND_WORDS = { string = "a string", integer = "an integer", number = "a number", boolean = "true or false",
  table = "an object", hash = "a SHA-256 (64 hex digits)",
  path = 'a clean absolute path (no ".", ".." or empty component)',
  xattrs = "extended attributes (kept names, hex values)" }

-- required(rule) -> the names of a {fields =} rule's fields that are not
-- optional (found once: the rules are constants)
local REQUIRED = setmetatable({}, { __mode = "k" })
local function required(rule)
  local list = REQUIRED[rule]
  if not list then
    list = {}
    for name, r in pairs(rule.fields) do
      if not (type(r) == "table" and r.optional) then list[#list + 1] = name end
    end
    table.sort(list)
    REQUIRED[rule] = list
  end
  return list
end

-- validator(rule) -> check(v) -> nil | what is wrong, where (the path of
-- the field below v: "", ".new.mode", "[2].at").  Each rule becomes a
-- function once (the rules are constants), so reading a record does not
-- dispatch on the rule's shape at every field: 100 000 operations are
-- checked at every read.  The path is built only on the way out of a
-- failure.
local VALIDATORS = setmetatable({}, { __mode = "k" })
local function validator(rule)
  local f = VALIDATORS[rule]
  if f then return f end
  if type(rule) == "table" and rule.optional then
    local inner = validator(rule.optional)
    f = function(v)
      if v == nil or v == json.null then return nil end
      return inner(v)
    end
  elseif type(rule) == "string" then
    local is, words = KINDS[rule], "must be " .. KIND_WORDS[rule]
    f = function(v)
      if not is(v) then return words, "" end
    end
  elseif rule.one_of then
    local set, choices = rule.set, table.concat(rule.one_of, ", ")
    f = function(v)
      if set[v] then return nil end
      return string.format('must be one of %s, not "%s"', choices, text.inert(tostring(v))), ""
    end
  elseif rule.list then
    local item = validator(rule.list)
    f = function(v)
      if type(v) ~= "table" then return "must be a list", "" end
      for i, x in ipairs(v) do
        local bad, at = item(x)
        if bad then return bad, "[" .. i .. "]" .. at end
      end
    end
  elseif rule.fields then
    local fields, must = {}, required(rule)
    for name, r in pairs(rule.fields) do fields[name] = validator(r) end
    f = function(v)
      if type(v) ~= "table" then return "must be an object", "" end
      -- the fields there are, then the ones that must be (most are
      -- optional and absent: an operation has a third of its schema's)
      for name, x in pairs(v) do
        local field = fields[name]
        if field then
          local bad, at = field(x)
          if bad then return bad, "." .. name .. at end
        end
      end
      for _, name in ipairs(must) do
        if v[name] == nil then return (fields[name](nil)), "." .. name end
      end
    end
  else
    f = function() end
  end
  VALIDATORS[rule] = f
  return f
end

local function check(v, rule)
  return validator(rule)(v)
end

-- problem(v, rule, where) -> "field WHERE... what is wrong" | nil
local function problem(v, rule, where)
  local bad, at = check(v, rule)
  if not bad then return nil end
  local path = (where .. at):gsub("^%.", "")
  return string.format("field %s %s", path, bad)
end

-- Fields an operation of a kind cannot do without.
local NEEDS = {
  rename = { { "path", "string" }, { "from", "string" }, { "from_base", "table" }, { "base", "table" },
    { "new", "table" } },
  query = { { "argv", "table" }, { "answer", "table" } }, exec = { { "argv", "table" } },
}

-- op_problem(op, n) -> what is wrong with operation n | nil (its place
-- named only then: every record of every pass comes through here)
local function op_problem(op, n)
  local bad, at = check(op, OPERATION)
  local where = (bad or NEEDS[op.kind] or op.kind == "rename") and string.format("operations[%d]", n)
  if bad then return string.format("field %s %s", where .. at, bad) end
  for _, need in ipairs(NEEDS[op.kind] or {}) do
    local field, kind = need[1], need[2]
    if type(op[field]) ~= kind then
      return string.format("field %s.%s: a %s operation needs it", where, field, op.kind)
    end
  end
  if op.kind == "rename" and type(op.from_base.digest) ~= "string" then
    return string.format("field %s.from_base.digest: a rename needs it", where)
  end
end

local function validate(s, file)
  if type(s) ~= "table" then return string.format("%s: not a session (a JSON object)", file) end
  local bad = problem(s, SCHEMA, "")
  if bad then return string.format("%s: %s", file, bad) end
  for i, op in ipairs(s.operations or {}) do
    local wrong = op_problem(op, i)
    if wrong then return string.format("%s: %s", file, wrong) end
  end
  if s.operations == nil and s.operation_count == nil then
    return string.format("%s: field operation_count must be an integer", file)
  end
end

-- A record as load() leaves it: integers integral, nulls gone, names
-- that are not UTF-8 back from their hex.
-- (line: the record's text, when there is one: a line without "null"
-- has no null to drop, one without "_hex" no name to restore)
local function settle_op(op, line)
  if type(op.argv) == "table" then json.array(op.argv) end
  if not line or line:find("null", 1, true) then drop_nulls(op) end
  if not line or line:find("_hex", 1, true) then restore_op(op) end
  return op
end

-- "FILE:N" (FILE alone for a record read by its offset: no line count)
local function record_name(path, n)
  return n and (path .. ":" .. n) or path
end

-- json.decode's, the record named by its file and line only when wrong
local function decode_json(line, path, n)
  local v = json.decode(line)
  if v ~= nil then return v end
  return json.decode(line, record_name(path, n))
end

-- decoder(rule [, finish]) -> decode(line, path [, n]) for lines.each
local function decoder(rule, finish)
  return function(line, path, n)
    local v, jerr = decode_json(line, path, n)
    if v == nil then return nil, jerr end
    if type(v) == "table" then
      integers(v)  -- (in C: every pass of execute reads each record)
    end
    local bad
    if rule == OPERATION then
      bad = type(v) ~= "table" and "not an operation (a JSON object)" or op_problem(v, n or 0)
    else
      bad = problem(v, rule, "record")
    end
    if bad then return nil, string.format("%s: %s", record_name(path, n), bad) end
    return finish and finish(v, line) or v
  end
end

local RESULT = { fields = { id = "integer", ok = "boolean", error = opt("string") } }
local DECODE = {
  operations = decoder(OPERATION, settle_op),
  results = decoder(RESULT, function(r) drop_nulls(r); return r end),
  checkpoint = decoder(CHECKPOINT_ENTRY, function(e) drop_nulls(e); restore(e); return e end),
  approval = decoder("hash"),
}
-- An approval's line is one digest, as JSON: read as it is written
-- (execute reads one for every operation), the decoder for anything else
local decode_digest = DECODE.approval
DECODE.approval = function(line, path, n)
  local digest = line:match('^"([0-9a-f]+)"$')
  if digest and #digest == 64 then return digest end
  return decode_digest(line, path, n)
end
-- a record of a private copy already checked whole (each's checked)
DECODE.checked_operations = function(line, path, n)
  local v, jerr = decode_json(line, path, n)
  if type(v) ~= "table" then return nil, jerr or (record_name(path, n) .. ": not an operation") end
  return settle_op(integers(v), line)
end
M.decode_operation = DECODE.operations
M.decode_checked_operation = DECODE.checked_operations
M.decode_entry = DECODE.checkpoint

-- reader(s [, f [, tap]]) -> what session.approval reads a session's lists
-- through (it cannot require this module, which requires it): each(name),
-- file(name); tap(op) sees every operation read so
function M.reader(s, f, tap)
  local function each(name)
    local it = M.each(s, name, name == "operations" and f or nil)
    if name ~= "operations" or not tap then return it end
    return function()
      local n, op = it()
      if n then tap(op) end
      return n, op
    end
  end
  return { each = each, file = function(name) return M.file(s, name) end }
end

-- each(s, name [, f [, checked]]) -> iterator of (n, record, offset,
-- length) over one of the session's lists: the one s holds (an old
-- session.json's, or one the Lua API made), else its file, read record
-- by record (through f when given: one handle, read again).  A damaged
-- record ends the loop with err.throw: run it inside err.try (or let main
-- report it).  checked: f is a private copy (private_copy) every record
-- of which was checked already: records are only decoded.
function M.each(s, name, f, checked)
  local held = ({ operations = s.operations, results = s.results, approval = s.approval and s.approval.operations,
    checkpoint = s.checkpoint and s.checkpoint.entries })[name]
  if type(held) == "table" then
    local i = 0
    return function()
      i = i + 1
      if held[i] ~= nil then return i, held[i] end
    end
  end
  local path = M.file(s, name)
  local it
  if f then
    it = lines.each(f, path, checked and name == "operations" and DECODE.checked_operations or DECODE[name])
  else
    local rerr, code
    it, rerr, code = lines.records(path, DECODE[name])
    if not it then
      if code == "ENOENT" and name ~= "operations" then return function() end end
      err.throw(err.usage("session %s: cannot read %s", s.id, tostring(rerr)))
    end
  end
  return it
end

-- operations(s) -> iterator of (n, op): each(s, "operations")
function M.operations(s)
  return M.each(s, "operations")
end

-- check_operations(s) -> true | nil, err: every operation read and
-- checked, none kept (before a front end prints the first of them)
function M.check_operations(s)
  if type(s.operations) == "table" then return true end
  return err.try(function()
    for _ in M.operations(s) do end  -- luacheck: ignore 512
    return true
  end)
end

-- finder(s [, f [, checked]]) -> op(id): the operation of an id | nil.
-- Ids asked in the order the operations are stored in (results,
-- checkpoint entries) cost one read of them all; an id out of that order
-- starts again.  f, checked: as each's.
function M.finder(s, f, checked)
  local it, last = nil, nil
  return function(id)
    if last and last.id == id then return last end
    if not it or (last and last.id > id) then it, last = M.each(s, "operations", f, checked), nil end
    for _, op in it do
      last = op
      if op.id == id then return op end
      if op.id > id then break end
    end
    it = nil
    return nil
  end
end

-- update(s, fn) -> true | nil, err: fn(op) on every operation in order,
-- what it changes kept: in s when s holds the operations (saved with
-- it), else in a new operations file written as they are read and
-- renamed over the old one once complete.  fn may err.throw: nothing
-- is changed then.
function M.update(s, fn, batch)
  if type(s.operations) == "table" then
    return err.try(function()
      for _, op in ipairs(s.operations) do fn(op) end
      return true
    end)
  end
  -- (durable here: a caller need not save the header after; with a
  -- batch, synced and in place, its directory synced with what the
  -- caller writes next)
  local bytes, e = write_operations(s, assert(M.dir(s.id)), function(emit)
    for _, op in M.operations(s) do
      fn(op)
      emit(op)
    end
  end, { max_bytes = M.MAX_JSON_BYTES, batch = batch })
  if bytes and batch then bytes, e = batch:place() end
  if not bytes then
    if batch then batch:abandon() end
    return nil, err.is(e) and e or err.env("cannot write session %s: %s", s.id, tostring(e))
  end
  return true
end

-- list(s, name) -> every record of one list | nil, err (what a caller
-- that needs them all at once holds: a review, the Lua API)
function M.read_list(s, name)
  return err.try(function()
    local out = json.array({})
    for _, rec in M.each(s, name) do out[#out + 1] = rec end
    return out
  end)
end

-- open_list(s, name) -> a handle for each(s, name, f), read again for
-- every pass (closed with <close>) | nil, err
function M.open_list(s, name)
  local f, msg = lines.open(M.file(s, name))
  if not f then return nil, err.usage("session %s: cannot read %s", s.id, tostring(msg)) end
  return f
end

-- private_copy(s, name) -> a handle on a copy of one of the session's
-- lists that has no name (tmpfile: nobody else can open it, let alone
-- change it), for each(s, name, f): what is checked once in it is what
-- every later pass reads | nil, err
function M.private_copy(s, name)
  local from, ferr = M.open_list(s, name)
  if not from then return nil, ferr end
  local copy, cerr = io.tmpfile()
  if not copy then
    from:close()
    return nil, err.env("session %s: cannot copy %s: %s", s.id, M.FILES[name], tostring(cerr))
  end
  while true do
    local chunk = from:read(1 << 20)
    if not chunk then break end
    local ok, werr = copy:write(chunk)
    if not ok then
      from:close(); copy:close()
      return nil, err.env("session %s: cannot copy %s: %s", s.id, M.FILES[name], tostring(werr))
    end
  end
  from:close()
  return copy
end

-- read_json(file, max_bytes, what, id) -> the decoded document of a
-- store file | nil, err: a regular file only (never through a link), at
-- most max_bytes; what ("session", "run") and id name it in the errors
function M.read_json(file, max_bytes, what, id)
  local st = fs.lstat(file)
  if st and st.type ~= "file" then return nil, err.usage("%s: a %s, not a %s file", file, st.type, what) end
  local data, msg, code = fs.read_file(file, max_bytes)
  if not data then
    if code == "ENOENT" then
      return nil, err.usage('unknown %s "%s"; "shannot sessions" lists them', what, id)
    end
    return nil, err.usage("cannot read %s %s", what, msg)
  end
  local doc, jerr = json.decode(data, file)
  if doc == nil then return nil, err.usage("%s", jerr) end
  return doc
end

-- The largest session.json taken now that the operations are beside it
-- (an older one held them, and is read up to MAX_JSON_BYTES).
M.MAX_HEADER_BYTES = 16 * 1024 * 1024

-- materialize(s) -> true | nil, err: the lists in s, read from their files
function M.materialize(s)
  if type(s.operations) ~= "table" then
    local ops, e = M.read_list(s, "operations")
    if not ops then return nil, e end
    s.operations = ops
  end
  if type(s.results) ~= "table" then
    local results, e = M.read_list(s, "results")
    if not results then return nil, e end
    s.results = results
  end
  if type(s.checkpoint) == "table" and s.checkpoint.count and type(s.checkpoint.entries) ~= "table" then
    local entries, e = M.read_list(s, "checkpoint")
    if not entries then return nil, e end
    s.checkpoint.entries = entries
  end
  if type(s.approval) == "table" and type(s.approval.operations) ~= "table" then
    local digests, e = M.read_list(s, "approval")
    if not digests then return nil, e end
    s.approval.operations = digests
  end
  return true
end

-- load(id [, opts]) -> session | nil, err: session.json read and checked
-- against its schema, and (unless opts.header) the lists beside it, each
-- record checked as it is read; nothing is written (current() also
-- expires it).  With opts.header the operations, results, checkpoint
-- entries and approved digests stay on disk: count() and each() reach
-- them.
function M.load(id, opts)
  local dir, e = M.dir(id)
  if not dir then return nil, e end
  local file = dir .. "/session.json"
  local s, rerr = M.read_json(file, M.MAX_JSON_BYTES, "session", id)
  if s == nil then return nil, rerr end
  if type(s) == "table" then integers(s) end
  local wrong = validate(s, file)
  if wrong then return nil, err.usage("%s", wrong) end
  if s.id ~= id then return nil, err.usage('%s: says its id is "%s"', file, text.inert(tostring(s.id))) end
  -- Lists stay lists when saved again, empty ones too.
  for _, key in ipairs({ "operations", "results", "history", "command", "skipped" }) do
    if type(s[key]) == "table" then json.array(s[key]) end
  end
  s.history = s.history or json.array({})
  if type(s.operations) == "table" then
    for _, op in ipairs(s.operations) do settle_op(op) end
  end
  drop_nulls(s)
  if not (opts and opts.header) then
    local ok, merr = M.materialize(s)
    if not ok then return nil, merr end
  end
  return s
end

-- current(id [, opts]) -> session | nil, err: the session as it is now:
-- loaded, and expired (saved and audited, by transition) when its TTL
-- has passed.  What every command acting on or listing sessions uses;
-- load() alone only reads.  opts: now (for tests), config, actor and
-- warn for the expiry's audit event, and header (load's).
function M.current(id, opts)
  local s, e = M.load(id, opts)
  if not s then return nil, e end
  if M.is_expired(s, opts and opts.now) then
    local ok, terr = M.transition(s, "expired", { note = "TTL passed", now = opts and opts.now,
      config = opts and opts.config, actor = opts and opts.actor, client = opts and opts.client,
      warn = opts and opts.warn })
    if not ok then return nil, terr end
  end
  return s
end

-- acquire(id, action, opts) -> lock, session | nil, err: the session
-- under its lock (action: what the lock says is going on), as it is now
-- (current's opts).  What every command changing one session starts with.
function M.acquire(id, action, opts)
  if not M.valid_id(id) then return nil, select(2, M.dir(id)) end
  local lock, lerr = M.lock(id, action)
  if not lock then return nil, lerr end
  local s, e = M.current(id, opts)
  if not s then
    lock:close()
    return nil, e
  end
  return lock, s
end

-- How long a second command waits for a session another one holds.
M.LOCK_WAIT = 3

-- lock(id, action [, wait]) -> a handle (close it: <close>) | nil, err.
-- action: what the holder does, as in "being executed".
-- One command at a time changes a session (execute, rollback, approve,
-- deny, prune): an exclusive flock on DIR/lock, with who holds it and why
-- in DIR/lock.info; a second one waits up to `wait` seconds (default
-- LOCK_WAIT), then fails naming the holder.
function M.lock(id, action, wait)
  local dir, e = M.dir(id)
  if not dir then return nil, e end
  if not fs.is_dir(dir) then return nil, err.usage('unknown session "%s"; "shannot sessions" lists them', id) end
  local f, msg = fs.open(dir .. "/lock", "a", 384)
  if not f then return nil, err.env("cannot lock session %s: %s", id, msg) end
  local sys = require("shannot.core.sys")
  local deadline = sys.monotonic() + (wait or M.LOCK_WAIT)
  while true do
    local ok, lmsg, code = f:lock(true)
    if ok then break end
    if code ~= "EWOULDBLOCK" and code ~= "EAGAIN" then
      f:close()
      return nil, err.env("cannot lock session %s: %s", id, lmsg)
    end
    if sys.monotonic() >= deadline then
      f:close()
      local pid, what = (fs.read_file(dir .. "/lock.info", 256) or ""):match("^(%d+) ([^\n]+)")
      return nil, err.refused("session %s is being %s by pid %s; try again once it is done", id,
        text.inert(what or "changed"), pid or "?")
    end
    sys.sleep(0.05)
  end
  -- who holds the lock, for whoever waits: replaced whole, never synced
  -- (a crash ends the lock it describes; two syncs cost ~1.5 ms each time)
  local info = lines.writer(dir .. "/lock.info", { scratch = true })
  if info and not (info:add_line(string.format("%d %s", sys.ids().pid, action)) and info:commit()) then
    info:abandon()
  end
  return guard(function() f:close() end)
end

-- ids() -> every session id in the store, newest first
function M.ids()
  local names = fs.readdir(M.root()) or {}
  local out = {}
  for _, name in ipairs(names) do
    if M.valid_id(name) then out[#out + 1] = name end
  end
  -- sorted by the C comparison, then turned round: newest first
  table.sort(out)
  local n = #out
  for i = 1, n // 2 do out[i], out[n - i + 1] = out[n - i + 1], out[i] end
  return out
end

local STATUS_SET = {}
for _, st in ipairs(M.STATUSES) do STATUS_SET[st] = true end

-- last(data, needle) -> the position of needle's last occurrence | nil
local function last(data, needle)
  local at, found = 1, nil
  while true do
    local i = data:find(needle, at, true)
    if not i then return found end
    found, at = i, i + 1
  end
end

-- peek(f, size, from_end, needle) -> the 40 bytes after needle's last
-- occurrence in the file's first (from_end: last) KiB, else 16 KiB | nil
local PEEK_SIZES = { 1024, 16384 }
local function peek(f, size, from_end, needle)
  for _, len in ipairs(PEEK_SIZES) do
    local data = f:pread(from_end and math.max(0, size - len) or 0, len)
    local i = data and last(data, needle)
    if i then return data:sub(i + #needle, i + #needle + 40) end
    if len >= size then return nil end
  end
end

-- peek_status(id [, now]) -> the session's status | nil, read without
-- decoding session.json: save() writes its keys sorted, so the top-level
-- "status" is the last one in the file (only target, timed_out and where
-- follow it; history's come before), and a few KiB from the end hold it.
-- A pending or approved session whose expires_at (near the start) has
-- passed and that no execute started reads "expired", as current() would
-- make it (an "execution" far from the start is not seen: such a session
-- may read expired).  For listings that must stay fast (shell
-- completion, bench/complete); anything acting on a session loads it.
function M.peek_status(id, now)
  if not M.valid_id(id) then return nil end
  local f = fs.open(M.root() .. "/" .. id .. "/session.json", "r")
  if not f then return nil end
  local st = f:stat()
  local size = st and st.type == "file" and st.size or 0
  local status = peek(f, size, true, '"status":"')
  status = status and status:match('^([%l_]+)"')
  if status == "pending" or status == "approved" then
    local head = f:pread(0, 4096) or ""
    local expires = (peek(f, size, false, '"expires_at":"') or ""):match('^([^"]*)"')
    local started = status == "approved" and head:find('"execution":{', 1, true)
    -- ISO 8601 UTC times of one width compare as strings
    if expires and not started and os.date("!%Y-%m-%dT%H:%M:%SZ", now or os.time()) >= expires then
      status = "expired"
    end
  end
  f:close()
  return STATUS_SET[status] and status or nil
end

---------------------------------------------------------------------------
-- The listing's cache: what list() shows of every session (its header
-- without dir_times, skipped, approval, rationale and history), one file
-- for the whole store, sealed with the user's approval key (a hand-made
-- or damaged cache is ignored and made anew).  An entry is used only
-- while session.json is the very file it was taken from (inode, size,
-- modification time): one stat per session, as `ls -l` does, instead of
-- reading and checking every header.
---------------------------------------------------------------------------

local function index_file()
  return M.root() .. "/.index"
end

local function stat_key(st)
  return string.format("%d:%d:%d.%d", st.ino or 0, st.size, st.mtime_sec or st.mtime, st.mtime_nsec or 0)
end

local LEFT_OUT = { dir_times = true, skipped = true, history = true, approval = true, rationale = true }

local function summary_of(s)
  local out = {}
  for k, v in pairs(s) do
    if not LEFT_OUT[k] then out[k] = v end
  end
  if type(out.command) == "table" then json.array(out.command) end
  return out
end

-- A summary as the cache gives it back (lua-cjson decodes every number as
-- a float), its numbers integers again (in C: 10 000 of them a listing)
local function integral_summary(s)
  integers(s)
  if type(s.command) == "table" then json.array(s.command) end
  return setmetatable(s, M.SUMMARY)
end

local function read_index()
  local data = fs.read_file(index_file(), M.MAX_JSON_BYTES) or ""
  -- find, not a (.*) capture: matching 4 MiB one character at a time
  -- took longer than reading it
  local nl = data:find("\n", 1, true)
  local seal, body = nl and data:sub(1, nl - 1), nl and data:sub(nl + 1)
  if not seal or not seal:find("^%x+$") then return {} end
  local approval = require("shannot.session.approval")
  local key = approval.key()
  if not key or approval.hmac(key, body) ~= seal then return {} end
  local doc = json.decode(body)
  return type(doc) == "table" and doc or {}
end

local function write_index(entries)
  local approval = require("shannot.session.approval")
  local key = approval.key()
  if not key then return end
  local body = json.encode(entries)
  -- a cache: a store it cannot be written to lists as well without it
  fs.write_atomic(index_file(), approval.hmac(key, body) .. "\n" .. body, 384)
end

-- list(opts) -> sessions, problems (sessions that could not be read):
-- their headers only (load's opts.header; from the listing's cache where
-- session.json did not change), unless opts.full.  opts: current()'s,
-- and status (only those).
function M.list(opts)
  opts = opts or {}
  local out, problems = {}, {}
  local how = setmetatable({ header = not opts.full }, { __index = opts })
  local index = (not opts.full) and read_index() or {}
  local fresh, dirty = {}, false
  local root, now_iso = M.root(), iso(opts.now or os.time())
  for _, id in ipairs(M.ids()) do
    local file = root .. "/" .. id .. "/session.json"
    local st = fs.lstat(file)
    local cached = st and index[id]
    local s, e
    if cached and type(cached.s) == "table" and cached.key == stat_key(st)
      and not M.is_expired(cached.s, opts.now, now_iso) then
      s = integral_summary(cached.s)
      fresh[id] = cached
    else
      s, e = M.current(id, how)
      if s and not opts.full then
        st = fs.lstat(file)
        if st then fresh[id], dirty = { key = stat_key(st), s = summary_of(s) }, true end
      end
    end
    if s then
      if not opts.status or s.status == opts.status then out[#out + 1] = s end
    else
      problems[#problems + 1] = e.message
    end
  end
  if not opts.full then
    for id in pairs(index) do
      if not fresh[id] then dirty = true end
    end
    if dirty then write_index(fresh) end
  end
  return out, problems
end

local FINISHED = { rejected = true, executed = true, failed = true, rolled_back = true }

local function last_change(s)
  local h = s.history[#s.history]
  return parse_iso(h and h.at or s.created_at) or 0
end

-- prune([opts]) -> removed {{id, why}}, problems.  Expired sessions
-- go; so do finished ones untouched for KEEP_FINISHED (their checkpoints
-- with them); pending and approved ones never.  opts: now (for tests),
-- config and actor (for the audit events of the expiries found).
function M.prune(opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local removed, problems = {}, {}
  for _, id in ipairs(M.ids()) do
    local s = M.current(id, { now = now, config = opts.config, actor = opts.actor, header = true })
    local why
    local dir_st = fs.lstat(M.root() .. "/" .. id)
    if not s and not fs.lstat(M.root() .. "/" .. id .. "/session.json") and dir_st
      and now - dir_st.mtime >= M.INCOMPLETE_AFTER then
      why = "incomplete: its run was killed before the session was saved"
    elseif s and s.status == "expired" then
      why = "expired"
    elseif s and FINISHED[s.status] and now - last_change(s) >= M.KEEP_FINISHED then
      why = s.status .. " more than " .. (M.KEEP_FINISHED // 86400) .. " days ago"
    end
    -- never one another command holds (executing it, say)
    local lock = why and M.lock(id, "pruned", 0)
    if lock then
      local ok, msg = fs.rmtree(M.root() .. "/" .. id)
      lock:close()
      if ok then removed[#removed + 1] = { id = id, why = why } else problems[#problems + 1] = msg end
    end
  end
  return removed, problems
end

return M
