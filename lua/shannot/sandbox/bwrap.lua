-- The bwrap command line, built in one place (STYLE 38) from a profile, a
-- plan of the run and where it runs ("local" or "remote").  A sandbox on
-- a remote host is the same sandbox: only paths differ, and the two
-- choices a remote forces are made here, in caps_for and status_args.
local const = require("shannot.const")
local profile = require("shannot.sandbox.profile")

local M = {}

-- Where shannot's own pieces appear inside the sandbox (/run is a fresh
-- tmpfs there): the first program, the deferred-command shim and its
-- PATH directory, the record the shim appends to.
M.SANDBOX_DIR = "/run/shannot"
M.ENTER = M.SANDBOX_DIR .. "/enter"
M.SHIM_BIN = M.SANDBOX_DIR .. "/bin"
M.DEFERRED = M.SANDBOX_DIR .. "/deferred"
M.SHIM = M.SANDBOX_DIR .. "/shim"
M.REAL_DIR = M.SANDBOX_DIR .. "/real"  -- the deferred commands themselves, for the shim's own use
M.QUERIES = M.SANDBOX_DIR .. "/q"  -- where the shim asks the host (capture/queries.lua)

-- Capabilities a capture keeps as real root (Docker's default set):
-- enough for package managers and chown, inside a user namespace of our
-- own, so none of them reaches the host.
M.ROOT_CAPS = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
  "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
}

-- Mounted fresh in every sandbox: a bind below one goes after it.
local FRESH = { "/dev", "/proc", "/tmp", "/run", "/var/run" }
-- Host-reaching parts of /proc that even a capability-less uid 0 could
-- write through file permissions alone (sysctls, sysrq): kept read-only.
local PROC_READ_ONLY = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus" }
local BIND_OPS = { ["--bind"] = true, ["--bind-try"] = true, ["--dev-bind"] = true, ["--dev-bind-try"] = true }

-- Namespaces bwrap makes: --unshare-all less the user namespace, which
-- bwrap adds by itself where it needs one (not as uid 0).  Inside the
-- capture's own user namespace, whose map covers every id, a user
-- namespace of bwrap's would map only uid 0 and break the dry-run's
-- fidelity (files of other users, chown).
local UNSHARE = { "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try" }

local under = require("shannot.paths").under

local function under_fresh(path)
  for _, d in ipairs(FRESH) do
    if under(path, d) then return true end
  end
  return false
end

local function add(args, ...)
  for i = 1, select("#", ...) do args[#args + 1] = select(i, ...) end
end

local function bind_args(args, b)
  if b.data_fd then  -- a copy of what the descriptor holds, executable
    return add(args, "--perms", "0555", "--ro-bind-data", tostring(b.data_fd), b.target)
  end
  local op = b.read_only and "--ro-bind" or "--bind"
  add(args, op .. (b.optional and "-try" or ""), b.source, b.target)
end

-- The binds a plan adds after the fresh mounts, as argument lists: the
-- capture's deferred-command machinery from its staging, the data
-- directory hidden, the script.
local function late_binds(plan)
  local out = {}
  local c = plan.capture
  if c then
    local defer = c.staging .. "/defer"
    local shims = c.shims or defer  -- a local capture's are made once (staging.shims)
    out[1] = { "--ro-bind", shims .. "/shim", M.SHIM }
    out[2] = { "--ro-bind", shims .. "/bin", M.SHIM_BIN }
    out[3] = { "--bind", defer .. "/deferred", M.DEFERRED }
    out[4] = { "--bind", defer .. "/q", M.QUERIES }
    local real = {}
    for _, path in ipairs(c.deferred_paths or {}) do
      local name = path:match("([^/]+)$")
      if not real[name] then  -- the host's own, where the shim can reach it (bwrap binds from the old root)
        real[name] = true
        out[#out + 1] = { "--ro-bind", path, M.REAL_DIR .. "/" .. name }
      end
      out[#out + 1] = { "--ro-bind", shims .. "/shim", path }
    end
    for _, dir in ipairs(c.hidden or {}) do
      out[#out + 1] = { "--tmpfs", dir }
      out[#out + 1] = { "--remount-ro", dir }
    end
  end
  if plan.script then out[#out + 1] = { "--ro-bind", plan.script.source, plan.script.target } end
  return out
end

-- writable_dirs(profile, plan) -> where the sandboxed command may open
-- files for writing: its fresh /dev, /proc, /tmp and /run, the profile's
-- tmpfs paths and writable binds, the capture overlays.  Elsewhere the
-- host is read-only, and Landlock also refuses its FIFOs and devices.
function M.writable_dirs(p, plan)
  local out = { "/dev", "/proc", "/tmp", "/run" }
  if not plan.var_run_is_link then out[#out + 1] = "/var/run" end
  for _, path in ipairs(p.tmpfs_paths) do out[#out + 1] = path end
  for _, b in ipairs(p.binds) do
    if not b.read_only then out[#out + 1] = b.target end
  end
  for _, t in ipairs(plan.capture and plan.capture.tops or {}) do out[#out + 1] = t end
  for _, b in ipairs(late_binds(plan)) do
    if BIND_OPS[b[1]] then out[#out + 1] = b[3] end
  end
  local extra = p.additional_args
  for i = 1, #extra - 2 do
    if BIND_OPS[extra[i]] then out[#out + 1] = extra[i + 2] end
  end
  return out
end

local function enter_bind(plan)
  local e = plan.enter
  if not e then return nil end
  if e.fd then return { data_fd = e.fd, target = M.ENTER } end
  return { source = e.exe, target = M.ENTER, read_only = true }
end

-- Where a host path shows inside the sandbox: itself under a read-only
-- root, below a bind's target when it lies below the bind's source; never
-- below a fresh mount or a tmpfs of the profile (not the host's there).
local function sandbox_places(p, path)
  local out = {}
  if #p.binds == 0 then
    out[1] = path
  else
    for _, b in ipairs(p.binds) do
      if b.source and under(path, b.source) then out[#out + 1] = b.target .. path:sub(#b.source + 1) end
    end
  end
  local visible = {}
  for _, place in ipairs(out) do
    local covered = under_fresh(place)
    for _, t in ipairs(p.tmpfs_paths) do covered = covered or under(place, t) end
    if not covered then visible[#visible + 1] = place end
  end
  return visible
end

-- Hidden paths (sandbox/hide.lua's, {paths =, empty =}), last of the
-- mounts so no bind lays them open again: a directory becomes an empty
-- read-only tmpfs, anything else the empty file hide.empty (a host file)
-- bound read-only.
local function hide_args(args, p, hide)
  for _, h in ipairs(hide and hide.paths or {}) do
    for _, place in ipairs(sandbox_places(p, h.path)) do
      if h.dir then
        add(args, "--tmpfs", place, "--remount-ro", place)
      else
        add(args, "--ro-bind", hide.empty, place)
      end
    end
  end
end

local function mount_args(args, p, plan)
  local late = { enter_bind(plan) }
  if #p.binds == 0 then add(args, "--ro-bind", "/", "/") end
  -- The capture overlays, set up before bwrap, are writable again here
  -- (the read-only root bind is recursive).
  for _, target in ipairs(plan.capture and plan.capture.tops or {}) do
    if under_fresh(target) then
      late[#late + 1] = { source = target, target = target, read_only = false }
    else
      add(args, "--bind", target, target)
    end
  end
  for _, b in ipairs(p.binds) do
    if b.target == "/proc" or b.target == "/dev" then  -- luacheck: ignore 542
      -- replaced by the fresh ones below (see profile.ignored_binds)
    elseif under_fresh(b.target) then
      late[#late + 1] = b
    else
      bind_args(args, b)
    end
  end
  add(args, "--dev", "/dev", "--proc", "/proc")
  for _, path in ipairs(PROC_READ_ONLY) do add(args, "--ro-bind-try", path, path) end
  add(args, "--tmpfs", "/tmp", "--tmpfs", "/run")
  if not plan.var_run_is_link then add(args, "--tmpfs", "/var/run") end
  for _, b in ipairs(late) do bind_args(args, b) end
  for _, path in ipairs(p.tmpfs_paths) do
    if path ~= "/tmp" and path ~= "/run" and path ~= "/var/run" then add(args, "--tmpfs", path) end
  end
  for _, b in ipairs(late_binds(plan)) do add(args, table.unpack(b)) end
  hide_args(args, p, plan.hide)
end

local function user_ns_args(ids)
  return { "--unshare-user", "--uid", tostring(ids.uid), "--gid", tostring(ids.gid) }
end

-- probe_args([user_ids]) -> the least of a capture's sandbox, for
-- `remote test` to try: bwrap's namespaces over a read-only root (and,
-- with user_ids, the command's own ids in a user namespace of bwrap's;
-- ids may be shell words such as "$(id -u)", left unquoted by the caller)
function M.probe_args(user_ids)
  local out = { "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid" }
  if user_ids then add(out, table.unpack(user_ns_args(user_ids))) end
  return out
end

local function env_args(args, p, getenv, path_prefix)
  local keys = {}
  for k in pairs(p.environment) do keys[#keys + 1] = k end
  table.sort(keys)
  add(args, "--clearenv")
  for _, k in ipairs(keys) do
    local value = profile.expand(p.environment[k], getenv)
    if k == "PATH" and path_prefix then value = path_prefix .. ":" .. value end
    -- "${USER}" with USER unset leaves the variable out rather than empty
    if value ~= "" or p.environment[k] == "" then add(args, "--setenv", k, value) end
  end
end

local function working_dir(p, cwd)
  if #p.binds == 0 and cwd and cwd:sub(1, 1) == "/" and not under_fresh(cwd) then
    return cwd
  end
  return "/"
end

-- The capabilities the sandboxed command keeps: none in a plain sandbox;
-- in a capture as root, Docker's set inside our own user namespace.  A
-- remote capture has no user namespace of ours (util-linux cannot map
-- every id without newuidmap), so there no capability that could make a
-- device node.
local function caps_for(plan, where)
  if not (plan.capture and plan.capture.root) then return {} end
  if where == "local" then return M.ROOT_CAPS end
  local out = {}
  for _, c in ipairs(M.ROOT_CAPS) do
    if c ~= "CAP_MKNOD" then out[#out + 1] = c end
  end
  return out
end

-- args(profile, plan, where) -> the bwrap arguments before the command.
-- plan: cwd, getenv (for ${VAR} in environment values), seccomp_fds,
-- var_run_is_link (the host's /var/run is a symlink to /run), capture
-- ({staging =, shims =, tops =, deferred_paths =, hidden =, root =, user_ids =}: the overlaid
-- paths bound writable, the staging's shims bound in), script ({source =,
-- target =}), enter ({exe =} or {fd =}: shannot's first program, see
-- command), hide ({paths =, empty =}: see hide_args).
function M.args(p, plan, where)
  where = where or "local"
  assert(where == "local" or where == "remote", "where: local or remote")
  local args = {}
  mount_args(args, p, plan)
  add(args, table.unpack(UNSHARE))
  -- A remote capture as another user than root runs in util-linux's user
  -- namespace mapping only that user to 0 (a mount needs capabilities
  -- kept across exec): the command gets its own ids back in one of
  -- bwrap's, as a local one keeps them.
  local ids = plan.capture and plan.capture.user_ids
  if ids then add(args, table.unpack(user_ns_args(ids))) end
  if p.network_isolation ~= false then add(args, "--unshare-net") end
  -- Why: as real root bwrap makes no user namespace and would keep nearly
  -- every capability (mount, mknod); the sandboxed command gets none, or
  -- a Docker-like set inside the capture's user namespace.
  add(args, "--cap-drop", "ALL")
  for _, cap in ipairs(caps_for(plan, where)) do add(args, "--cap-add", cap) end
  add(args, "--die-with-parent", "--new-session")
  env_args(args, p, plan.getenv or os.getenv, plan.capture and M.SHIM_BIN)
  -- Filters stack (the kernel takes the strictest answer): shannot's
  -- default first, then the profile's own.
  for _, fd in ipairs(plan.seccomp_fds or { "FD" }) do add(args, "--add-seccomp-fd", tostring(fd)) end
  add(args, "--chdir", working_dir(p, plan.cwd))
  for _, a in ipairs(p.additional_args) do args[#args + 1] = a end
  return args
end

-- command(profile, plan) -> what bwrap runs: plan.argv, behind shannot's
-- own first program when plan.enter names it (plan.sockets_fd: where it
-- hands the socket calls' listener back, for unix_sockets; plan.report:
-- the command's name as shannot shows it, when that program waits for the
-- command and ends as `run` does, for a sandbox exec'd in place).
function M.command(p, plan)
  if not plan.enter then return plan.argv end
  local dirs = M.writable_dirs(p, plan)
  local out = { M.ENTER, const.SANDBOX_ENTER }
  if plan.report then add(out, "--report", plan.report) end
  add(out, tostring(plan.sockets_fd or "-"), tostring(#dirs))
  table.move(dirs, 1, #dirs, #out + 1, out)
  table.move(plan.argv, 1, #plan.argv, #out + 1, out)
  return out
end

-- argv(profile, plan, where) -> the whole command line: plan.bwrap (the
-- remote's own "bwrap" by default), the arguments, bwrap's status pipe
-- where we read it (plan.status_fd, locally), "--", the command.
function M.argv(p, plan, where)
  local out = { plan.bwrap or "bwrap" }
  local args = M.args(p, plan, where)
  table.move(args, 1, #args, 2, out)
  if plan.status_fd then add(out, "--json-status-fd", tostring(plan.status_fd)) end
  out[#out + 1] = "--"
  local command = M.command(p, plan)
  table.move(command, 1, #command, #out + 1, out)
  return out
end

return M
