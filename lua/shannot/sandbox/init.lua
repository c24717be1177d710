-- Running a command in a bubblewrap sandbox on this machine: checks that
-- come before anything starts (Linux, bwrap present, command allowed by the
-- profile), the bwrap command line, and the result of the run.
local err = require("shannot.err")
local fs = require("shannot.fs")
local limits = require("shannot.sandbox.limits")
local proc = require("shannot.proc")
local bwrap = require("shannot.sandbox.bwrap")
local profile = require("shannot.sandbox.profile")
local sys = require("shannot.core.sys")
local text = require("shannot.text")

local guard = require("shannot.guard")
local M = {}

M.INSTALL_BWRAP = "apt-get install bubblewrap"

function M.check_platform()
  if sys.client then
    return nil, err.env("this shannot is the client build, without the local sandbox: use --target to run on a " ..
      "Linux host over SSH")
  end
  local sysname = require("shannot.testhooks").sysname(sys.uname().sysname)
  if sysname ~= "Linux" then
    return nil, err.env("this is %s, and the sandbox needs Linux: use --target to run on a Linux host over SSH",
      text.inert(sysname))
  end
  return true
end

-- Where distributions install bwrap.  Tried before PATH: bwrap is the
-- sandbox's trust anchor and often setuid, so a bwrap earlier in a user's
-- PATH (a toolchain's bin dir, say) must not silently replace it.
M.SYSTEM_BWRAP = { "/usr/bin/bwrap", "/usr/local/bin/bwrap" }

-- find_bwrap([explicit]) -> path | nil, err.  explicit (the config's
-- bwrap_path, or $SHANNOT_BWRAP) is used as given or not at all.
function M.find_bwrap(explicit)
  explicit = explicit or os.getenv("SHANNOT_BWRAP")
  if explicit and explicit ~= "" then
    local path = fs.which(explicit, os.getenv("PATH"))
    if path then return path end
    return nil, err.env("bwrap not found at %s; install bubblewrap with: %s", explicit, M.INSTALL_BWRAP)
  end
  for _, path in ipairs(M.SYSTEM_BWRAP) do
    if fs.which(path) then return path end
  end
  local path = fs.which("bwrap", os.getenv("PATH"))
  if path then return path end
  return nil, err.env("bwrap (bubblewrap) is not installed; install it with: %s", M.INSTALL_BWRAP)
end

-- check_command(profile, argv) -> true | nil, err
function M.check_command(p, argv)
  -- Resolving costs a stat per PATH entry: only a non-empty list needs it.
  local resolved = #p.allowed_commands > 0 and fs.which(argv[1], profile.search_path(p)) or nil
  if not profile.allows(p, argv[1], resolved) then
    return nil, err.usage('command "%s" is not allowed by profile "%s"', text.inert(argv[1]), p.name)
  end
  return true
end

local function var_run_is_link()
  local st = fs.lstat("/var/run")
  return st ~= nil and st.type == "link"
end

-- The default filter in a pipe bwrap reads, then the profile's own file.
local function default_filter(p)
  local bpf, msg = require("shannot.sandbox.seccomp").native_program({ unix_sockets = #p.unix_sockets > 0 })
  if not bpf then return nil, err.env("%s", msg) end
  local r, w = fs.pipe()
  if not r then return nil, err.env("cannot make a pipe: %s", w) end
  local ok, werr = w:write(bpf)  -- a few hundred bytes: the pipe holds them
  w:close()
  if not ok then r:close(); return nil, err.env("seccomp: %s", werr) end
  return r
end

-- seccomp_fds(profile, keep) -> fds for --add-seccomp-fd | nil, err; the
-- files are added to keep (open until bwrap has read them).
function M.seccomp_fds(p, keep)
  local f, e = default_filter(p)
  if not f then return nil, e end
  keep[#keep + 1] = f
  local fds = { f:fd() }
  if p.seccomp_profile then
    local own, msg = fs.open(p.seccomp_profile)
    if not own then return nil, err.usage('profile "%s": seccomp_profile: %s', p.name, msg) end
    keep[#keep + 1] = own
    fds[2] = own:fd()
  end
  return fds
end

-- shannot's own binary, the sandbox's first program (bwrap.ENTER): its
-- path, or (replaced on disk since this shannot started: an upgrade) the
-- running copy, open for bwrap to copy in.  -> {exe =} | {fd =} | nil, err
local function own_binary(keep)
  local exe = fs.readlink("/proc/self/exe")
  if exe and fs.stat(exe) then return { exe = exe } end
  local f, msg = fs.open("/proc/self/exe")
  if not f then return nil, err.env("shannot's own binary: %s", msg) end
  keep[#keep + 1] = f
  return { fd = f:fd() }
end

-- The hidden paths of a run (opts.hide: globs, sandbox/hide.lua),
-- expanded here and now, and the empty file bound over the files among
-- them: in a directory of its own (mode 700) that plan.scratch names, for
-- run() to remove.  -> true | nil, err
local function hide_part(plan, patterns)
  if not patterns or #patterns == 0 then return true end
  local hidden, why = require("shannot.sandbox.hide").expand(patterns)
  if not hidden then return nil, err.usage("%s", why) end
  plan.hide = { paths = hidden }
  for _, h in ipairs(hidden) do
    if not h.dir then
      local base = require("shannot.paths").data_dir() .. "/staging"
      local ok, msg = fs.mkdir_p(base, 448)
      if ok then plan.scratch, msg = fs.mkdtemp(base .. "/hide-") end
      if not plan.scratch then return nil, err.env("cannot make a place for hidden paths: %s", msg) end
      plan.hide.empty = plan.scratch .. "/empty"
      -- the pid: `shannot prune` leaves the directory of a live run alone
      ok, msg = fs.write_new(plan.scratch .. "/pid", sys.ids().pid .. "\n", 384)
      if ok then ok, msg = fs.write_new(plan.hide.empty, "", 292) end
      if not ok then return nil, err.env("cannot make the empty file hidden paths show: %s", msg) end
      break
    end
  end
  return true
end

-- prepare(profile, argv, opts) -> plan | nil, err.  The plan is what
-- sandbox/bwrap.lua builds the command line from, plus the files that
-- must stay open while it runs (keep), the unix_sockets channel and a
-- scratch directory to remove after the run (hidden paths).
function M.prepare(p, argv, opts)
  opts = opts or {}
  if #argv == 0 then return nil, err.usage("no command given") end
  local ok, e = M.check_platform()
  if not ok then return nil, e end
  ok, e = M.check_command(p, argv)
  if not ok then return nil, e end
  local path, berr = M.find_bwrap(opts.bwrap)
  if not path then return nil, berr end
  local plan = { bwrap = path, keep = {}, argv = argv, cwd = opts.cwd or sys.getcwd(),
    var_run_is_link = var_run_is_link(), capture = opts.capture, script = opts.script, getenv = opts.getenv }
  local serr
  plan.seccomp_fds, serr = M.seccomp_fds(p, plan.keep)
  if not plan.seccomp_fds then return nil, serr end
  plan.enter, e = own_binary(plan.keep)
  if not plan.enter then return nil, e end
  if #p.unix_sockets > 0 then
    -- the sandbox's first program sends its socket calls' listener back here
    local ours, theirs = fs.socketpair()
    if not ours then return nil, err.env("cannot make a socket pair: %s", theirs) end
    plan.sockets = { channel = ours, allow = p.unix_sockets }
    plan.keep[#plan.keep + 1] = theirs
    plan.sockets_fd = theirs:fd()
  end
  ok, e = hide_part(plan, opts.hide)  -- last: nothing after it fails and leaves its scratch behind
  if not ok then
    if plan.scratch then fs.rmtree(plan.scratch) end
    return nil, e
  end
  return plan
end

-- read_status(text) -> what bwrap wrote on its --json-status-fd: one
-- JSON object per line, merged: "child-pid" once the sandbox is up,
-- "exit-code" once the command has ended.  No exit-code means bwrap
-- itself failed while setting the sandbox up.
function M.read_status(text_)
  local json = require("shannot.json")
  local status = {}
  for line in text_:gmatch("[^\n]+") do
    local obj = json.decode(line)
    if type(obj) == "table" then
      for k, v in pairs(obj) do status[k] = v end
    end
  end
  return status
end

-- Everything bwrap wrote on its status pipe, waiting at most `seconds`:
-- a sandbox orphaned before bwrap armed --die-with-parent (an early
-- Ctrl-C) may hold the pipe open, and a plain read would wait for ever.
local function drain(file, seconds)
  local term = require("shannot.core.term")
  local parts, deadline = {}, sys.monotonic() + seconds
  repeat
    local data = term.read_key(file:fd(), 50)
    if data == nil then break end  -- every writer closed it, or a signal
    parts[#parts + 1] = data
  until sys.monotonic() >= deadline
  return table.concat(parts)
end

-- Our children now: while a sandbox runs we are a subreaper, and those
-- that were not our children before it started are sandboxes whose bwrap
-- is gone (a process running many, the MCP server, has others: its jobs).
local function children()
  local list = fs.read_file("/proc/thread-self/children", 65536) or ""
  local out = {}
  for pid in list:gmatch("%d+") do out[#out + 1] = math.tointeger(tonumber(pid)) end
  return out
end

local function close_all(files)
  for _, f in ipairs(files) do f:close() end
end

local function sysctl(path)
  return (fs.read_file(path, 64) or ""):match("^%s*(%d+)")
end

-- setup_doubtful(profile) -> why bwrap might fail to set this sandbox up,
-- or nil.  Then a run keeps shannot as bwrap's parent (cmd/run.lua), so
-- such a failure is reported as one (exit 4, DESIGN §7), which a sandbox
-- exec'd in place cannot do: a bind source that is not there, a tmpfs
-- path missing under the read-only root, bwrap arguments of the
-- profile's own, and as another user than root a user namespace the
-- kernel refuses (sysctls; Ubuntu's AppArmor restriction).
function M.setup_doubtful(p)
  if #p.additional_args > 0 then return "the profile's additional_args" end
  for _, b in ipairs(p.binds) do
    if not b.optional and not fs.exists(b.source) then return "a missing bind source" end
  end
  if #p.binds == 0 then
    for _, path in ipairs(p.tmpfs_paths) do
      if not fs.exists(path) then return "a missing tmpfs path" end
    end
  end
  if sys.ids(false).euid ~= 0 and (sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0"
      or sysctl("/proc/sys/user/max_user_namespaces") == "0"
      or sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1") then
    return "user namespaces the kernel may refuse"
  end
  return nil
end

-- exec(profile, argv, opts) -> nil, err: a plain sandbox in place of
-- this process (bwrap replaces shannot: no fork, no wait), for a run that
-- needs nothing after the command (cmd/run.lua says which).  The
-- sandbox's first program waits for the command and ends as run would:
-- 0, or 1 with the code said on stderr under opts.report.  opts: bwrap,
-- limits (a cgroup of its own, left for a later run or `shannot prune`
-- to remove once empty), cwd, getenv.  Returns only on failure.
function M.exec(p, argv, opts)
  local plan, perr = M.prepare(p, argv, opts)
  if not plan then return nil, perr end
  assert(not plan.scratch and not plan.sockets, "exec: a plan that needs shannot after the run")
  plan.report = opts.report
  local argv_full = bwrap.argv(p, plan, "local")
  local keep = {}
  for _, f in ipairs(plan.keep) do keep[#keep + 1] = f:fd() end
  local group = opts.limits and limits.group(opts.limits, limits.name(), { prune = true })
  local ok, msg = proc.exec(argv_full, {
    keep_fds = keep, env = {},  -- as in run: the command's environment comes from the profile alone
    join_fds = group and limits.join_fds(group) or nil,
    rlimits = opts.limits and not group and limits.rlimits(opts.limits) or nil,
  })
  close_all(plan.keep)
  if group then limits.remove(group) end
  if not ok then return nil, err.env("cannot start %s", msg) end
end

-- run(profile, argv, opts) -> result | nil, err
-- opts: keep_output (pipe and keep output instead of passing it through),
-- tee (with keep_output: also pass it through as it comes), max_output
-- (bytes kept per stream), timeout (s), stdin ("inherit" | "null"), cwd,
-- bwrap (explicit path), namespace (proc.spawn's: a capture's overlays),
-- capture (staging.sandbox_part's), script ({source =, target =}) and
-- getenv for sandbox/bwrap.lua, hide (absolute globs: paths hidden
-- inside), limits (limits.of's: processes and memory), group
-- (limits.group's, made by the caller: used, not removed), watch and wake
-- (communicate's: a capture's staging, its questions' server started when
-- first asked), meanwhile (a function called once the sandbox is
-- started, before waiting for it: work that may overlap its run).
function M.run(p, argv, opts)
  opts = opts or {}
  local plan, perr = M.prepare(p, argv, opts)
  if not plan then return nil, perr end
  local _ <close> = guard(function() if plan.scratch then fs.rmtree(plan.scratch) end end)
  local r_end, w_end = fs.pipe()
  if not r_end then return nil, err.env("cannot make a pipe: %s", w_end) end
  local status_r <close> = r_end
  local status_w <close> = w_end
  plan.status_fd = status_w:fd()
  local argv_full = bwrap.argv(p, plan, "local")
  local keep = { status_w:fd() }
  for _, f in ipairs(plan.keep) do keep[#keep + 1] = f:fd() end
  -- bwrap's --die-with-parent leaves a window at start-up in which the
  -- sandbox outlives a killed bwrap (an early Ctrl-C, say).  As subreaper
  -- we inherit such a sandbox, and finish() ends it on every way out,
  -- after `child` (declared later, closed first) has killed bwrap.
  local before = {}
  for _, pid in ipairs(children()) do before[pid] = true end
  proc.set_subreaper(true)
  local status
  local function finish()
    if status then return end
    status = M.read_status(drain(status_r, 0.5))
    if math.type(status["child-pid"]) == "integer" then proc.kill_orphan(status["child-pid"]) end
    for _, pid in ipairs(children()) do
      if not before[pid] then proc.kill_orphan(pid) end
    end
    proc.set_subreaper(false)
  end
  local _ <close> = guard(finish)
  -- Processes and memory: a cgroup of the sandbox's own where this
  -- machine lets us make one (opts.group: made by the caller, early),
  -- rlimits otherwise.
  local own = not opts.group and opts.limits and limits.group(opts.limits, limits.name()) or nil
  local group = opts.group or own
  local _ <close> = guard(function() if own then limits.remove(own) end end)
  local p_, msg, _, where = proc.spawn(argv_full, {
    stdin = opts.stdin or "inherit",
    stdout = opts.keep_output and "pipe" or "inherit",
    stderr = opts.keep_output and "pipe" or "inherit",
    keep_fds = keep, die_with_parent = true, namespace = opts.namespace,
    -- bwrap needs no environment, and whatever it has shows inside as
    -- /proc/1/environ: the command's own comes from the profile alone.
    env = {},
    join_fds = group and limits.join_fds(group) or nil,
    rlimits = opts.limits and not group and limits.rlimits(opts.limits) or nil,
  })
  local child <close> = p_  -- bound at once: an interrupt may land on the next line
  status_w:close()
  close_all(plan.keep)
  if not child then
    if opts.namespace then
      -- which of opts.namespace.mounts failed, if one did: a value, not text
      local e = err.env("cannot set the capture up: %s", msg)
      if where then e.mount, e.reason = where.mount, where.reason end
      return nil, e
    end
    return nil, err.env("cannot start %s", msg)
  end
  if opts.meanwhile then opts.meanwhile() end
  local tee = opts.keep_output and opts.tee
  local r, cmsg = child:communicate({
    timeout = opts.timeout, max_capture = opts.max_output or proc.DEFAULT_MAX_OUTPUT,
    tee_stdout = tee and 1 or nil, tee_stderr = tee and 2 or nil, watch = opts.watch,
    tee_no_strings = tee and true or nil,  -- no clipboard or title set on the reviewer's terminal
    wake = opts.wake,
    sockets = plan.sockets and { channel = plan.sockets.channel:fd(), allow = plan.sockets.allow } or nil,
  })
  if plan.sockets then plan.sockets.channel:close() end
  child:close()  -- idempotent; bwrap must be gone before finish() reads its status
  finish()
  if group and r then r.limits_hit = limits.hit(group) end
  if not r then return nil, err.env("waiting for the sandbox: %s", cmsg) end
  if r.wake_error then return nil, err.env("%s", r.wake_error) end
  r.command = argv
  r.profile = p.name
  r.started = status["child-pid"] ~= nil
  local code = status["exit-code"]
  r.exit_code = math.type(code) == "float" and math.tointeger(code) or code  -- JSON's 3 may decode as 3.0
  if r.exit_code == nil and not r.timed_out and not r.interrupted then
    r.setup_failed = true
  end
  return proc.join_output(r)
end

return M
