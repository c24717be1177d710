-- The SSH executor's capture (DESIGN §2, remotely): the same chain as
-- the local one, as shell command lines over the executor's connection:
-- a probe (ids, capture paths, mount table), the staging (mode 700, a
-- name nobody can guess), the run, the upper trees streamed back as one
-- GNU tar stream (read by tar.c into a local replica), the staging
-- removed.  The host's state comes over SFTP; the walk is capture/walk.lua's.
local bwrap = require("shannot.sandbox.bwrap")
local err = require("shannot.err")
local fs = require("shannot.fs")
local profile = require("shannot.sandbox.profile")
local queries = require("shannot.capture.queries")
local remote_shell = require("shannot.capture.remote_shell")
local staging = require("shannot.capture.staging")
local store = require("shannot.store")
local text = require("shannot.text")
local walk = require("shannot.capture.walk")

local M = {}

M.PROBE_TIMEOUT = 60

local function random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = f:read(n)
  f:close()
  return (b:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- probe(session, p) -> facts {uid, user, home, var_run_link, tops, defer, mounts}
local function probe(s, p)
  local r, msg = s:exec(remote_shell.probe_command(p.capture, profile.search_path(p), p.defer),
    { timeout = M.PROBE_TIMEOUT, max_capture = 16 * 1024 * 1024 })
  if not r then return nil, err.env("probing the remote: %s", msg) end
  if r.code ~= 0 and not r.stdout:find("---mountinfo", 1, true) then
    return nil, err.env("probing the remote failed: %s", text.inert((r.stderr or ""):match("[^\n]*")))
  end
  local head, mountinfo = r.stdout:match("^(.-)%-%-%-mountinfo\n(.*)$")
  local f, owned = { tops = {}, defer = {} }, {}
  for k, v in (head or ""):gmatch("([%w_]+)=([^\n]*)") do
    if k == "id" then  -- id(1)'s line: uid=N(name) gid=N(name) groups=...
      f.uid, f.gid = v:match("^uid=(%d+)"), v:match(" gid=(%d+)")
      f.user = v:match("^uid=%d+%(([^)]*)%)")
    elseif k == "bwrap" then f.bwrap = v ~= "" and v or nil
    elseif k == "top" then f.tops[#f.tops + 1] = v
    elseif k == "defer" then f.defer[#f.defer + 1] = v
    elseif k == "own" then owned[v] = true
    else f[k] = v end
  end
  if not (f.uid and f.uid:match("^%d+$") and f.gid and f.gid:match("^%d+$")) then
    return nil, err.env("probing the remote: no user or group id in its answer")
  end
  f.root = f.uid == "0"
  f.tops = staging.outermost(f.tops)
  if not f.root then  -- as locally: only what the user owns (staging.own_tops says why)
    f.tops = staging.own_tops(f.tops, function(path) return owned[path] == true end, f.home_real)
  end
  f.mounts = staging.parse_mountinfo(mountinfo or "")
  return f
end

-- The upper trees as they came back: a local replica, with what a plain
-- file cannot hold (whiteouts, opaque markers, owners) kept beside it.
local function replica_tree(meta)
  local t = {}
  for k, v in pairs(walk.local_tree) do t[k] = v end
  t.xattrs = nil  -- the stream's are not applied over SSH (no setfattr there): none is captured
  function t.lstat(_, path)
    local st, msg, code = fs.lstat(path)
    if not st then return nil, msg, code end
    local m = meta[path]
    if m then
      st.mode, st.uid, st.gid = m.mode, m.uid, m.gid
      st.mtime_sec, st.mtime_nsec = m.mtime_sec, m.mtime_nsec
      if m.same_as then  -- a second name of a file of the stream: its inode, as on the remote
        st.dev, st.ino, st.nlink = m.same_as.dev, m.same_as.ino, 2
      elseif m.linked then
        st.nlink = 2
      end
      if m.type then st.type, st.rdev = m.type, m.rdev end
    end
    return st
  end
  function t.opaque(_, path) return meta[path] ~= nil and meta[path].opaque == true end
  return t
end

-- Where entry `name` of the stream goes under dir: its parent opened with
-- no symlink on the way (a hostile stream's "upper/x" symlink followed by
-- "upper/x/f" must not write through it), the entry named through that
-- descriptor.  {dir = File, path =} | nil, why.  opened: the parent opened
-- last, {name =, dir =}, reused while entries follow in the same parent:
-- sound, as no entry replaces a name already made (mkdir, symlink and
-- O_EXCL fail on one), so a parent's path leads to the same directory
-- all along.
local function place(dir, name, opened)
  local parent, base = name:match("^(.*)/([^/]+)$")
  if not parent then parent, base = "", name end
  local at = parent == "" and dir or (dir .. "/" .. parent)
  if opened.name ~= at then
    if opened.dir then opened.dir:close() end
    opened.name, opened.dir = nil, nil
    local d, msg, code = fs.open_dir(at)
    if not d then
      if code == "ELOOP" then return nil, "it lies below a symlink of the stream" end
      return nil, msg
    end
    opened.name, opened.dir = at, d
  end
  local d = opened.dir
  if require("shannot.core.sys").client then
    -- no /proc where the client runs: the checked path itself, sound as
    -- the replica is a private directory only this walk changes
    return { dir = d, path = at .. "/" .. base }
  end
  return { dir = d, path = "/proc/self/fd/" .. d:fd() .. "/" .. base }
end

local function refuse(name, why)
  return nil, string.format("the capture stream's entry %s: %s; the whole capture is refused",
    text.inert(text.middle(name, 200)), text.inert(why)), "refused"
end

-- One entry of the upper trees, made in the replica at p.path.
-- files: the regular files of the stream so far (name -> replica path).
local function make_entry(reader, e, p, files)
  if e.type == "dir" then return fs.mkdir(p.path, 448) end
  if e.type == "file" then return reader:extract(p.path) end
  if e.type == "link" then return fs.symlink(e.linkname, p.path) end
  if e.type == "hardlink" then
    -- a second name of a file of this same stream, nothing else
    local src = files[e.linkname or ""]
    if not src then return nil, "a hard link to " .. text.inert(e.linkname or "?") .. ", not a file of the stream" end
    local data, msg = fs.read_file(src, 64 * 1024 * 1024)
    if not data then return nil, msg end
    return fs.write_new(p.path, data, 384)
  end
  -- whiteouts (char 0/0) and what is never captured (devices, fifos):
  -- an empty placeholder, never the thing itself
  return fs.write_new(p.path, "", 384)
end

-- unpack(tar_file, dir) -> meta | nil, msg: upper/ and defer/deferred,
-- each entry made beneath dir only (tar.c refuses absolute names and
-- ".."; place() refuses symlinks on the way; hard links only to files of
-- the stream), anything else refusing the whole walk.
local function unpack(tar_file, dir, progress)
  local tar = require("shannot.tar")
  local reader <close>, msg = tar.open(tar_file)
  if not reader then return nil, msg end
  local meta, files = {}, {}
  local opened <close> = setmetatable({}, { __close = function(o) if o.dir then o.dir:close() end end })
  progress:start("unpacking", nil, nil, "entries")
  for e, emsg in tar.entries(reader) do
    progress:add(1, e and e.type == "file" and e.size or 0, e and e.name)
    if not e then  -- a malformed or hostile stream (tar.c says which entry)
      return nil, "the capture stream: " .. text.inert(emsg) .. "; the whole capture is refused", "refused"
    end
    local name = e.name
    if name == "defer/deferred" or name == "queries" or name == "status" then
      if e.type ~= "file" then return refuse(name, "a " .. e.type .. ", not a regular file") end
      local ok, xmsg = reader:extract(dir .. "/" .. name:match("[^/]*$"))
      if not ok then return nil, xmsg end
    elseif name == "upper" or name:match("^upper/") then
      local p, why = place(dir, name, opened)
      if not p then return refuse(name, why) end
      local ok, xmsg = make_entry(reader, e, p, files)
      if not ok then
        if e.type == "hardlink" then return refuse(name, xmsg) end
        return nil, xmsg
      end
      local path = dir .. "/" .. name
      if e.type == "file" then files[name] = path end
      local m = { mode = e.mode, uid = e.uid, gid = e.gid, mtime_sec = e.mtime_sec, mtime_nsec = e.mtime_nsec,
        opaque = (e.xattrs or {})["user.overlay.opaque"] == "y" }
      if e.type == "char" and e.devmajor == 0 and e.devminor == 0 then
        m.type, m.rdev = "char", 0
      elseif not ({ dir = true, file = true, link = true, hardlink = true })[e.type] then
        m.type = e.type
      end
      if e.type == "hardlink" then  -- the walk sees one file with two names, as the remote has
        -- (its inode read now: the walk moves the first name's content away)
        local first = files[e.linkname]
        m.same_as = fs.lstat(first)
        meta[first] = meta[first] or {}
        meta[first].linked = true
      end
      meta[path] = m
    end
  end
  return meta
end

-- The host as SFTP and exec see it.
local function host_tree(s, sftp, scratch)
  local n = 0
  return {
    lstat = function(_, path)
      local st, msg, code = sftp:lstat(path)
      if st then st.mtime_nsec = nil end  -- SFTP v3 carries whole seconds: none is known
      return st, msg, code
    end,
    readlink = function(_, path) return sftp:readlink(path) end,
    names = function(_, dir)
      local names, msg, code = sftp:readdir(dir)
      if not names then return nil, msg, code end
      table.sort(names)
      return names
    end,
    -- hashes(root) -> {path = sha256} of every file below root, in one
    -- exec (a moved tree's thousand files are not a thousand round trips)
    hashes = function(_, root)
      local r, msg = s:exec("find " .. text.quote(root) .. " -type f -print0 | xargs -0r sha256sum -z --",
        { timeout = 3600, max_capture = 64 * 1024 * 1024 })
      if not r then return nil, msg end
      if r.code ~= 0 or r.stdout_truncated then return nil, root .. ": cannot hash its files on the remote" end
      local out = {}
      for h, path in r.stdout:gmatch("(%x+)  ([^%z]*)%z") do out[path] = h end
      return out
    end,
    hash = function(_, path)
      local r, msg = s:exec("sha256sum -- " .. text.quote(path), { timeout = 600 })
      if not r then return nil, msg end
      local h = r.code == 0 and r.stdout:match("^(%x+)")
      if not h then return nil, path .. ": cannot hash it on the remote" end
      return h
    end,
    store = function(_, blobs, path)
      n = n + 1
      local tmp = scratch .. "/base-" .. n
      local ok, msg = sftp:get(path, tmp)
      if not ok then return nil, msg end
      return store.put_file(blobs, tmp, { move = true })
    end,
  }
end

-- The variables a profile's ${VAR} take on the remote.
local function remote_getenv(f)
  local env = { HOME = f.home, USER = f.user, LOGNAME = f.user }
  return function(k) return env[k] end
end

-- What the remote's deferred channel may hold: the profile's deferred
-- commands, by name or from a directory of the remote PATH or one the
-- probe found them in (remote paths: resolved there, not here).
local function allowed_deferred(p, f)
  local allowed = staging.allowed_deferred(p.defer, profile.search_path(p, remote_getenv(f)), function(d) return d end)
  for _, path in ipairs(f.defer) do allowed.dirs[path:match("^(.*)/[^/]*$")] = true end
  return allowed
end

-- The sandbox's first program for the remote (build/shannot-enter, a
-- static build of src/enter.c: Landlock there too), uploaded into the
-- staging for the run when the remote's architecture is this machine's.
-- -> its remote path | nil (none: said once) | nil, err
local function upload_enter(sftp, f, dir, warn)
  if require("shannot.core.sys").client then return nil end  -- said with the filters (remote_filters)
  local sc = require("shannot.core.seccomp")
  local exe = fs.readlink("/proc/self/exe") or ""
  local here = exe:match("^(.*)/[^/]*$") or "."
  local helper
  for _, candidate in ipairs({ here .. "/shannot-enter", here .. "/../lib/shannot/shannot-enter" }) do
    if fs.stat(candidate) then helper = candidate; break end
  end
  if not helper or f.arch ~= sc.native_arch() then
    warn("%s: no Landlock in the remote sandbox (%s): FIFOs there can be opened for writing",
      text.inert(f.arch or "?"), helper and "another architecture" or "shannot-enter is not installed")
    return nil
  end
  local there = dir .. "/enter"
  local ok, msg = sftp:put(helper, there, 493)
  if not ok then return nil, err.env("cannot upload the sandbox's first program: %s", msg) end
  return there
end

-- The system call filters for the remote's architecture: the default,
-- then the profile's own (a compiled filter, as locally).  The client
-- build has no libseccomp to compile the default: said, and left out.
local function remote_filters(p, f, warn)
  local out = {}
  if require("shannot.core.sys").client then
    warn("%s: the client build sends the remote sandbox no default system call filter and no Landlock rules " ..
      "(a Linux shannot does)", text.inert(f.arch or "?"))
  else
    local bpf, msg = require("shannot.sandbox.seccomp").program(f.arch)
    if not bpf then return nil, err.env("the system call filter for %s: %s", text.inert(f.arch or "?"), msg) end
    out[1] = bpf
  end
  if p.seccomp_profile then
    local own, oerr = fs.read_file(p.seccomp_profile, 1024 * 1024)
    if not own then return nil, err.usage('profile "%s": seccomp_profile: %s', p.name, oerr) end
    out[#out + 1] = own
  end
  return out
end

-- sandbox_plan(profile, job, facts, staging) -> the sandbox plan of a remote run
-- (sandbox/bwrap.lua builds the line from it, as from a local one).
function M.sandbox_plan(p, job, f, plan)
  local fds = {}
  for i = 1, #plan.seccomp do fds[i] = remote_shell.SECCOMP_FD0 + i - 1 end
  return {
    argv = job.argv, cwd = f.home, getenv = remote_getenv(f), seccomp_fds = fds,
    var_run_is_link = f.var_run_link == "yes", enter = plan.enter and { exe = plan.enter },
    -- a plain sandbox (no capture paths) keeps no capability
    capture = { staging = plan.dir, tops = f.tops, deferred_paths = f.defer, root = f.root and #p.capture > 0,
      user_ids = not f.root and { uid = f.uid, gid = f.gid } or nil },
    status_fd = remote_shell.STATUS_FD,
    script = job.script and { source = plan.dir .. "/script", target = job.script_inside },
    hide = plan.hidden and { paths = plan.hidden, empty = plan.dir .. "/empty" },
  }
end

-- Whether bwrap said it started the sandbox (its JSON status, read as a
-- local run's: "child-pid" once the sandbox is up).
local function sandbox_started(status_file)
  local status = require("shannot.sandbox").read_status(fs.read_file(status_file, 64 * 1024) or "")
  return math.type(status["child-pid"]) ~= nil
end

-- The run's result, as a local sandbox.run gives it.
local function run_result(job, p, run, timeout)
  -- timeout(1) -s KILL ends killed by KILL itself (or 137) when the limit struck
  local timed_out = run.timed_out or (timeout ~= nil and (run.signal_name == "KILL" or run.code == 137)
    and run.duration >= timeout)
  return {
    command = job.argv, profile = p.name, exit_code = not timed_out and run.code or nil,
    signal_name = run.signal_name, timed_out = timed_out, interrupted = run.interrupted, duration = run.duration,
    stdout = run.stdout, stderr = run.stderr, stdout_truncated = run.stdout_truncated,
    stderr_truncated = run.stderr_truncated, stdout_dropped = run.stdout_dropped,
    stderr_dropped = run.stderr_dropped,
  }
end

-- Makes the remote staging directory on ex's host (mode 700, a name that
-- must not exist: over SFTP, no process there) and plans what fills it
-- (remote_shell.prepare_command, run in the run's own channel); the
-- returned guard's close removes it unless the collect did (plan.cleaned.done).
-- how: limits (limits.of's), warn(fmt, ...), hidden (hide.expand's, on
-- the remote: an empty file joins the staging for them).
local function prepare_staging(ex, f, p, how)
  local s, name = ex.s, ex.remote.name
  local root = remote_shell.staging_root(f.tops)
  if not root then return nil, err.env("%s: no staging place outside the capture paths", name) end
  local filters, ferr = remote_filters(p, f, how.warn)
  if not filters then return nil, ferr end
  local plan = { dir = root .. "/shannot-" .. random_hex(12), root = f.root, shim = staging.SHIM_TEXT,
    defer = p.defer, overlays = staging.overlays_for(f.tops, f.mounts), seccomp = filters, limits = how.limits,
    asks = queries.asks(p) }
  -- (its parent: the remote shell that starts it, then execs the run)
  if plan.asks then plan.server_argv = queries.server_argv(plan.dir, "$$") end
  for i, o in ipairs(plan.overlays) do
    o.upper, o.work = plan.dir .. "/upper/" .. i, plan.dir .. "/wd/" .. i
    if o.fstype then o.lower = plan.dir .. "/lower/" .. i end  -- a mount below a capture path
  end
  plan.hidden, plan.empty = how.hidden, how.hidden ~= nil
  local ok, msg = ex.sftp:mkdir(plan.dir, 448)
  if not ok then return nil, err.env("%s: cannot set the staging up: %s", name, text.inert(msg)) end
  local state = {}
  local guard = require("shannot.guard")(function()
    if not state.done then s:exec(remote_shell.cleanup_command(plan.dir, plan.root), { timeout = 120 }) end
  end)
  plan.cleaned = state
  return plan, guard
end

-- Brings the upper trees home: the stream, unpacked into a local replica.
local function collect(s, name, plan, ldir)
  local stream = ldir .. "/stream.tar"
  local out <close>, oerr = fs.open(stream, "a", 384)
  if not out then return nil, err.env("%s", oerr) end
  plan.progress:start("receiving", nil, nil, "bytes")
  local got = 0
  local col, colerr = s:exec(remote_shell.collect_command(plan.dir, 2 * plan.limits.staging, plan.root),
    { stdout_fd = out:fd(), timeout = 3600, on_stdout_bytes = function(n)
      plan.progress:add(0, n - got)
      got = n
    end })
  plan.progress:finish()
  if col then plan.cleaned.done = true end  -- the staging went with it (or goes: later)
  if col and col.code == remote_shell.CLEANUP_LATER then col.code, plan.cleaned.later = 0, true end
  if not col or col.code ~= 0 then
    return nil, err.env("%s: cannot collect what the run wrote: %s", name,
      text.inert(col and (col.stderr or ""):match("[^\n]*") or colerr))
  end
  out:close()
  local meta, uerr, unpack_why = unpack(stream, ldir, plan.progress)
  plan.progress:finish()
  fs.remove(stream)
  if not meta then
    if unpack_why == "refused" then return nil, err.refused("%s: %s", name, uerr) end
    return nil, err.env("%s: unpacking the capture stream: %s", name, text.inert(uerr))
  end
  return meta
end

-- check_profile(p) -> true | nil, err: whether a remote sandbox can be
-- built from the profile at all (asked before connecting)
function M.check_profile(p)
  if #p.unix_sockets > 0 then
    return nil, err.usage('profile "%s": unix_sockets needs shannot beside the sandbox, on this machine; ' ..
      "a remote sandbox reaches no host socket", p.name)
  end
  return true
end

-- capture(ex, plan) -> trees, deferred, result | false, nil, result |
-- nil, err (see executor/init.lua).  ex: the SSH executor (its session s,
-- sftp, remote and scratch directory).
function M.capture(ex, plan)
  local p, job, name = plan.profile, plan.job, ex.remote.name
  local supported, serr = M.check_profile(p)
  if not supported then return nil, serr end
  local s, sftp = ex.s, ex.sftp
  local f, perr = probe(s, p)
  if not f then return nil, perr end
  if not f.bwrap then
    return nil, err.env('%s: bwrap is not installed there (apt-get install bubblewrap); nothing was run', name)
  end
  if not f.root then
    plan.warn("%s: running as %s, not root: only files that user may change are captured (%s)",
      text.inert(name), text.inert(f.user or "?"), #f.tops > 0 and text.inert(table.concat(f.tops, ", ")) or
      "none there")
  end
  -- Hidden paths, expanded on the remote (over SFTP, as the run's user
  -- sees them) just before its run.
  local hidden
  if plan.hide and #plan.hide > 0 then
    local herr
    hidden, herr = require("shannot.sandbox.hide").expand(plan.hide, require("shannot.sandbox.hide").over_sftp(sftp))
    if not hidden then return nil, err.usage("%s: %s", name, herr) end
  end
  local remote_staging, guard = prepare_staging(ex, f, p,
    { limits = require("shannot.sandbox.limits").of(plan.config, tonumber(f.memtotal_kb or "")), warn = plan.warn,
      hidden = hidden })
  if not remote_staging then return nil, guard end
  local _ <close> = guard
  if job.script then
    local ok, uerr = sftp:put(job.script, remote_staging.dir .. "/script", 448)
    if not ok then return nil, err.env("%s: cannot upload the script: %s", name, uerr) end
  end
  local eerr
  remote_staging.enter, eerr = upload_enter(sftp, f, remote_staging.dir, plan.warn)
  if eerr then return nil, eerr end
  remote_staging.bwrap_argv = bwrap.argv(p, M.sandbox_plan(p, job, f, remote_staging), "remote")
  remote_staging.timeout = plan.timeout
  remote_staging.bwrap_path = f.bwrap
  -- the output passes through as it comes (no terminal control strings),
  -- as a local run's does; plan.max_output bounds what is kept
  local show = plan.show_output or nil
  local run, rerr = s:exec(remote_shell.prepare_and_run_command(remote_staging), {
    timeout = plan.timeout and plan.timeout + 10, max_capture = plan.max_output,
    tee_stdout = show and 1, tee_stderr = show and 2, tee_no_strings = show,
  })
  if not run then return nil, err.env("%s: %s", name, rerr) end
  local result = run_result(job, p, run, plan.timeout)
  if run.interrupted then return false, nil, result end
  -- the replica of the upper trees (a local directory: closing the trees
  -- removes it) and the host over SFTP
  local dir = assert(fs.mkdtemp(ex.scratch .. "/capture-"))
  local trees = walk.trees({ dir = dir }, function()
    fs.rmtree(dir)
    -- a large staging's removal, left running on the remote by the
    -- collect, is over before the capture is
    if remote_staging.cleaned.later then
      s:exec(remote_shell.finish_command(remote_staging.dir, remote_staging.root), { timeout = 120 })
    end
  end)
  local owned <close> = require("shannot.guard")(function() trees:close() end)
  remote_staging.progress = plan.progress or require("shannot.progress").none
  if show then remote_staging.progress:after_output({ run.stdout or "", run.stderr or "" }) end
  local meta, cerr = collect(s, name, remote_staging, trees.dir)
  if not meta then return nil, cerr end
  if not result.timed_out and not sandbox_started(trees.dir .. "/status") then
    return nil, err.env('%s: the sandbox could not be set up there: %s; "shannot remote test %s" tells what ' ..
      "the host lacks", name, text.inert((run.stderr or ""):match("[^\n]*%S[^\n]*") or
      ("it " .. require("shannot.proc").describe_end(run))), name)
  end
  local records = {}
  if fs.lstat(trees.dir .. "/deferred") then
    local derr
    records, derr = staging.read_deferred(trees.dir .. "/deferred", allowed_deferred(p, f))
    if not records then
      derr.message = name .. ": " .. derr.message
      return nil, derr
    end
    trees.deferred_file = trees.dir .. "/deferred"
  end
  if remote_staging.asks then
    local qerr
    trees.questions, qerr = queries.read(trees.dir .. "/queries")
    if not trees.questions then return nil, err.refused("%s: %s", name, qerr) end
  end
  assert(fs.mkdir(trees.dir .. "/blobs", 448))
  trees.overlays = {}
  for i, o in ipairs(remote_staging.overlays) do
    trees.overlays[i] = { target = o.target, upper = trees.dir .. "/upper/" .. i }
  end
  trees.blobs, trees.max_bytes = trees.dir .. "/blobs", remote_staging.limits.staging
  trees.up, trees.host = replica_tree(meta), host_tree(s, sftp, trees.dir)
  owned:cancel()
  return trees, records, result
end

return M
