-- Execute and rollback (DESIGN §5): apply exactly the approved operations
-- of a session, after a drift check and a checkpoint of everything they
-- touch, without following a symlink anywhere on a path; and put every
-- path back from that checkpoint.  A kill at any point leaves a state
-- that rollback restores exactly: the checkpoint is durable before the
-- first change, every replacement is a rename, and rollback accepts each
-- path either as it was or as the operation makes it.
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local session = require("shannot.session")
local store = require("shannot.store")
local text = require("shannot.text")

local M = {}

-- A deferred command runs at most this long on the host.
M.EXEC_TIMEOUT = 3600
local FILE_KINDS = { write = true, mkdir = true, replace_dir = true, symlink = true,
  delete = true, chmod = true, chown = true }

---------------------------------------------------------------------------
-- Paths, reached without following symlinks
---------------------------------------------------------------------------

local function split(path)
  local parent, name = path:match("^(.*)/([^/]+)$")
  if not parent then return nil end
  return parent == "" and "/" or parent, name
end

-- at(path) -> {dir = File, path = "/proc/self/fd/N/NAME"} | nil, msg, code.
-- The parent is opened with no symlink on the way (ELOOP otherwise) and
-- stays pinned while the handle lives.
local function at(path)
  local parent, name = split(path)
  if not parent then return nil, path .. ": not an absolute path below /", "EINVAL" end
  local dir, msg, code = fs.open_dir(parent)
  if not dir then return nil, msg, code end
  return { dir = dir, name = name, path = "/proc/self/fd/" .. dir:fd() .. "/" .. name,
    dirpath = "/proc/self/fd/" .. dir:fd() }
end

local function close_at(a)
  if a then a.dir:close() end
end

-- state(path [, known]) -> {exists, type, mode, uid, gid, size, hash, link}
-- | nil, msg.  A symlink in a parent is refused (ELOOP), a missing parent
-- is absence.  known = {hash, size}: the content just written there, not
-- read again when the size agrees.
function M.state(path, known)
  local a, msg, code = at(path)
  if not a then
    if code == "ENOENT" or code == "ENOTDIR" then return { exists = false } end
    return nil, msg, code
  end
  local st, smsg, scode = fs.lstat(a.path)
  local out
  if not st then
    close_at(a)
    if scode == "ENOENT" then return { exists = false } end
    return nil, smsg, scode
  end
  out = { exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    out.size = st.size
    if known and known.hash and known.size == st.size then
      out.hash = known.hash
    else
      local h, herr = store.hash_file(a.path)
      if not h then close_at(a); return nil, herr end
      out.hash = h
    end
  elseif st.type == "link" then
    out.link = fs.readlink(a.path)
  end
  close_at(a)
  return out
end

-- same(a, b): the same file system object, as far as the session cares.
function M.same(a, b)
  if not a.exists or not b.exists then return a.exists == b.exists end
  if a.type ~= b.type or a.mode ~= b.mode or a.uid ~= b.uid or a.gid ~= b.gid then return false end
  if a.type == "file" then return a.hash == b.hash end
  if a.type == "link" then return a.link == b.link end
  return true
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
  if op.kind == "chmod" or op.kind == "chown" then
    return { exists = true, type = b.type, mode = n.mode, uid = n.uid, gid = n.gid, hash = b.hash, link = b.link }
  end
  return { exists = true, type = n.type, mode = n.mode, uid = n.uid, gid = n.gid, hash = n.hash, link = n.link }
end

---------------------------------------------------------------------------
-- The fault hook: a test stops execute hard after step N
---------------------------------------------------------------------------

local function stepper()
  local stop_after = math.tointeger(tonumber(os.getenv("SHANNOT_TEST_FAULT_AFTER") or ""))
  local n = 0
  return function()
    n = n + 1
    -- Why os.exit(_, false): no close handler or finalizer may tidy up,
    -- as after a kill -9.
    if stop_after and n >= stop_after then os.exit(137, false) end
  end
end

---------------------------------------------------------------------------
-- Checkpoint
---------------------------------------------------------------------------

local function approved_file_ops(s)
  local out = {}
  for _, op in ipairs(s.operations) do
    if FILE_KINDS[op.kind] and op.decision == "approve" then out[#out + 1] = op end
  end
  return out
end

-- Everything under dir (which is not followed into), parent first.
local function subtree(path, real, into)
  local names = fs.readdir(real) or {}
  table.sort(names)
  for _, name in ipairs(names) do
    local child, child_real = path .. "/" .. name, real .. "/" .. name
    local st = fs.lstat(child_real)
    if st then
      into[#into + 1] = { path = child, real = child_real, st = st }
      if st.type == "dir" then subtree(child, child_real, into) end
    end
  end
end

local function entry_of(path, real, st, cpdir)
  local e = { path = path, exists = true, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid }
  if st.type == "file" then
    local info, msg = store.put_file(cpdir, real)
    if not info then return nil, msg end
    e.hash, e.size = info.hash, info.size
  elseif st.type == "link" then
    e.link = fs.readlink(real)
  end
  return e
end

-- checkpoint(s, ops, dir) -> entries | nil, err: the original of every
-- touched path (and of every entry below a directory an operation
-- removes or replaces), contents in dir, durable before it returns.
local function checkpoint(ops, cpdir)
  local entries, seen = {}, {}
  for _, op in ipairs(ops) do
    if not seen[op.path] then
      seen[op.path] = true
      local a, msg, code = at(op.path)
      if not a and code ~= "ENOENT" then
        return nil, err.refused("checkpoint of %s: %s", text.inert(op.path), msg)
      end
      -- A missing parent: an earlier operation creates it; absent before.
      local st = a and fs.lstat(a.path)
      if not st then
        entries[#entries + 1] = { path = op.path, exists = false, op = op.id }
      else
        local e, emsg = entry_of(op.path, a.path, st, cpdir)
        if not e then close_at(a); return nil, err.env("checkpoint of %s: %s", text.inert(op.path), emsg) end
        e.op = op.id
        entries[#entries + 1] = e
        local replaces_dir = st.type == "dir" and (op.kind == "delete" or op.kind == "replace_dir"
          or (op.new and op.new.type ~= "dir"))
        if replaces_dir then
          local below = {}
          subtree(op.path, a.path, below)
          for _, b in ipairs(below) do
            local be, berr = entry_of(b.path, b.real, b.st, cpdir)
            if not be then close_at(a); return nil, err.env("checkpoint of %s: %s", text.inert(b.path), berr) end
            be.below = op.id
            seen[b.path] = true
            entries[#entries + 1] = be
          end
        end
      end
      close_at(a)
    end
  end
  local ok, msg = fs.syncfs(cpdir)
  if not ok then return nil, err.env("checkpoint: %s", msg) end
  return entries
end

---------------------------------------------------------------------------
-- Applying one operation
---------------------------------------------------------------------------

local function check(ok, msg, ...)
  if not ok then error({ apply_error = msg }, 0) end
  return ok, msg, ...
end

local function remove_tree(path)
  local st = fs.lstat(path)
  if not st then return end
  check(fs.rmtree(path))
end

local function set_owner_mode(path, n, is_link)
  if n.uid and n.gid then check(fs.lchown(path, n.uid, n.gid)) end
  -- after the chown, which clears setuid/setgid bits
  if not is_link and n.mode then check(fs.chmod(path, n.mode)) end
end

local function temp_name(s, op)
  return ".shannot-" .. s.id:sub(-4) .. "-" .. op.id
end

local APPLY = {}

function APPLY.write(a, op, ctx)
  local tmp = a.dirpath .. "/" .. temp_name(ctx.session, op)
  remove_tree(tmp)
  -- Not hashed again: the blob was hashed when captured, and its size
  -- is checked here; a full SHA-256 would halve apply's throughput.
  check(store.copy_out(ctx.blobs, op.new.hash, tmp, 384, { verify = false }))
  local st_tmp = check(fs.lstat(tmp))
  if st_tmp.size ~= op.new.size then
    error({ apply_error = string.format("the stored content is %d bytes, not %d", st_tmp.size, op.new.size) }, 0)
  end
  ctx.step()
  set_owner_mode(tmp, op.new, false)
  local st = fs.lstat(a.path)
  if st and st.type == "dir" then remove_tree(a.path) end
  check(fs.rename(tmp, a.path))
end

function APPLY.symlink(a, op, ctx)
  local tmp = a.dirpath .. "/" .. temp_name(ctx.session, op)
  remove_tree(tmp)
  check(fs.symlink(op.new.link, tmp))
  set_owner_mode(tmp, op.new, true)
  local st = fs.lstat(a.path)
  if st and st.type == "dir" then remove_tree(a.path) end
  check(fs.rename(tmp, a.path))
end

function APPLY.mkdir(a, op)
  local st = fs.lstat(a.path)
  if st and st.type ~= "dir" then check(fs.remove(a.path)) end
  if not st or st.type ~= "dir" then check(fs.mkdir(a.path, 448)) end
  set_owner_mode(a.path, op.new, false)
end

function APPLY.replace_dir(a, op)
  remove_tree(a.path)
  check(fs.mkdir(a.path, 448))
  set_owner_mode(a.path, op.new, false)
end

function APPLY.delete(a)
  remove_tree(a.path)
end

function APPLY.chmod(a, op)
  local st = check(fs.lstat(a.path))
  if st.type == "link" then error({ apply_error = "is now a symlink" }, 0) end
  check(fs.chmod(a.path, op.new.mode))
end

function APPLY.chown(a, op)
  local st = check(fs.lstat(a.path))
  set_owner_mode(a.path, op.new, st.type == "link")
end

local function apply_op(op, ctx)
  local a, msg = at(op.path)
  if not a then return nil, msg end
  local ok, e = pcall(APPLY[op.kind], a, op, ctx)
  close_at(a)
  if not ok then
    if type(e) == "table" and e.apply_error then return nil, e.apply_error end
    error(e, 0)
  end
  return true
end

---------------------------------------------------------------------------
-- Execute
---------------------------------------------------------------------------

-- Directories an operation empties: below them every base is "absent" by
-- construction (the dry-run saw only the new tree), not by observation.
local function replaced_dirs(ops)
  local out = {}
  for _, op in ipairs(ops) do
    if op.kind == "replace_dir" or (op.base and op.base.exists and op.base.type ~= (op.new or {}).type) then
      out[#out + 1] = op.path .. "/"
    end
  end
  return out
end

local function below_any(path, prefixes)
  for _, p in ipairs(prefixes) do
    if path:sub(1, #p) == p then return true end
  end
  return false
end

-- drift(ops) -> list of {path, base, now} that differ from the dry-run
function M.drift(ops)
  local out = {}
  local replaced = replaced_dirs(ops)
  for _, op in ipairs(ops) do
    local now, msg
    if below_any(op.path, replaced) then
      now = op.base or { exists = false }
    else
      now, msg = M.state(op.path)
    end
    if not now then
      out[#out + 1] = { path = op.path, why = msg }
    elseif not M.same(op.base or { exists = false }, now) then
      out[#out + 1] = { path = op.path, base = op.base, now = now }
    end
  end
  return out
end

local function run_exec(op)
  local cwd = op.cwd
  local st = cwd and fs.stat(cwd)
  if not (st and st.type == "dir") then cwd = "/" end
  local r, msg = proc.run(op.argv, { cwd = cwd, stdin = "null", timeout = M.EXEC_TIMEOUT })
  if not r then return { id = op.id, ok = false, error = msg } end
  return {
    id = op.id, ok = r.code == 0, code = r.code, signal = r.signal_name,
    stdout = r.stdout, stderr = r.stderr, timed_out = r.timed_out or nil,
  }
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

-- execute(id, opts) -> session | nil, err.  opts.config: for the audit log
-- of an expiry found on the way.
function M.execute(id, opts)
  local s, e = session.load(id, opts)
  if not s then return nil, e end
  if s.status ~= "approved" or s.execution then return nil, refuse_status(s) end
  -- The session's JSON text and its decoding scratch are garbage now; a
  -- session of 10 000 operations keeps its peak RSS under 64 MiB so.
  collectgarbage()
  local dir = assert(session.dir(s.id))
  local ops = approved_file_ops(s)
  local drifted = M.drift(ops)
  if #drifted > 0 then
    local lines = {}
    for _, d in ipairs(drifted) do
      lines[#lines + 1] = d.why and string.format("%s (%s)", text.inert(d.path), d.why) or
        string.format("%s (was %s, now %s)", text.inert(d.path), describe_state(d.base), describe_state(d.now))
    end
    return nil, err.refused("the host changed since the dry-run; nothing was done: %s", table.concat(lines, "; "))
  end
  local step = stepper()
  local cpdir = dir .. "/checkpoint"
  local ok, msg = fs.mkdir_p(cpdir, 448)
  if not ok then return nil, err.env("checkpoint: %s", msg) end
  local entries, cerr = checkpoint(ops, cpdir)
  if not entries then return nil, cerr end
  s.checkpoint = { created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), entries = json.array(entries) }
  s.execution = { started_at = s.checkpoint.created_at }
  ok, msg = session.save(s)
  if not ok then return nil, msg end
  step()
  local ctx = { session = s, blobs = dir .. "/blobs", step = step }
  local results, failed = {}, 0
  for _, op in ipairs(ops) do
    local done, aerr = apply_op(op, ctx)
    -- The state after is the one the operation describes (rollback checks
    -- against M.expected(op)); a write's post-apply hash is its blob's.
    local r = { id = op.id, ok = done == true, error = aerr }
    if done and op.kind == "write" then r.hash = op.new.hash end
    if not done then failed = failed + 1 end
    results[#results + 1] = r
    step()
  end
  -- Deferred commands only when every file operation went through: they
  -- usually act on what was written (restart a service on a new config).
  for _, op in ipairs(s.operations) do
    if op.kind == "exec" and op.decision == "approve" then
      if failed > 0 then
        results[#results + 1] = { id = op.id, ok = false, error = "not run: a file operation failed" }
      else
        local r = run_exec(op)
        if not r.ok then failed = failed + 1 end
        results[#results + 1] = r
        step()
      end
    end
  end
  s.results = json.array(results)
  collectgarbage()
  s.execution.finished_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
  ok, msg = session.transition(s, failed == 0 and "executed" or "failed",
    failed > 0 and (failed .. " operation(s) failed") or nil)
  if not ok then return nil, msg end
  return s
end

---------------------------------------------------------------------------
-- Rollback
---------------------------------------------------------------------------

local function op_by_id(s)
  local out = {}
  for _, op in ipairs(s.operations) do out[op.id] = op end
  return out
end

-- conflicts(s) -> list: a touched path now in neither its checkpointed
-- state nor the state its operation leaves it in.
function M.conflicts(s)
  local ops, out = op_by_id(s), {}
  for _, e in ipairs(s.checkpoint.entries) do
    if e.op then
      local now, msg = M.state(e.path)
      local op = ops[e.op]
      if not now then
        out[#out + 1] = { path = e.path, why = msg }
      elseif not M.same(e, now) and not M.same(M.expected(op), now) then
        out[#out + 1] = { path = e.path, checkpoint = e, now = now, expected = M.expected(op) }
      end
    end
  end
  return out
end

local function restore_entry(e, cpdir, s)
  local a, msg, code = at(e.path)
  if not a then
    -- Its parent is gone, so it is too: as it was before.
    if not e.exists and (code == "ENOENT" or code == "ENOTDIR") then return true end
    return nil, msg
  end
  local ok, perr = pcall(function()
    if not e.exists then return remove_tree(a.path) end
    local st = fs.lstat(a.path)
    if e.type == "dir" then
      if st and st.type ~= "dir" then remove_tree(a.path); st = nil end
      if not st then check(fs.mkdir(a.path, 448)) end
      set_owner_mode(a.path, e, false)
    elseif e.type == "file" or e.type == "link" then
      local tmp = a.dirpath .. "/.shannot-" .. s.id:sub(-4) .. "-restore"
      remove_tree(tmp)
      if e.type == "file" then
        check(store.copy_out(cpdir, e.hash, tmp, 384))
      else
        check(fs.symlink(e.link, tmp))
      end
      set_owner_mode(tmp, e, e.type == "link")
      if st and st.type == "dir" then remove_tree(a.path) end
      check(fs.rename(tmp, a.path))
    end
  end)
  close_at(a)
  if not ok then
    if type(perr) == "table" and perr.apply_error then return nil, perr.apply_error end
    error(perr, 0)
  end
  return true
end

-- Temp files an interrupted execute may have left next to its paths.
local function remove_temps(s)
  local prefix = ".shannot-" .. s.id:sub(-4) .. "-"
  local seen = {}
  for _, e in ipairs(s.checkpoint.entries) do
    local parent = split(e.path)
    if parent and not seen[parent] then
      seen[parent] = true
      local d = fs.open_dir(parent)
      if d then
        local base = "/proc/self/fd/" .. d:fd()
        for _, name in ipairs(fs.readdir(base) or {}) do
          if name:sub(1, #prefix) == prefix then fs.rmtree(base .. "/" .. name) end
        end
        d:close()
      end
    end
  end
end

-- plan_rollback(s) -> the restore order: absent-before paths removed
-- deepest first, then everything else parent first.
local function restore_order(entries)
  local removals, restores = {}, {}
  for _, e in ipairs(entries) do
    if e.exists then restores[#restores + 1] = e else removals[#removals + 1] = e end
  end
  table.sort(removals, function(x, y) return #x.path > #y.path end)
  local out = {}
  for _, e in ipairs(removals) do out[#out + 1] = e end
  for _, e in ipairs(restores) do out[#out + 1] = e end
  return out
end

-- rollback(id, opts) -> session, report | nil, err.  opts: force, dry_run.
function M.rollback(id, opts)
  opts = opts or {}
  local s, e = session.load(id, opts)
  if not s then return nil, e end
  local can = s.status == "executed" or s.status == "failed" or (s.status == "approved" and s.execution)
  if not can then
    return nil, err.refused("session %s is %s: there is nothing to roll back", s.id, s.status)
  end
  if not (s.checkpoint and s.checkpoint.entries) then
    -- Interrupted before its checkpoint was saved: nothing had changed.
    if opts.dry_run then return s, { restored = {}, conflicts = {} } end
    local ok, terr = session.transition(s, "rolled_back", "nothing had been changed")
    if not ok then return nil, terr end
    return s, { restored = {}, conflicts = {} }
  end
  local conflicts = M.conflicts(s)
  if #conflicts > 0 and not opts.force then
    local lines = {}
    for _, c in ipairs(conflicts) do
      lines[#lines + 1] = c.why and string.format("%s (%s)", text.inert(c.path), c.why) or
        string.format("%s (now %s)", text.inert(c.path), describe_state(c.now))
    end
    return nil, err.refused("changed since the execution, so nothing was restored (--force restores anyway): %s",
      table.concat(lines, "; "))
  end
  local order = restore_order(s.checkpoint.entries)
  local report = { restored = {}, conflicts = conflicts, failed = {} }
  if opts.dry_run then
    for _, entry in ipairs(order) do report.restored[#report.restored + 1] = entry.path end
    return s, report
  end
  local cpdir = assert(session.dir(s.id)) .. "/checkpoint"
  remove_temps(s)
  for _, entry in ipairs(order) do
    local ok, rerr = restore_entry(entry, cpdir, s)
    if ok then
      report.restored[#report.restored + 1] = entry.path
    else
      report.failed[#report.failed + 1] = { path = entry.path, error = rerr }
    end
  end
  if #report.failed > 0 then
    local lines = {}
    for _, f in ipairs(report.failed) do lines[#lines + 1] = text.inert(f.path) .. ": " .. tostring(f.error) end
    return nil, err.failed("rollback could not restore everything: %s", table.concat(lines, "; "))
  end
  local ok, terr = session.transition(s, "rolled_back", opts.force and #conflicts > 0 and "forced" or nil)
  if not ok then return nil, terr end
  return s, report
end

return M
