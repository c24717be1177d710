-- The system call filter every sandbox gets (bwrap --add-seccomp-fd),
-- whatever its profile: what Docker's default profile refuses, plus no
-- AF_UNIX socket (no host socket can be reached, wherever it lies), no
-- kernel keyring, no io_uring (it would do socket and connect behind the
-- filter's back) and no terminal injection.  A profile's own
-- `seccomp_profile` is loaded as a further filter: the kernel applies the
-- stricter answer of all, so it can add refusals, never lift these.
local core = require("shannot.core.seccomp")

local M = {}

local EPERM, EACCES, ENOSYS = 1, 13, 38
local AF_UNIX, AF_VSOCK = 1, 40
local SOCK_DGRAM, SOCK_TYPE_MASK = 2, 0xf  -- the type without NONBLOCK/CLOEXEC
local LOW32 = 0xffffffff  -- int arguments: the kernel reads 32 bits only
local TIOCSTI, TIOCLINUX = 0x5412, 0x541C
local PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
local CLONE_NEW = {
  0x00020000, -- NEWNS
  0x02000000, -- NEWCGROUP
  0x04000000, -- NEWUTS
  0x08000000, -- NEWIPC
  0x10000000, -- NEWUSER
  0x20000000, -- NEWPID
  0x40000000, -- NEWNET
}

-- Refused outright with EPERM: host-global state (clock, keyring, swap,
-- modules, accounting, quotas), mounts and namespaces (the sandbox is
-- built before the filter loads), and kernel attack surface.
M.DENIED = {
  "add_key", "keyctl", "request_key",
  "bpf", "userfaultfd", "perf_event_open", "kexec_load", "kexec_file_load",
  "open_by_handle_at", "init_module", "finit_module", "delete_module", "create_module",
  "query_module", "get_kernel_syms", "acct", "swapon", "swapoff", "reboot",
  "settimeofday", "clock_settime", "clock_adjtime", "stime", "iopl", "ioperm",
  "syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "nfsservctl", "uselib", "vhangup",
  "mount", "umount", "umount2", "pivot_root", "unshare", "setns", "fanotify_init",
  "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
  "io_uring_setup", "io_uring_enter", "io_uring_register", "process_vm_writev",
  "vm86", "vm86old",
}

-- rules([opts]) -> the default filter's rules, in shannot.core.seccomp's
-- form.  opts.unix_sockets: AF_UNIX stream and seqpacket sockets may be
-- made, because the sandbox's first program hands their connects to
-- shannot, which makes only those to the profile's allow list (notify.c).
function M.rules(opts)
  local rules = {}
  for _, name in ipairs(M.DENIED) do rules[#rules + 1] = { name, errno = EPERM } end
  -- No AF_UNIX socket at all otherwise: a path socket cannot be told from
  -- an abstract one here (connect's address is in memory), and every host
  -- socket outside the fresh /run and /tmp would be reachable.
  if not (opts and opts.unix_sockets) then
    rules[#rules + 1] = { "socket", errno = EACCES, args = { { 0, "masked_eq", LOW32, AF_UNIX } } }
  else
    -- A datagram socket sends to any address it is given, on every send;
    -- only connect is handed over, so there are none.
    rules[#rules + 1] = { "socket", errno = EACCES,
      args = { { 0, "masked_eq", LOW32, AF_UNIX }, { 1, "masked_eq", SOCK_TYPE_MASK, SOCK_DGRAM } } }
  end
  -- Nor from a socket pair: a datagram one also sends to any path.
  rules[#rules + 1] = { "socketpair", errno = EACCES,
    args = { { 0, "masked_eq", LOW32, AF_UNIX }, { 1, "masked_eq", SOCK_TYPE_MASK, SOCK_DGRAM } } }
  -- vsock is not namespaced: a port in it is the whole VM's, and CID 2 is
  -- the hypervisor (Docker refuses it too)
  rules[#rules + 1] = { "socket", errno = EACCES, args = { { 0, "masked_eq", LOW32, AF_VSOCK } } }
  for _, flag in ipairs(CLONE_NEW) do
    rules[#rules + 1] = { "clone", errno = EPERM, args = { { 0, "masked_eq", flag, flag } } }
  end
  -- clone3 passes its flags in memory: ENOSYS makes libc fall back to clone.
  rules[#rules + 1] = { "clone3", errno = ENOSYS }
  for _, request in ipairs({ PTRACE_ATTACH, PTRACE_SEIZE }) do
    rules[#rules + 1] = { "ptrace", errno = EPERM, args = { { 0, "eq", request } } }
  end
  for _, request in ipairs({ TIOCSTI, TIOCLINUX }) do
    rules[#rules + 1] = { "ioctl", errno = EPERM, args = { { 1, "masked_eq", LOW32, request } } }
  end
  return rules
end

-- program([arch [, opts]]) -> the compiled filter (bytes) for arch (a
-- `uname -m` name; default this machine's) | nil, msg; opts as rules()
function M.program(arch, opts)
  local bpf, msg = core.compile(M.rules(opts), arch)
  if not bpf then return nil, msg end
  return bpf
end

-- Where the compiled filter for this machine is kept between runs:
-- compiling loads libseccomp, which cost a plain sandbox's start-up more
-- than the rest of its Lua side (design note 113).  The name says all it
-- depends on: this binary (the rules are in it), the kernel release and
-- the options.  None with SHANNOT_LUA_DIR (rules may differ from the
-- binary's) or when /proc/self/exe cannot be looked at.
local function cache_file(opts)
  local fs = require("shannot.fs")
  local sys = require("shannot.core.sys")
  local env = os.getenv("SHANNOT_LUA_DIR")
  if env and env ~= "" then return nil end
  local exe = fs.stat("/proc/self/exe")
  if not exe then return nil end
  local release = (sys.uname() or {}).release or "?"
  local name = string.format("seccomp-%d-%d-%d-%d.%d-%s-%s.bpf", exe.dev, exe.ino, exe.size, exe.mtime_sec,
    exe.mtime_nsec or 0, release, opts and opts.unix_sockets and "unix" or "plain")
  return require("shannot.paths").data_dir() .. "/cache", (name:gsub("[^%w.%-]", "_"))
end

-- Ours alone: a file another user could write might weaken the filter.
local function trusted(fs, path, euid)
  local st = fs.lstat(path)
  return st ~= nil and st.uid == euid and st.mode & 18 == 0  -- 18 = 022
end

-- native_program([opts]) -> program(nil, opts), kept in the data
-- directory's cache/ and read from there while this binary and kernel are
-- the same | nil, msg
function M.native_program(opts)
  local dir, name = cache_file(opts)
  if not dir then return M.program(nil, opts) end
  local fs = require("shannot.fs")
  local euid = require("shannot.core.sys").ids(false).euid
  local path = dir .. "/" .. name
  if trusted(fs, dir, euid) and trusted(fs, path, euid) then
    local bpf = fs.read_file(path, 1024 * 1024)
    if bpf and #bpf > 0 and #bpf % 8 == 0 then return bpf end  -- whole sock_filter instructions
  end
  local bpf, msg = M.program(nil, opts)
  if not bpf then return nil, msg end
  if fs.mkdir_p(dir, 448) and trusted(fs, dir, euid) then
    fs.write_atomic(path, bpf, 384)  -- best effort: the next run compiles again
  end
  return bpf
end

return M
