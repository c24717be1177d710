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

return M
