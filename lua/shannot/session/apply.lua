-- Execute and rollback (DESIGN §5): apply exactly the approved operations
-- of a session, after a drift check and a checkpoint of everything they
-- touch, without following a symlink anywhere on a path; and put every
-- path back from that checkpoint.  A kill at any point leaves a state
-- that rollback restores exactly: the checkpoint is durable before the
-- first change, every replacement is a rename, and rollback accepts each
-- path either as it was or as the operation makes it.
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local under = paths.under
local session = require("shannot.session")
local text = require("shannot.text")

local audit_event = require("shannot.session.audit_event")
local guard = require("shannot.guard")
local xattrs = require("shannot.xattrs")
local M = {}

-- A deferred command runs at most this long on the host.
M.EXEC_TIMEOUT = 3600
local FILE_KINDS = { write = true, mkdir = true, replace_dir = true, symlink = true, mkfifo = true, link = true,
  xattr = true, touch = true, rename = true,
  delete = true, chmod = true, chown = true }

-- same(a, b): the same file system object, as far as the session cares.
function M.same(a, b)
  if not a.exists or not b.exists then return a.exists == b.exists end
  if a.type ~= b.type or a.mode ~= b.mode or a.uid ~= b.uid or a.gid ~= b.gid then return false end
  if a.type == "file" then return a.hash == b.hash end
  if a.type == "link" then return a.link == b.link end
  return true
end

-- some(list) -> the first items of a list of paths said in one line,
-- then how many more: a refusal over 100 000 paths stays a line to read
local SOME = 10
local function some(list)
  if #list <= SOME then return table.concat(list, "; ") end
  return table.concat(list, "; ", 1, SOME) .. string.format("; and %d more", #list - SOME)
end

local function describe_state(s)
  if not s.exists then return "absent" end
  local d = string.format("%s %04o %d:%d", s.type, s.mode or 0, s.uid or -1, s.gid or -1)
  if s.hash then d = d .. " sha256:" .. s.hash:sub(1, 12) end
  if s.link then d = d .. " -> " .. text.inert(s.link) end
  return d
end
M.describe_state = describe_state

-- The state an operation leaves its path in.
function M.expected(op)
  if op.kind == "delete" then return { exists = false } end
  local n = op.new or {}
  local b = op.base or {}
  if op.kind == "chmod" or op.kind == "chown" or op.kind == "xattr" or op.kind == "touch" then
    return { exists = true, type = b.type, mode = n.mode, uid = n.uid, gid = n.gid, hash = b.hash, link = b.link }
  end
  return { exists = true, type = n.type, mode = n.mode, uid = n.uid, gid = n.gid, hash = n.hash, link = n.link }
end

-- Whether a directory no applied operation changed still has the time
-- the capture saw (nobody else changed it since), and the script gave it
-- another (made and removed a temp file there, as dpkg in updates/).
local function untouched_since(ex, t)
  if not t.base_sec or (t.mtime_sec == t.base_sec and t.mtime_nsec == t.base_nsec) then return false end
  local now = ex:state(t.path)
  return now ~= nil and now.exists and now.type == "dir" and now.mtime_sec == t.base_sec
    and (t.base_nsec == nil or now.mtime_nsec == nil or now.mtime_nsec == t.base_nsec)
end

-- changed_dirs(ex, dir_times, parents) -> the directories that stay
-- whose time execute sets: those an applied operation changed (parents:
-- the set of their directories), and those the script changed that
-- nobody has since; the others keep the host's time, whatever it is by
-- now.
local function changed_dirs(ex, dir_times, parents)
  local out = {}
  for _, t in ipairs(dir_times or {}) do
    if parents[t.path] or untouched_since(ex, t) then out[#out + 1] = t end
  end
  return out
end

local function parent_of(p)
  local parent = p:match("^(.*)/[^/]*$")
  return parent == "" and "/" or parent
end

-- Temp files sit beside the paths they replace, named after the session.
function M.temp_prefix(s)
  return ".shannot-" .. s.id:sub(-4) .. "-"
end

-- executor(s, opts) -> the executor of the session's target | nil, err
function M.executor(s, opts)
  if opts and opts.executor then return opts.executor end
  local remote = require("shannot.remote")
  local target, w = s.target or "local", s.where
  local executor = require("shannot.executor")
  local ex, xerr
  if type(w) == "table" and target ~= "local" and not remote.configured(target, opts and opts.config) then
    -- its name is not (or no longer) in the config: the address recorded
    -- at capture (the host key is still checked against known_hosts, and
    -- below); a fleet run's host may come from an inventory, never from
    -- the config
    if opts and opts.warn and not s.fleet_run then
      opts.warn('the remote "%s" is no longer configured; connecting to %s, where session %s was captured',
        text.inert(tostring(w.name)), text.inert(remote.display(w)), s.id)
    end
    ex, xerr = executor.open({ target = w.name, remote = { name = w.name, host = w.host, port = w.port,
      user = w.user, key_file = w.key_file } })
  else
    ex, xerr = executor.for_target(target, opts and opts.config)
  end
  if not ex then return nil, xerr end
  -- the host the session was captured on, and no other: a remote
  -- re-pointed since (another host, port, user or key) is refused
  if type(w) == "table" and ex.location then
    local now = ex:location()
    for _, k in ipairs({ "host", "port", "user", "fingerprint" }) do
      if w[k] ~= nil and now[k] ~= w[k] then
        ex:close()
        local display = require("shannot.remote").display
        return nil, err.refused('the remote "%s" now points to %s (%s), the session was captured on %s (%s); ' ..
          "nothing was done", text.inert(tostring(w.name)), text.inert(display(now)), tostring(now.fingerprint),
          text.inert(display(w)), tostring(w.fingerprint))
      end
    end
  end
  return ex
end

---------------------------------------------------------------------------
-- Checkpoint
---------------------------------------------------------------------------

-- passes(s, f) -> pass(fn): fn(op, k) for each approved file operation,
-- k counting them, read again from the session's operations (through
-- f, one handle) at every call: a session of 100 000 operations is never
-- all in memory.  -> how many there were
local function passes(s, f)
  return function(fn)
    local k = 0
    for _, op in session.each(s, "operations", f, f ~= nil) do
      if FILE_KINDS[op.kind] and op.decision == "approve" then
        k = k + 1
        fn(op, k)
      end
    end
    return k
  end
end

-- at_or_below(path, roots) -> whether path is one of roots or below one
local function at_or_below(path, roots)
  for _, r in ipairs(roots) do
    if under(path, r) then return true end
  end
  return false
end

-- A rename's two entries: its source (put back by moving it back, never
-- copied) and its destination (absent before).
local function moved_entries(op)
  local b = op.from_base
  return { { path = op.from, exists = true, type = b.type, mode = b.mode, uid = b.uid, gid = b.gid, hash = b.hash,
    link = b.link, op = op.id, moved_to = op.path },
    { path = op.path, exists = false, op = op.id, moved_from = op.from } }
end

-- parent_times(ex, parents, seen, dir_times) -> {{path, mtime_sec,
-- mtime_nsec}}: the modification times of the directories the operations
-- change entries of (parents, in the order met; not entries themselves),
-- which rollback puts back last: a new file in /etc moves the time of
-- /etc, and rollback undoes all of it.
local function parent_times(ex, parents, seen, dir_times)
  local out, done = {}, {}
  local function add(dir)
    if done[dir] or seen[dir] then return end
    done[dir] = true
    local st = ex:state(dir)
    if st and st.exists and st.type == "dir" and st.mtime_sec then
      out[#out + 1] = { path = dir, mtime_sec = st.mtime_sec, mtime_nsec = st.mtime_nsec or 0 }
    end
  end
  for _, dir in ipairs(parents) do add(dir) end
  for _, t in ipairs(dir_times) do add(t.path) end
  return out
end

-- Whether an operation empties a directory: below it every base is
-- "absent" by construction (the dry-run saw only the new tree), not by
-- observation.
local function replaces_dir(op)
  return op.kind == "replace_dir" or (op.base and op.base.exists and op.base.type ~= (op.new or {}).type)
end

local function below_any(path, prefixes)
  for _, p in ipairs(prefixes) do
    if path:sub(1, #p) == p then return true end
  end
  return false
end

-- Why the tree a rename moves is not the one reviewed | nil: the whole
-- tree compared, not just its top (a file changed inside it since would
-- move along unseen).
local function source_drift(ex, op)
  local entries, merr = ex:manifest(op.from)
  if not entries then return merr.message end
  if #entries == 0 then return "the tree to move is gone" end
  local digest, count = require("shannot.executor.common").tree_digest(entries, op.from)
  if digest ~= op.from_base.digest then
    return string.format("the tree to move changed since the dry-run (%d entries then, %d now)",
      op.from_base.count or 0, count)
  end
end

-- drifted(ex, op, met, out): what of op's paths differs from the dry-run,
-- added to out as {path, base, now} or {path, why}.  met: {replaced =
-- survey()'s, moved = the renames' sources met so far (below one, nothing
-- was there), gathered here}.
local function drifted(ex, op, met, out)
  local now, msg
  local moved = met.moved
  if below_any(op.path, met.replaced) or at_or_below(op.path, moved) then
    now = op.base or { exists = false }
  else
    now, msg = ex:state(op.path)
  end
  if not now then
    out[#out + 1] = { path = op.path, why = msg.message }
  elseif not M.same(op.base or { exists = false }, now) then
    out[#out + 1] = { path = op.path, base = op.base, now = now }
  end
  if op.kind == "rename" then
    local why = source_drift(ex, op)
    if why then out[#out + 1] = { path = op.from, why = why } end
    moved[#moved + 1] = op.from
  end
end

-- checkpoint(ex, pass, how) -> count, parent times | nil, err | false,
-- drift: the original of every touched path (and of every entry below a
-- directory an operation removes or replaces), contents in how.cpdir,
-- entries one per line in how.file, durable before it returns.  The same
-- pass checks each operation for drift first (one reading of the
-- operations fewer): once one has drifted, nothing more is saved and the
-- rest only checked, and the checkpoint is dropped (drift: every path
-- that changed).  how: cpdir, file, dir_times, progress, total
-- (operations), replaced (survey()'s), batch (durable.lua's: the list is
-- left in place in it, its directory not yet synced).
local function checkpoint(ex, pass, how)
  local progress = how.progress
  local w, werr = require("shannot.session.lines").writer(how.file)
  if not w then return nil, err.env("checkpoint: %s", werr) end
  local seen, made, moved, parents, met = {}, {}, {}, {}, {}
  local drift, drift_met = {}, { replaced = how.replaced, moved = {} }
  local function parent(p)
    if not p then return end
    local dir = parent_of(p)
    if not met[dir] then met[dir], parents[#parents + 1] = true, dir end
  end
  progress:start("checking, saving originals", how.total)
  local ok, e = err.try(pass, function(op)
    progress:add(1, 0, op.path)
    drifted(ex, op, drift_met, drift)
    if #drift > 0 then return end
    parent(op.path)
    parent(op.from)
    if not seen[op.path] then
      local list, msg
      if op.kind == "rename" then
        list = moved_entries(op)
        moved[#moved + 1] = op.from
      elseif at_or_below(op.path, moved) then
        -- where a rename took the host's tree away: nothing there before
        list = { { path = op.path, exists = false, op = op.id } }
      else
        list, msg = ex:originals(op, how.cpdir)
      end
      -- below a directory an earlier operation makes (where a file or a
      -- symlink is now): path cannot exist yet, and the walk to it stops
      -- at that file or link (ENOTDIR, ELOOP)
      if not list and paths.below_one_of(op.path, made) then
        list = { { path = op.path, exists = false, op = op.id } }
      end
      if not list then err.throw(err.refused("checkpoint of %s: %s", text.inert(op.path), msg)) end
      for _, entry in ipairs(list) do
        if not seen[entry.path] then
          seen[entry.path] = true
          local added, aerr = w:add_line(session.encode_entry(entry))
          if not added then err.throw(err.env("checkpoint: %s", aerr)) end
        end
      end
    end
    if op.kind == "mkdir" or op.kind == "replace_dir" then made[op.path] = true end
  end)
  if not ok or #drift > 0 then
    w:abandon()
    if not ok then return nil, e end
    return false, drift
  end
  local synced, serr = ex:sync(how.cpdir)
  if synced then synced, serr = w:commit(how.batch) else w:abandon() end
  -- in place for the seal to read; its directory synced with the header's
  if synced then synced, serr = how.batch:place() end
  if not synced then return nil, err.env("checkpoint: %s", serr) end
  return w.count, parent_times(ex, parents, seen, how.dir_times)
end

-- One line of an answer, as a refusal quotes it.
local function answer_text(code, stdout)
  local first = (stdout or ""):match("^[^\n]*") or ""
  return string.format("exit %s%s", tostring(code), first ~= "" and (' "' .. text.inert(first) .. '"') or "")
end

-- answers_moved(ex, asked) -> the approved questions (query operations,
-- asked) the
-- host now answers differently, each "COMMAND (was ..., now ...)"
function M.answers_moved(ex, asked)
  local queries = require("shannot.capture.queries")
  local out = {}
  for _, op in ipairs(asked) do
    if op.kind == "query" and op.decision == "approve" and not queries.allowed(op.argv) then
      out[#out + 1] = string.format("%s (no question shannot asks the host: not run)",
        text.inert(text.command_line(op.argv or {})))
    elseif op.kind == "query" and op.decision == "approve" then
      local r = ex:exec(op, queries.TIMEOUT)
      local now = { code = r.code or -1, stdout = r.stdout }
      if not queries.same_answer(op, now) then
        out[#out + 1] = string.format("%s (was %s, now %s)", text.inert(text.command_line(op.argv)),
          answer_text(op.answer.code, op.answer.stdout), answer_text(now.code, now.stdout))
      end
    end
  end
  return out
end

local function refuse_status(s)
  if s.status == "expired" then return err.refused("session %s has expired; nothing was done", s.id) end
  if s.status == "pending" then
    return err.refused("session %s is pending: approve it first (shannot approve %s)", s.id, s.id)
  end
  if s.execution and s.status == "approved" then
    return err.refused("an execution of session %s was interrupted; roll it back first (shannot rollback %s)",
      s.id, s.id)
  end
  return err.refused("session %s is %s; only an approved session can be executed", s.id, s.status)
end

-- Runs the approved deferred commands in the order the script called
-- them, each reported, none skipped because another failed (a script's
-- `cmd || true` stays so) unless how.stop_on_failure.  Only when every
-- file operation went through (how.files_failed == 0): they usually act
-- on what was written (restart a service on a new config).  -> how many
-- failed
local function run_deferred(ex, how)
  local failed, stopped_by = 0, nil
  for _, op in ipairs(how.execs) do
    local why_not
    if how.files_failed > 0 then
      why_not = "not run: a file operation failed"
    elseif stopped_by then
      why_not = string.format("not run: deferred command %d failed (--stop-on-deferred-failure)", stopped_by)
    end
    if why_not then
      how.result({ id = op.id, ok = false, not_run = true, error = why_not })
    else
      if how.show_output then how.show_output(op) end
      local r = ex:exec(op, M.EXEC_TIMEOUT, how.show_output ~= nil)
      if not r.ok then
        failed = failed + 1
        if how.stop_on_failure then stopped_by = op.id end
      end
      how.result(r)
      how.step()
    end
  end
  return failed
end

-- deferred_that_ran(s) -> the exec operations execute ran: what a
-- rollback cannot undo
function M.deferred_that_ran(s)
  local ran, out = {}, {}
  for _, r in session.each(s, "results") do
    local not_run = r.not_run or (type(r.error) == "string" and r.error:match("^not run:"))
    if not not_run then ran[r.id] = true end
  end
  if next(ran) == nil then return out end
  for _, op in session.operations(s) do
    if op.kind == "exec" and ran[op.id] then out[#out + 1] = op end
  end
  return out
end

-- A results file written as the operations are applied; a failure found
-- later (a directory's time) rewrites the records it changes.
-- A file operation's result that went well as its line, as
-- json.encode_line would write it without looking it over first (one per
-- operation); any other through it.
local function result_line(r)
  local hash, fields = r.hash, 0
  for _ in pairs(r) do fields = fields + 1 end
  if r.ok == true and math.type(r.id) == "integer" and fields == (hash and 3 or 2) and
    (hash == nil or (#hash == 64 and not hash:find("[^0-9a-f]"))) then
    return hash and ('{"hash":"' .. hash .. '","id":' .. r.id .. ',"ok":true}') or ('{"id":' .. r.id .. ',"ok":true}')
  end
  return json.encode_line(r)
end

local function results_writer(s)
  local lines = require("shannot.session.lines")
  local w, msg = lines.writer(session.file(s, "results"))
  if not w then return nil, err.env("cannot write the results of %s: %s", s.id, msg) end
  return w
end

local function amend_results(s, changed)
  if next(changed) == nil then return true end
  -- read whole before the new file is renamed over it
  local w, msg = require("shannot.session.lines").writer(session.file(s, "results"))
  if not w then return nil, msg end
  local ok, e = err.try(function()
    for _, r in session.each(s, "results") do
      local added, aerr = w:add(changed[r.id] or r)
      if not added then err.throw(err.env("%s", aerr)) end
    end
  end)
  if ok == nil and e then w:abandon(); return nil, e.message end
  return w:commit()
end

-- apply_all(ex, pass, ctx) -> failed count, results writer state: every
-- approved file operation applied in order, its result written.
local function apply_all(ex, pass, ctx)
  local failed, stuck, times, parents, timed = 0, {}, {}, {}, {}
  ctx.progress:start("applying", ctx.total, ctx.bytes)
  pass(function(op)
    local done, aerr
    if at_or_below(op.path, stuck) then
      -- what was to go where a tree did not move away would land in it
      done, aerr = nil, err.failed("not run: a rename it depends on failed")
    else
      done, aerr = ex:apply(op, ctx)
    end
    if not done and op.kind == "rename" then
      stuck[#stuck + 1] = op.from
      stuck[#stuck + 1] = op.path
    end
    -- The state after is the one the operation describes (rollback checks
    -- against M.expected(op)); a write's post-apply hash is its blob's.
    local r = { id = op.id, ok = done == true, error = aerr and aerr.message }
    if done and op.kind == "write" then r.hash = op.new.hash end
    if done then
      parents[parent_of(op.path)] = true
      if op.from then parents[parent_of(op.from)] = true end
      -- a directory's modification time, once nothing more is made in it
      if (op.kind == "mkdir" or op.kind == "replace_dir") and op.new.mtime_sec then
        times[#times + 1] = { path = op.path, mtime_sec = op.new.mtime_sec, mtime_nsec = op.new.mtime_nsec }
        timed[op.path] = r
      end
    else
      failed = failed + 1
    end
    ctx.result(r)
    ctx.progress:add(1, op.kind == "write" and op.new.size or 0, op.path)
    ctx.step()
  end)
  ctx.progress:finish()
  return failed, { times = times, parents = parents, timed = timed }
end

-- survey() -> tally, tap: tap(op) for every operation (the seal's check
-- reads them all first) gathers what execute needs before its passes:
-- the approved questions and deferred commands (asked, execs), the
-- directories approved operations empty (replaced), how many approved
-- file operations (total) and their bytes.
local function survey()
  local t = { asked = {}, execs = {}, replaced = {}, total = 0, bytes = 0, done = false }
  return t, function(op)
    t.done = true
    if op.decision ~= "approve" then return end
    if op.kind == "query" then t.asked[#t.asked + 1] = op
    elseif op.kind == "exec" then t.execs[#t.execs + 1] = op
    elseif FILE_KINDS[op.kind] then
      t.total = t.total + 1
      t.bytes = t.bytes + (op.kind == "write" and type(op.new) == "table" and op.new.size or 0)
      if replaces_dir(op) then t.replaced[#t.replaced + 1] = op.path .. "/" end
    end
  end
end

-- operations_handle(s, open) -> the handle every pass reads the
-- operations from (open: session.private_copy or session.open_list) |
-- nil when s holds them (an old session.json) | nil, err
local function operations_handle(s, open)
  if type(s.operations) == "table" then return nil end
  return open(s, "operations")
end

local function header_opts(opts)
  return setmetatable({ header = true }, { __index = opts or {} })
end

local function execute(id, opts)
  local lock <close>, s = session.acquire(id, "executed", header_opts(opts))
  if not lock then return nil, s end
  if s.status ~= "approved" or s.execution then return nil, refuse_status(s) end
  -- a private copy for every pass: what was checked against the seal
  -- (each record whole) is what is applied, whatever happens to the
  -- session's file meanwhile, and the later passes only decode
  local f, ferr = operations_handle(s, session.private_copy)
  if ferr then return nil, ferr end
  local copy <close> = guard(function() if f then f:close() end end)
  local tally, tap = survey()
  local sealed, why = require("shannot.session.approval").check(s, session.reader(s, f, tap))
  if not sealed then
    audit_event.session({ what = "execute_refused", session = s, extra = { reason = why.message },
      config = opts and opts.config, actor = opts and opts.actor, warn = opts and opts.warn })
    -- a damaged record is named as it is, not as a changed approval
    if why.exit ~= const.EXIT.REFUSED then return nil, why end
    return nil, err.refused("session %s was changed after it was approved: %s; nothing was done", s.id, why)
  end
  local dir = assert(session.dir(s.id))
  local pass = passes(s, f)
  local ex, xerr = M.executor(s, opts)
  if not ex then return nil, xerr end
  local _ <close> = guard(function() ex:close() end)
  if not tally.done then
    -- sealed in session.json itself (before the operations moved beside it)
    for _, op in session.each(s, "operations", f) do tap(op) end
  end
  local moved = M.answers_moved(ex, tally.asked)
  if #moved > 0 then
    return nil, err.refused("the host answers differently since the dry-run; nothing was done: %s",
      some(moved))
  end
  local progress = opts and opts.progress or require("shannot.progress").none
  local total, bytes = tally.total, tally.bytes
  local step = require("shannot.testhooks").stepper()  -- a spec's kill -9 after step N
  local cpdir = dir .. "/checkpoint"
  local fresh = not fs.lstat(cpdir)
  local ok, msg = fs.mkdir_p(cpdir, 448)
  if not ok then return nil, err.env("checkpoint: %s", msg) end
  -- the checkpoint's list and the header naming it: synced together, all
  -- in place before anything changes (durable.lua)
  local batch = require("shannot.durable").batch()
  local count, parents = checkpoint(ex, pass, { cpdir = cpdir, file = session.file(s, "checkpoint"),
    dir_times = s.dir_times or {}, progress = progress, total = total, replaced = tally.replaced, batch = batch })
  progress:finish()
  if count == false then
    -- what was saved before the drift was met is of no use
    if fresh then fs.rmtree(cpdir) end
    local out = {}
    for _, d in ipairs(parents) do
      out[#out + 1] = d.why and string.format("%s (%s)", text.inert(d.path), d.why) or
        string.format("%s (was %s, now %s)", text.inert(d.path), describe_state(d.base), describe_state(d.now))
    end
    return nil, err.refused("the host changed since the dry-run; nothing was done: %s", some(out))
  end
  if not count then return nil, parents end
  s.checkpoint = { created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), count = count, dir_times = json.array(parents) }
  s.execution = { started_at = s.checkpoint.created_at }
  ok, msg = require("shannot.session.approval").seal_checkpoint(s, session.reader(s))
  if not ok then return nil, err.env("checkpoint: %s", msg) end
  ok, msg = session.save(s, nil, nil, batch)
  if ok then ok, msg = batch:commit() end
  if not ok then return nil, err.is(msg) and msg or err.env("checkpoint: %s", msg) end
  step()
  local w, werr = results_writer(s)
  if not w then return nil, werr end
  local _ <close> = guard(function() w:abandon() end)
  local function result(r)
    local added, aerr = w:add_line(result_line(r))
    if not added then err.throw(err.env("cannot write the results of %s: %s", s.id, aerr)) end
  end
  local ctx = { blobs = dir .. "/blobs", step = step, temp_prefix = M.temp_prefix(s), progress = progress,
    total = total, bytes = bytes, result = result }
  local failed, after = apply_all(ex, pass, ctx)
  local changed = {}
  for _, fail in ipairs(ex:set_times(after.times)) do
    local r = after.timed[fail.path]
    if r then
      r.ok, r.error = false, "its modification time: " .. fail.error
      changed[r.id] = r
    end
    failed = failed + 1
  end
  -- and the directories that stay, as the script left them (a file
  -- replaced by rename moved their time; the script's changes moved it)
  -- (a time that cannot be set is kept in the session, not a failure of
  -- what the script wrote)
  local stayed = ex:set_times(changed_dirs(ex, s.dir_times, after.parents))
  if #stayed > 0 then s.execution.dir_time_failures = json.array(stayed) end
  for _, fail in ipairs(stayed) do
    if opts and opts.warn then opts.warn("%s: its modification time: %s", text.inert(fail.path), fail.error) end
  end
  local deferred_failed = run_deferred(ex, { execs = tally.execs, result = result, files_failed = failed, step = step,
    stop_on_failure = opts and opts.stop_on_deferred_failure, show_output = opts and opts.show_output })
  -- the results in place (synced) before the header says executed; its
  -- directory synced with the header's and the audit line
  ok, msg = w:commit(batch)
  if ok then ok, msg = batch:place() end
  if ok then ok, msg = amend_results(s, changed) end
  if not ok then return nil, err.env("cannot write the results of %s: %s", s.id, tostring(msg)) end
  s.execution.deferred_failed = deferred_failed
  s.execution.finished_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
  -- failed: the files are not as approved.  A deferred command that failed
  -- leaves the session executed (its files are), with the failure listed.
  local note = failed > 0 and (failed .. " file operation(s) failed") or
    (deferred_failed > 0 and (deferred_failed .. " deferred command(s) failed") or nil)
  ok, msg = session.transition(s, failed == 0 and "executed" or "failed", {
    note = note, config = opts and opts.config, actor = opts and opts.actor, warn = opts and opts.warn, batch = batch })
  batch:commit()  -- (the results' directory, when the transition failed)
  if not ok then return nil, msg end
  if opts and opts.keep_copy and f then
    copy:cancel()
    return s, f
  end
  return s
end

-- execute(id, opts) -> session (its header: session.each reads its
-- operations and results) | nil, err.  opts: config (for the audit log),
-- actor, warn, stop_on_deferred_failure (the deferred commands after a
-- failing one are not run), show_output(op) (called as each deferred
-- command starts; its output then passes through as it comes, as well as
-- being kept in the results), progress (shannot.progress's reporter),
-- keep_copy (also return the private copy of the operations that was
-- checked against the seal and applied, the caller's to close; nil when
-- the session holds them: for session.each(s, "operations", copy, true)).
function M.execute(id, opts)
  return err.try(execute, id, opts)
end

---------------------------------------------------------------------------
-- Rollback
---------------------------------------------------------------------------

-- made_by(s, f) -> whether a path is one the session's file operations
-- made or touched (a tree it moved, all of it), or one of execute's own
-- temp files (an interrupted one's)
local function made_by(s, f)
  local touched, moved, prefix = {}, {}, M.temp_prefix(s)
  for _, op in session.each(s, "operations", f) do
    if op.path and FILE_KINDS[op.kind] then touched[op.path] = true end
    if op.kind == "rename" and op.decision == "approve" then moved[#moved + 1] = op.path end
  end
  return function(path)
    return touched[path] or path:match("([^/]*)$"):sub(1, #prefix) == prefix or at_or_below(path, moved)
  end
end

-- A directory the session made that now holds entries it did not make:
-- removing it at rollback would delete someone else's files.  -> why | nil
local function foreign_below(ex, e, mine)
  local below, err_ = ex:below(e.path)
  if not below then return err_.message end
  local foreign = {}
  for _, p in ipairs(below) do
    if not mine(p) then foreign[#foreign + 1] = p end
  end
  if #foreign == 0 then return nil end
  return string.format("a directory the session made now holds %d entr%s it did not make (%s%s)", #foreign,
    #foreign == 1 and "y" or "ies", text.inert(foreign[1]), #foreign > 1 and ", ..." or "")
end

-- conflicts(ex, s) -> list: a touched path now in neither its
-- checkpointed state nor the state its operation leaves it in, or a
-- directory the session made holding what it did not make.
-- A rename's source entry: fine where the move has not happened (the
-- source as it was, nothing at the destination) or has (the tree at the
-- destination, the source's name free or a directory the session made).
-- -> why not | nil
local function moved_conflict(ex, e, mine)
  local at_src, serr = ex:state(e.path)
  local at_dst, derr = ex:state(e.moved_to)
  if not (at_src and at_dst) then return (serr or derr).message end
  if M.same(e, at_src) and not at_dst.exists then return nil end
  if M.same(e, at_dst) then
    if not at_src.exists then return nil end
    if at_src.type == "dir" and mine(e.path) then return foreign_below(ex, e, mine) end
  end
  return string.format("moved to %s by the session; now %s there and %s here", text.inert(e.moved_to),
    describe_state(at_dst), describe_state(at_src))
end

-- The checkpoint's entries, read again from one handle for every pass
-- (each(fn): fn(entry, offset, length)), and read one at a time where
-- rollback's order needs them (at(offset, length)).
local function entry_reader(s)
  if type(s.checkpoint.entries) == "table" then
    -- held in session.json (made before the entries moved beside it)
    local list = s.checkpoint.entries
    return { each = function(fn) for i, e in ipairs(list) do fn(e, i, 0) end end,
      at = function(i) return list[i] end, close = function() end }
  end
  local f, ferr = session.open_list(s, "checkpoint")
  if not f then return nil, ferr end
  local decode = session.decode_entry
  return {
    each = function(fn) for _, e, offset, len in session.each(s, "checkpoint", f) do fn(e, offset, len) end end,
    at = function(offset, len)
      f:seek("set", offset)
      local e, why = decode(f:read(len) or "", session.file(s, "checkpoint"))
      if not e then err.throw(err.usage("%s", why)) end
      return e
    end,
    close = function() f:close() end,
  }
end

-- unmoved(ex, entries) -> the sources of the renames execute never got
-- to (the source as it was, nothing at the destination): what is below
-- them is the host's own tree, which rollback leaves alone.
local function unmoved(ex, entries)
  local out = {}
  entries.each(function(e)
    if e.moved_to then
      local at_src, at_dst = ex:state(e.path), ex:state(e.moved_to)
      if at_src and at_dst and not at_dst.exists and M.same(e, at_src) then out[#out + 1] = e.path end
    end
  end)
  return out
end

-- conflicts(ex, s, entries, how) -> list.  how: still (unmoved's), f
-- (the operations' handle)
local function conflicts(ex, s, entries, how)
  local still, f = how.still, how.f
  local op_of, out, mine = session.finder(s, f), {}, made_by(s, f)
  entries.each(function(e)
    if not e.moved_to and at_or_below(e.path, still) then -- luacheck: ignore 542
    elseif e.moved_to then
      local why = moved_conflict(ex, e, mine)
      if why then out[#out + 1] = { path = e.path, why = why } end
    elseif e.op and not e.moved_from then
      local now, msg = ex:state(e.path)
      local op = op_of(e.op)
      if not op then
        out[#out + 1] = { path = e.path, why = string.format("its operation %d is not in the session", e.op) }
      elseif not now then
        out[#out + 1] = { path = e.path, why = msg.message }
      elseif not M.same(e, now) and not M.same(M.expected(op), now) then
        out[#out + 1] = { path = e.path, checkpoint = e, now = now, expected = M.expected(op) }
      elseif not e.exists and now.exists and now.type == "dir" then
        local why = foreign_below(ex, e, mine)
        if why then out[#out + 1] = { path = e.path, why = why } end
      end
    end
  end)
  return out
end

-- A checkpoint line is shorter than this (lines.MAX_LINE): an entry's
-- offset and length make one integer.
local SPAN = 1 << 25

-- restore_order(entries, still) -> the places of the entries (offset *
-- SPAN + length, for at()) in the order rollback goes, and their bytes: what the
-- session made where a rename's source was, removed deepest first; the
-- renames moved back, last first; the other absent-before paths removed
-- deepest first (a directory the session made for a moved tree is empty
-- by then); everything else parent first.  A rename's destination is put
-- back by its move, never removed; below a source still in place
-- (still: unmoved's) nothing is touched.  Only places and depths are
-- held, never the entries.
local function restore_order(entries, still)
  -- an entry's place as one integer (offset and length), not a table:
  -- 100 000 of them are held
  local function place(offset, len) return offset * SPAN + len end
  local sources, moves, bytes = {}, {}, 0
  local function size(e) return e.type == "file" and e.size or 0 end
  entries.each(function(e, offset, len)
    if e.moved_to then
      bytes = bytes + size(e)
      table.insert(moves, 1, place(offset, len))
      sources[#sources + 1] = e.path
    end
  end)
  local in_sources, removals, restores, depth = {}, {}, {}, {}
  entries.each(function(e, offset, len)
    if e.moved_to or e.moved_from or at_or_below(e.path, still) then return end
    bytes = bytes + size(e)
    local at = place(offset, len)
    if e.exists then
      restores[#restores + 1] = at
    else
      depth[at] = #e.path
      local list = at_or_below(e.path, sources) and in_sources or removals
      list[#list + 1] = at
    end
  end)
  local deepest = function(x, y) return depth[x] > depth[y] end
  table.sort(in_sources, deepest)
  table.sort(removals, deepest)
  local out = {}
  for _, list in ipairs({ in_sources, moves, removals, restores }) do table.move(list, 1, #list, #out + 1, out) end
  return out, bytes
end

-- move_back(ex, e) -> "unchanged" | true | nil, err: a rename undone.
-- What the session made at the source's name is gone by now (removed
-- first); a directory left there empty goes too.
local function move_back(ex, e)
  local at_src, serr = ex:state(e.path)
  local at_dst, derr = ex:state(e.moved_to)
  if not (at_src and at_dst) then return nil, serr or derr end
  if not at_dst.exists and M.same(e, at_src) then return "unchanged" end
  return err.try(function()
    if at_src.exists then
      local left = at_src.type == "dir" and ex:below(e.path)
      if not (left and #left == 0) then
        err.throw(err.failed("%s: something is there now, where the moved tree goes back", e.path))
      end
      ex:remove_tree(e.path)
    end
    ex:move(e.moved_to, e.path)
    return true
  end)
end

-- Whether a path already is as its checkpoint entry holds it: content,
-- owner, mode, its time (not a directory's: set last anyway) and, where
-- the executor can tell, its extended attributes.
local function as_checkpointed(ex, entry)
  local now = ex:state(entry.path)
  if not (now and M.same(entry, now)) then return false end
  if entry.type ~= "dir" and entry.mtime_sec ~= nil
    and (entry.mtime_sec ~= now.mtime_sec or entry.mtime_nsec ~= now.mtime_nsec) then
    return false
  end
  if entry.xattrs == nil or not entry.exists then return true end
  local attrs = ex:xattrs(entry.path)
  return attrs == nil or xattrs.same(entry.xattrs, attrs)
end

local function nothing_changed(s, opts)
  if opts.dry_run then return s, { restored = {}, conflicts = {}, not_undone = {} } end
  local ok, terr = session.transition(s, "rolled_back", { note = "nothing had been changed",
    config = opts.config, actor = opts.actor, warn = opts.warn })
  if not ok then return nil, terr end
  return s, { restored = {}, conflicts = {}, not_undone = {} }
end

local function refuse_conflicts(list)
  local out = {}
  for _, c in ipairs(list) do
    out[#out + 1] = c.why and string.format("%s (%s)", text.inert(c.path), c.why) or
      string.format("%s (now %s)", text.inert(c.path), describe_state(c.now))
  end
  return nil, err.refused("changed since the execution, so nothing was restored (--force restores anyway): %s",
    some(out))
end

-- restore_all(ex, s, entries, how) -> the directories' times to set, the
-- report (how.report: restored, unchanged, failed) filled.  how: order
-- and bytes (restore_order's), report, progress.
local function restore_all(ex, s, entries, how)
  local order, report, progress = how.order, how.report, how.progress
  local cpdir = assert(session.dir(s.id)) .. "/checkpoint"
  local touched = {}
  entries.each(function(e) touched[#touched + 1] = e.path end)
  ex:remove_temps(touched, M.temp_prefix(s))
  touched = nil  -- luacheck: ignore 311
  progress:start("restoring", #order, how.bytes, "paths")
  local times = {}
  for _, place in ipairs(order) do
    local entry = entries.at(place // SPAN, place % SPAN)
    -- A path already as its checkpoint holds it is left alone (an
    -- operation that never ran, a file made immutable meanwhile).  Read
    -- now, not at the conflict check: a restore before may have moved it.
    local done, rerr
    if entry.moved_to then
      done, rerr = move_back(ex, entry)
    elseif as_checkpointed(ex, entry) then
      done = "unchanged"
    else
      done, rerr = ex:restore(entry, cpdir, M.temp_prefix(s))
    end
    if done == "unchanged" then
      report.unchanged[#report.unchanged + 1] = entry.path
    elseif done then
      report.restored[#report.restored + 1] = entry.path
    else
      report.failed[#report.failed + 1] = { path = entry.path, error = rerr.message }
    end
    -- directories last: restoring what is below one changes its time
    if entry.exists and entry.type == "dir" and entry.mtime_sec then
      times[#times + 1] = { path = entry.path, mtime_sec = entry.mtime_sec, mtime_nsec = entry.mtime_nsec }
    end
    progress:add(1, entry.type == "file" and entry.size or 0, entry.path)
  end
  progress:finish()
  return times
end

local function rollback(id, opts)
  local lock <close>, s = session.acquire(id, "rolled back", header_opts(opts))
  if not lock then return nil, s end
  local can = s.status == "executed" or s.status == "failed" or (s.status == "approved" and s.execution)
  if not can then
    return nil, err.refused("session %s is %s: there is nothing to roll back", s.id, s.status)
  end
  -- Interrupted before its checkpoint was saved: nothing had changed.
  if not (s.checkpoint and (s.checkpoint.count or s.checkpoint.entries)) then return nothing_changed(s, opts) end
  -- opened before the seal is checked: what passed is what is read
  local entries, eerr = entry_reader(s)
  if not entries then return nil, eerr end
  local _ <close> = guard(function() entries.close() end)
  local f, ferr = operations_handle(s, session.open_list)
  if ferr then return nil, ferr end
  local _ <close> = guard(function() if f then f:close() end end)
  local sealed, why = require("shannot.session.approval").check_checkpoint(s, session.reader(s))
  if not sealed then
    audit_event.session({ what = "rollback_refused", session = s, extra = { reason = why.message },
      config = opts.config, actor = opts.actor, warn = opts.warn })
    return nil, err.refused("session %s cannot be rolled back: %s; nothing was restored", s.id, why)
  end
  local ex, xerr = M.executor(s, opts)
  if not ex then return nil, xerr end
  local _ <close> = guard(function() ex:close() end)
  local still = unmoved(ex, entries)
  local found = conflicts(ex, s, entries, { still = still, f = f })
  if #found > 0 and not opts.force then return refuse_conflicts(found) end
  local order, bytes = restore_order(entries, still)
  local report = { restored = {}, unchanged = {}, conflicts = found, failed = {},
    not_undone = M.deferred_that_ran(s) }
  if opts.dry_run then
    for _, place in ipairs(order) do
      report.restored[#report.restored + 1] = entries.at(place // SPAN, place % SPAN).path
    end
    return s, report
  end
  local times = restore_all(ex, s, entries, { order = order, bytes = bytes, report = report,
    progress = opts.progress or require("shannot.progress").none })
  -- then the directories the entries are in, deepest first
  local parents = {}
  for i, t in ipairs(s.checkpoint.dir_times or {}) do parents[i] = t end
  table.sort(parents, function(x, y) return #x.path > #y.path end)
  table.move(parents, 1, #parents, #times + 1, times)
  for _, fail in ipairs(ex:set_times(times)) do
    report.failed[#report.failed + 1] = { path = fail.path, error = "its modification time: " .. fail.error }
  end
  if #report.failed > 0 then
    local out = {}
    for _, fail in ipairs(report.failed) do out[#out + 1] = text.inert(fail.path) .. ": " .. tostring(fail.error) end
    return nil, err.failed("rollback could not restore everything: %s", some(out))
  end
  local ok, terr = session.transition(s, "rolled_back", { note = opts.force and #found > 0 and "forced" or nil,
    config = opts.config, actor = opts.actor, warn = opts.warn })
  if not ok then return nil, terr end
  return s, report
end

-- rollback(id, opts) -> session, report | nil, err.  opts: force, dry_run,
-- progress (shannot.progress's reporter).
-- report: restored (paths), unchanged (paths already as checkpointed,
-- left alone), conflicts, not_undone (the deferred commands execute ran:
-- their effects outside the files stay).
function M.rollback(id, opts)
  return err.try(rollback, id, opts or {})
end

return M
