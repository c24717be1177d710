-- The audit log: one JSON line for every session event (created, approved,
-- denied, executed, failed, rolled back, expired), whoever caused it (the
-- CLI, the terminal UI, the MCP server), appended under [audit] path and
-- chained by hash, so that `shannot audit --verify` finds an edited, a
-- deleted or an inserted line, a truncated file and a file gone missing.
--
-- A line: one JSON object (sorted keys) and "\n":
--   {actor, event_type, host, payload, pid, prev, seq, session_id,
--    target, timestamp, user}
-- event_type and session_id are record()'s `event` and `session`; target
-- ("local" or a remote's name) and actor likewise; every other field of
-- the event goes into payload.  timestamp: UTC ISO 8601 with milliseconds.
-- seq: the line's number in its file (1, 2, ...).  prev: the SHA-256 (hex)
-- of the previous line of the same file, its bytes without the newline;
-- the first line of every file has prev "" (the genesis value: files are
-- tied together by head.json, below, not by the chain).
--
-- Files in the directory, by [audit] rotation:
--   daily     audit-YYYY-MM-DD.jsonl (the event's UTC date)
--   session   audit-ID.jsonl for session ID; audit-nosession.jsonl for an
--             event without a (valid) session id
--   none      audit.jsonl
--   head.json the anchor: for each live file its line count, size, the hash
--             of its last line and when it was last written (`order`, a
--             counter of every event recorded).  A chain alone cannot show
--             that lines were cut off its end, or that a file went.
--   .lock     writers and readers hold an exclusive flock on it: concurrent
--             processes never interleave lines or fork a chain, and making
--             and pruning files happen whole.
-- After each write, the least recently written files beyond max_files are
-- deleted (never the file just written) and dropped from head.json.
--
-- Crash safety: a line is fsynced before head.json is replaced (atomically);
-- lines past what head.json records are adopted by the next writer when
-- they continue the file's chain.  Anything else in the file being written
-- that head.json does not account for (a shorter file, an unlisted one, a
-- broken tail) makes record() refuse (exit 3) rather than write over the
-- evidence; `shannot audit --verify` says what is wrong, and moving the
-- directory aside starts a new log.  Whoever can write the directory can
-- forge a whole consistent log and head.json: the chain finds partial
-- edits, not a forgery of everything.
local durable = require("shannot.durable")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local list_file = require("shannot.session.lines")
local sys = require("shannot.core.sys")

local M = {}

M.EVENTS = {
  "session_created", "session_approved", "session_denied", "session_executed",
  "session_failed", "session_rolled_back", "session_expired", "session_execute_refused",
  "session_rollback_refused", "session_revoked",
}
M.ACTORS = { "cli", "ui", "mcp", "lua" }
M.HEAD = "head.json"
M.LOCK = ".lock"
M.GENESIS = ""

local FILE_MODE, DIR_MODE = 384, 448  -- 0600, 0700
local MAX_HEAD_BYTES = 1024 * 1024
local MAX_ADOPT_BYTES = 1024 * 1024
-- The fields record() fills in itself; the rest of an event is payload.
local TOP = { event = true, session = true, actor = true, target = true }

local function member(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

-- is_log_file(name) -> true for the names file_name() makes
function M.is_log_file(name)
  return name == "audit.jsonl" or name:match("^audit%-[%w%-]+%.jsonl$") ~= nil
end

-- file_name(rotation, event, now) -> the name of the file the event goes to
function M.file_name(rotation, event, now)
  if rotation == "none" then return "audit.jsonl" end
  if rotation == "session" then
    local id = event.session
    if require("shannot.session.id").valid(id) then return "audit-" .. id .. ".jsonl" end
    return "audit-nosession.jsonl"
  end
  return "audit-" .. os.date("!%Y-%m-%d", math.floor(now)) .. ".jsonl"
end

-- timestamp(now) -> "YYYY-MM-DDTHH:MM:SS.mmmZ"
function M.timestamp(now)
  local secs = math.floor(now)
  local ms = math.min(999, math.floor((now - secs) * 1000))
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", ms)
end

local integers = json.integers

-- decode(text, name) -> value (integers restored) | nil, msg
local function decode(text, name)
  local v, msg = json.decode(text, name)
  if type(v) == "table" then integers(v) end
  return v, msg
end

-- hash(line) -> SHA-256 hex | nil, msg (libcrypto missing)
local function hash(line)
  return require("shannot.store").hash_string(line)
end

local function check_event(event)
  if type(event) ~= "table" then error("audit.record: event must be a table", 3) end
  if not member(M.EVENTS, event.event) then
    error("audit.record: unknown event " .. tostring(event.event), 3)
  end
  if not member(M.ACTORS, event.actor) then
    error("audit.record: actor must be cli, ui, mcp or lua, not " .. tostring(event.actor), 3)
  end
end

local function host_name()
  local u = sys.uname()
  return u and u.nodename or "?"
end

-- The line's object (without prev and seq, which depend on the file).
local function make_line(event, now)
  local ids = sys.ids()
  local payload = {}
  for k, v in pairs(event) do
    if not TOP[k] then payload[k] = v end
  end
  return {
    event_type = event.event, session_id = event.session or json.null,
    actor = event.actor, target = event.target or json.null,
    timestamp = M.timestamp(now), user = ids.user or ("uid " .. ids.uid),
    host = host_name(), pid = ids.pid, payload = payload,
  }
end

---------------------------------------------------------------------------
-- head.json and the lock
---------------------------------------------------------------------------

local function valid_entry(e)
  return type(e) == "table" and math.type(e.lines) == "integer" and math.type(e.size) == "integer"
    and type(e.last) == "string" and math.type(e.order) == "integer"
end

-- read_head(dir) -> head | nil (absent) | nil, err
local function read_head(dir)
  local path = dir .. "/" .. M.HEAD
  local data, msg, code = fs.read_file(path, MAX_HEAD_BYTES)
  if not data then
    if code == "ENOENT" then return nil end
    return nil, err.env("audit: %s", msg)
  end
  local head, derr = decode(data, path)
  if not head then return nil, err.refused("audit: %s", derr) end
  if type(head) ~= "table" or math.type(head.events) ~= "integer" or type(head.files) ~= "table" then
    return nil, err.refused("audit: %s: not an audit head (events, files)", path)
  end
  for name, e in pairs(head.files) do
    if type(name) ~= "string" or not M.is_log_file(name) or not valid_entry(e) then
      return nil, err.refused("audit: %s: bad entry %s", path, tostring(name))
    end
  end
  return head
end

-- head.json's new text, handed to batch (renamed once the line is synced)
local function write_head(dir, head, batch)
  local w, msg = list_file.writer(dir .. "/" .. M.HEAD)
  local ok = w ~= nil
  if ok then ok, msg = w:add_line(json.encode(head)) end
  if ok then ok, msg = w:commit(batch) end
  if not ok then
    if w then w:abandon() end
    return nil, err.env("audit: %s", msg)
  end
  return true
end

-- lock(dir, create) -> File holding the lock | nil, err
local function lock(dir, create)
  local path = dir .. "/" .. M.LOCK
  if not create and not fs.exists(path) then return nil end
  local f, msg = fs.open(path, "a", FILE_MODE)
  if not f then return nil, err.env("audit: %s", msg) end
  local ok, lmsg = f:lock()
  if not ok then
    f:close()
    return nil, err.env("audit: %s: %s", path, lmsg)
  end
  return f
end

---------------------------------------------------------------------------
-- Recording
---------------------------------------------------------------------------

-- Lines a crashed writer appended after head.json was last written: adopted
-- when they continue the chain, or the reason they cannot be.
local function adopt(f, path, entry, size)
  if size - entry.size > MAX_ADOPT_BYTES then
    return nil, string.format("%d bytes past what %s records", size - entry.size, M.HEAD)
  end
  local tail, msg = f:pread(entry.size, size - entry.size)
  if not tail then return nil, msg end
  if tail:sub(-1) ~= "\n" then return nil, "its last line is incomplete" end
  for line in tail:gmatch("([^\n]*)\n") do
    local rec = decode(line, path)
    if type(rec) ~= "table" or rec.seq ~= entry.lines + 1 or rec.prev ~= entry.last then
      return nil, string.format("line %d does not continue the chain %s records", entry.lines + 1, M.HEAD)
    end
    local h, hmsg = hash(line)
    if not h then return nil, hmsg end
    entry.lines, entry.last = entry.lines + 1, h
  end
  entry.size = size
  return true
end

-- The files beyond max_files, least recently written first, not `keep`.
local function excess(head, max, keep)
  local names = {}
  for name in pairs(head.files) do names[#names + 1] = name end
  if #names <= max then return {} end
  table.sort(names, function(a, b) return head.files[a].order < head.files[b].order end)
  local out = {}
  for _, name in ipairs(names) do
    if #names - #out <= max then break end
    if name ~= keep then out[#out + 1] = name end
  end
  return out
end

-- The line at the end of f (the log file log = {name, path}), checked to
-- continue what head.json records, and head updated for it.
local function write_line(f, log, head, line)
  local path, name = log.path, log.name
  local st, smsg = f:stat()
  if not st then return nil, err.env("audit: %s: %s", path, smsg) end
  local entry = head.files[name]
  if entry == nil and st.size > 0 then
    return nil, err.refused("audit: %s is not listed in %s; see shannot audit --verify", path, M.HEAD)
  end
  entry = entry or { lines = 0, size = 0, last = M.GENESIS, order = 0 }
  if st.size < entry.size then
    return nil, err.refused("audit: %s is shorter than %s records (truncated?); see shannot audit --verify",
      path, M.HEAD)
  end
  if st.size > entry.size then
    local ok, why = adopt(f, path, entry, st.size)
    if not ok then
      return nil, err.refused("audit: %s: %s; see shannot audit --verify", path, why)
    end
  end
  line.seq, line.prev = entry.lines + 1, entry.last
  local text = json.encode(line)
  local h, hmsg = hash(text)
  if not h then return nil, err.env("audit: cannot hash a line: %s", hmsg) end
  local ok, wmsg = f:write(text .. "\n")
  if not ok then return nil, err.env("audit: %s: %s", path, wmsg) end
  head.events = head.events + 1
  head.files[name] = { lines = entry.lines + 1, size = entry.size + #text + 1, last = h, order = head.events }
  return true
end

-- append(log, head, line, batch) -> true | nil, err: the line written
-- to the log file (log = {name, path}), the file handed to batch to be
-- synced
local function append(log, head, line, batch)
  local f, msg = fs.open(log.path, "a", FILE_MODE)
  if not f then return nil, err.env("audit: %s", msg) end
  local ok, werr = write_line(f, log, head, line)
  if not ok then
    f:close()
    return nil, werr
  end
  batch:file(f, log.path)
  return true
end

-- record(cfg, event [, now [, batch]]) -> true | nil, err
-- event: {event = one of M.EVENTS, actor = "cli"|"ui"|"mcp"|"lua", session = ID,
-- target = T, ...payload fields}; now: seconds since the epoch (tests);
-- batch (durable.lua's): what the caller wrote just before (a session's
-- renamed files), made durable in the same commit as the line.  Does
-- nothing when [audit] enabled is false (the caller commits its batch).
function M.record(cfg, event, now, batch)
  local a = cfg.values.audit
  if not a.enabled then return true end
  check_event(event)
  local ok, msg = fs.mkdir_p(a.path, DIR_MODE)
  if not ok then return nil, err.env("audit: cannot make the audit directory %s", msg) end
  local held <close>, lerr = lock(a.path, true)
  if not held then return nil, lerr end
  now = now or sys.time()  -- after the wait: times rise down a file
  local line = make_line(event, now)
  local head, herr = read_head(a.path)
  if herr then return nil, herr end
  head = head or { events = 0, files = {} }
  local name = M.file_name(a.rotation, event, now)
  batch = batch or durable.batch()
  local done, aerr = append({ name = name, path = a.path .. "/" .. name }, head, line, batch)
  if not done then return nil, aerr end
  local gone = excess(head, a.max_files, name)
  for _, old in ipairs(gone) do head.files[old] = nil end
  local wrote, werr = write_head(a.path, head, batch)
  -- the line is synced before head.json is renamed over (place syncs
  -- every file first), as it was when each was synced alone
  if wrote then wrote, werr = batch:commit() end
  if not wrote then
    batch:abandon()
    return nil, err.is(werr) and werr or err.env("audit: %s", werr)
  end
  for _, old in ipairs(gone) do fs.remove(a.path .. "/" .. old) end
  return true
end

---------------------------------------------------------------------------
-- Reading and verifying
---------------------------------------------------------------------------

-- The log files present in dir, sorted by name (nil when dir is absent).
local function log_files(dir)
  local names, msg, code = fs.readdir(dir)
  if not names then
    if code == "ENOENT" then return {} end
    return nil, err.env("audit: %s", msg)
  end
  local out = {}
  for _, n in ipairs(names) do
    if M.is_log_file(n) then out[#out + 1] = n end
  end
  table.sort(out)
  return out
end

-- Splits a file into lines; `partial` is the text after the last newline.
local function split(data)
  local lines, pos = {}, 1
  while true do
    local nl = data:find("\n", pos, true)
    if not nl then break end
    lines[#lines + 1] = data:sub(pos, nl - 1)
    pos = nl + 1
  end
  local partial = pos <= #data and data:sub(pos) or nil
  return lines, partial
end

-- Checks one file's chain; -> lines checked, problem | nil
local function check_chain(name, lines, partial)
  local prev = M.GENESIS
  local records, hashes = {}, {}
  for i, line in ipairs(lines) do
    local rec = decode(line, name)
    if type(rec) ~= "table" or math.type(rec.seq) ~= "integer" or type(rec.prev) ~= "string" then
      return i - 1, { line = i, kind = "edited", message = string.format("line %d is not an audit record", i) }
    end
    records[i] = rec
    if rec.seq > i then
      return i - 1, { line = i, kind = "deleted",
        message = string.format("line %d was deleted (the line found there is line %d)", i, rec.seq) }
    elseif rec.seq < i then
      -- Line i-1 claims this line's place and this line still fits before
      -- it: line i-1 is the one put in; otherwise this one (a copy, say).
      local at = i
      if rec.seq == i - 1 and records[i - 1].seq == i - 1 and line ~= lines[i - 1]
        and rec.prev == (hashes[i - 2] or M.GENESIS) then
        at = i - 1
      end
      return at - 1, { line = at, kind = "inserted",
        message = string.format("line %d was inserted (it does not belong to the chain)", at) }
    elseif rec.prev ~= prev and i == 1 then
      return 0, { line = 1, kind = "edited", message = "line 1 was edited (its prev is not the genesis value)" }
    elseif rec.prev ~= prev then
      return i - 2, { line = i - 1, kind = "edited",
        message = string.format("line %d was edited (line %d records a different hash for it)", i - 1, i) }
    end
    prev = assert(hash(line))
    hashes[i] = prev
  end
  if partial then
    local n = #lines + 1
    return #lines, { line = n, kind = "truncated",
      message = string.format("the file is truncated: line %d ends without a newline", n) }
  end
  return #lines, nil, prev
end

-- Checks a whole file, and against its head.json entry when there is a
-- head.json.
local function check_file(dir, name, head)
  local path = dir .. "/" .. name
  local data, msg = fs.read_file(path)
  if not data then return 0, { kind = "unreadable", message = msg } end
  local lines, partial = split(data)
  local n, problem, last = check_chain(name, lines, partial)
  if problem or not head then return n, problem end
  local entry = head.files[name]
  if entry == nil then
    return n, { kind = "inserted", line = n > 0 and 1 or nil,
      message = string.format("the file is not listed in %s (inserted, or %s replaced)", M.HEAD, M.HEAD) }
  end
  if n < entry.lines then
    return n, { line = n + 1, kind = "truncated",
      message = string.format("the file is truncated: it ends after line %d, %s records %d lines", n, M.HEAD,
        entry.lines) }
  end
  if n > entry.lines then
    return n, { line = entry.lines + 1, kind = "inserted",
      message = string.format("line %d was inserted: %s records %d lines", entry.lines + 1, M.HEAD, entry.lines) }
  end
  if n > 0 and last ~= entry.last then
    return n, { line = n, kind = "edited",
      message = string.format("line %d was edited (%s records a different hash for it)", n, M.HEAD) }
  end
  return n
end

-- verify(cfg) -> report: {ok, dir, events, files, problem}
-- problem (the first break; nil when ok): {file, path, line, kind, message}
-- kind: edited | deleted | inserted | truncated | missing | head | unreadable
function M.verify(cfg)
  local dir = cfg.values.audit.path
  local report = { dir = dir, events = 0, files = 0, ok = true }
  local _ <close> = lock(dir, false)  -- without it (read-only) still worth trying
  local function broken(file, problem)
    report.ok = false
    problem.file = file
    problem.path = file and (dir .. "/" .. file)
    report.problem = problem
    return report
  end
  local names, nerr = log_files(dir)
  if not names then return broken(nil, { kind = "unreadable", message = nerr.message }) end
  local head, herr = read_head(dir)
  if herr then return broken(nil, { kind = "head", message = (herr.message:gsub("^audit: ", "")) }) end
  local files = head and head.files or {}
  for _, name in ipairs(names) do
    local n, problem = check_file(dir, name, head)
    if problem then return broken(name, problem) end
    report.events, report.files = report.events + n, report.files + 1
  end
  local present = {}
  for _, name in ipairs(names) do present[name] = true end
  local listed = {}
  for name in pairs(files) do listed[#listed + 1] = name end
  table.sort(listed)
  for _, name in ipairs(listed) do
    if not present[name] then
      return broken(name, { kind = "missing",
        message = string.format("the file is missing: %s lists it with %d lines", M.HEAD, files[name].lines) })
    end
  end
  if not head and #names > 0 then
    return broken(M.HEAD, { kind = "head",
      message = M.HEAD .. " is missing: truncation and missing files cannot be checked" })
  end
  return report
end

-- describe(problem) -> "PATH:LINE: message"
function M.describe(problem)
  if not problem.path then return problem.message end
  local where = problem.path
  if problem.line then where = where .. ":" .. problem.line end
  return where .. ": " .. problem.message
end

-- events(cfg, {session = ID}) -> list of records sorted by time, problems
-- (lines that are not JSON, as "FILE:LINE: ..." strings)
function M.events(cfg, opts)
  opts = opts or {}
  local dir = cfg.values.audit.path
  local _ <close> = lock(dir, false)
  local names, nerr = log_files(dir)
  if not names then return {}, { nerr.message } end
  local list, problems = {}, {}
  for _, name in ipairs(names) do
    local path = dir .. "/" .. name
    local data, msg = fs.read_file(path)
    if not data then
      problems[#problems + 1] = msg
    else
      local lines = split(data)
      for i, line in ipairs(lines) do
        local rec, derr = decode(line, path)
        if type(rec) ~= "table" then
          problems[#problems + 1] = derr or string.format("%s:%d: not an audit record", path, i)
        elseif opts.session == nil or rec.session_id == opts.session then
          rec._file, rec._line = name, i
          list[#list + 1] = rec
        end
      end
    end
  end
  table.sort(list, function(x, y)
    local tx, ty = tostring(x.timestamp), tostring(y.timestamp)
    if tx ~= ty then return tx < ty end
    if x._file ~= y._file then return x._file < y._file end
    return x._line < y._line
  end)
  for _, rec in ipairs(list) do rec._file, rec._line = nil, nil end
  return list, problems
end

return M
