-- The shell command lines a remote capture sends over SSH (DESIGN §2: the
-- same steps as the local C setup, as one command line; the remote needs
-- only sh, util-linux, bwrap and GNU tar).  Every argument is quoted here;
-- nothing from the profile or the command reaches the remote shell
-- unquoted.
local text = require("shannot.text")

local M = {}

-- Where the remote stages a run: the first of these not under a capture
-- path (an overlay's upper inside its own lower fails with ELOOP).
M.STAGING_ROOTS = { "/tmp", "/var/tmp", "/dev/shm" }

local q = text.quote

local under = require("shannot.paths").under

-- staging_root(tops) -> a directory for the remote staging | nil
function M.staging_root(tops)
  for _, root in ipairs(M.STAGING_ROOTS) do
    local covered = false
    for _, top in ipairs(tops) do covered = covered or under(root, top) end
    if not covered then return root end
  end
end

-- overlayfs option values escape "\", "," and ":" with a backslash.
local function opt_escape(path)
  return (path:gsub("[\\,:]", "\\%0"))
end

-- overlay_options(o) -> the mount options of overlay o
function M.overlay_options(o)
  return "lowerdir=" .. opt_escape(o.lower or o.target) .. ",upperdir=" .. opt_escape(o.upper) ..
    ",workdir=" .. opt_escape(o.work) .. ",userxattr"
end

-- mount_lines(overlays) -> shell lines mounting each overlay, parent
-- first.  A mount below a capture path is first bound aside (o.lower):
-- once its parent's overlay is up, its path leads into that overlay's
-- own (empty) directory, no longer to the mount itself.
function M.mount_lines(overlays)
  local out = {}
  for _, o in ipairs(overlays) do
    if o.lower then out[#out + 1] = "mount --bind " .. q(o.target) .. " " .. q(o.lower) end
  end
  for _, o in ipairs(overlays) do
    out[#out + 1] = "mount -t overlay overlay -o " .. q(M.overlay_options(o)) .. " " .. q(o.target)
  end
  return out
end

-- probe_command(capture, search_path, defer) -> what the plan needs to
-- know of the remote, one KEY=VALUE line each (id= is id(1)'s own line:
-- uid=N(name) gid=N(name) ...), then its mount table.  Shell builtins
-- wherever they do (cd -P for realpath, read for sed): every process a
-- command starts there costs the remote a fork and an exec, and a fleet
-- pays that on every host.
function M.probe_command(capture, search_path, defer)
  local caps, dirs, names = {}, {}, {}
  for i, p in ipairs(capture) do caps[i] = q(p) end
  for d in search_path:gmatch("[^:]+") do dirs[#dirs + 1] = q(d) end
  for i, n in ipairs(defer) do names[i] = q(n) end
  -- physical(VAR, PATH): the directory PATH resolved (no symlink), in
  -- $PWD, without a process: cd -P, then back
  return table.concat({
    "printf 'id='; id", 'echo "home=$HOME"', "printf 'arch='; uname -m",
    "printf 'bwrap='; command -v bwrap || echo",
    'while read -r k v _; do if [ "$k" = MemTotal: ]; then echo "memtotal_kb=$v"; break; fi; done < /proc/meminfo',
    '[ -L /var/run ] && echo "var_run_link=yes"',
    -- what the user owns (own=), for a capture as another user than root
    "if cd -P -- \"$HOME\" 2>/dev/null; then printf 'home_real=%s\\n' \"$PWD\"; " ..
      "[ -O \"$PWD\" ] && printf 'own=%s\\n' \"$PWD\"; fi",
    "for p in " .. table.concat(caps, " ") .. "; do if cd -P -- \"$p\" 2>/dev/null; then " ..
      "printf 'top=%s\\n' \"$PWD\"; [ -O \"$PWD\" ] && printf 'own=%s\\n' \"$PWD\"; fi; done",
    "for d in " .. table.concat(dirs, " ") .. "; do cd -P -- \"$d\" 2>/dev/null || continue; " ..
      "for n in " .. (#names > 0 and table.concat(names, " ") or "''") .. "; do " ..
      "[ -f \"$PWD/$n\" ] && [ ! -L \"$PWD/$n\" ] && printf 'defer=%s\\n' \"$PWD/$n\"; done; done",
    "cd /", 'echo "---mountinfo"', "cat /proc/self/mountinfo",
  }, "\n")
end

-- octal(bytes) -> the bytes as printf escapes (\ooo each): any byte, NUL
-- included, through any POSIX sh's printf, with nothing to quote.
function M.octal(bytes)
  return (bytes:gsub(".", function(c) return string.format("\\%03o", c:byte()) end))
end

-- SECCOMP_FD0: the first of the descriptors the filters reach bwrap on;
-- STATUS_FD: where bwrap writes its JSON status (the staging's "status"
-- file): no "child-pid" there means the sandbox was never set up.
M.SECCOMP_FD0 = 7
M.STATUS_FD = 6

-- stage_ops(plan) -> what fills the staging directory plan.dir (made
-- before, mode 700, by a name that must not exist), as operations {op, a,
-- path [, text]} (src/stage.c's): the uppers as their host directories
-- (owner first, then mode and times), the shims, the records any
-- sandboxed user appends to (666), the questions' channel, the empty
-- file hidden files show (plan.empty).
function M.stage_ops(plan)
  local d = plan.dir
  local ops = { { "d", "700", d .. "/upper" }, { "d", "700", d .. "/wd" }, { "d", "700", d .. "/lower" } }
  local function add(op, a, path, txt) ops[#ops + 1] = { op, a, path, txt } end
  for _, o in ipairs(plan.overlays) do
    add("d", "700", o.upper)
    add("d", "700", o.work)
    if o.lower then add("d", "700", o.lower) end
    if plan.root then add("o", o.target, o.upper) end
    add("r", o.target, o.upper)
  end
  add("d", "755", d .. "/defer")
  add("d", "755", d .. "/defer/bin")
  add("w", "755", d .. "/defer/shim", plan.shim)
  add("f", "666", d .. "/defer/deferred")
  -- the questions' channel (capture/queries.lua) and its record
  add("d", "1777", d .. "/defer/q")
  add("p", "666", d .. "/defer/q/ask")
  add("f", "600", d .. "/status")
  add("f", "600", d .. "/queries")
  -- what a hidden file shows inside the sandbox (bwrap.lua's hide_args)
  if plan.empty then add("f", "444", d .. "/empty") end
  for _, name in ipairs(plan.defer) do add("l", "/run/shannot/shim", d .. "/defer/bin/" .. name) end
  return ops
end

-- The operations as shell commands, for a remote without the helper
-- (another architecture, the client build): a process or two each.
local SHELL_OPS = {
  d = function(a, path) return "mkdir -m " .. a .. " " .. q(path) end,
  f = function(a, path) return ": > " .. q(path) .. " && chmod " .. a .. " " .. q(path) end,
  p = function(a, path) return "mkfifo -m " .. a .. " " .. q(path) end,
  w = function(a, path, txt)
    return "printf '%s' " .. q(txt) .. " > " .. q(path) .. " && chmod " .. a .. " " .. q(path)
  end,
  l = function(a, path) return "ln -s " .. q(a) .. " " .. q(path) end,
  r = function(a, path)
    return "chmod --reference=" .. q(a) .. " " .. q(path) .. " && touch -r " .. q(a) .. " " .. q(path)
  end,
  o = function(a, path) return "chown --reference=" .. q(a) .. " " .. q(path) end,
}

-- prepare_command(plan) -> fills the staging (stage_ops): through the
-- uploaded helper when there is one (plan.enter: one process for all of
-- it), else by shell commands; then the system call filters (printf, a
-- builtin).  Run in a subshell, so the run keeps the login's umask.
function M.prepare_command(plan)
  local lines = { "set -eu", "umask 077" }
  local ops = M.stage_ops(plan)
  if plan.enter then
    local words = { q(plan.enter), "__stage" }
    for _, op in ipairs(ops) do
      for i = 1, 4 do
        if op[i] then words[#words + 1] = q(op[i]) end
      end
    end
    lines[#lines + 1] = table.concat(words, " ")
  else
    for _, op in ipairs(ops) do lines[#lines + 1] = SHELL_OPS[op[1]](op[2], op[3], op[4]) end
  end
  for i, bpf in ipairs(plan.seccomp or {}) do
    lines[#lines + 1] = "printf '" .. M.octal(bpf) .. "' > " .. q(plan.dir .. "/seccomp-" .. i)
  end
  return table.concat(lines, "\n")
end

-- The namespaces and mounts through the uploaded helper, in the process
-- that then becomes bwrap (src/stage.c's __ns): no unshare, sh, mount,
-- env or prlimit of the host's.
local function helper_words(plan, bw)
  local words = { q(plan.enter), "__ns", plan.root and "root" or "user",
    tostring(plan.limits and plan.limits.processes or -1) }
  for _, o in ipairs(plan.overlays) do
    if o.lower then table.move({ "b", q(o.target), q(o.lower) }, 1, 3, #words + 1, words) end
  end
  for _, o in ipairs(plan.overlays) do
    table.move({ "o", q(M.overlay_options(o)), q(o.target) }, 1, 3, #words + 1, words)
  end
  words[#words + 1] = "--"
  table.move(bw, 1, #bw, #words + 1, words)
  return table.concat(words, " ")
end

-- The same by the host's tools: unshare, sh, mount, env, prlimit.
local function tool_words(plan, bw, redirects)
  local inner = M.mount_lines(plan.overlays)
  -- Processes as an rlimit (util-linux prlimit; limits.rlimits says why
  -- not memory): no cgroup of ours where nothing of shannot is installed.
  local rlimits = ""
  if plan.limits then rlimits = string.format("prlimit --nproc=%d -- ", plan.limits.processes) end
  inner[#inner + 1] = "exec env -i " .. rlimits .. table.concat(bw, " ") .. " " .. redirects
  -- Not as root: a user namespace mapping the user to 0, as a mount needs
  -- capabilities that exec keeps only for uid 0 (bwrap gives the command
  -- its own ids back: bwrap.lua's user_ids).
  local unshare = plan.root and "unshare -m --propagation private" or
    "unshare -U -m --map-root-user --propagation private"
  return unshare .. " sh -c " .. q("set -e; " .. table.concat(inner, "; "))
end

-- run_command(plan) -> the run itself: a mount namespace (and, not as
-- root, a user namespace), the overlays, then bwrap (plan.bwrap_argv) with
-- an empty environment, killed after plan.timeout seconds if given;
-- plan.server_argv: the questions' server (capture/queries.lua) started
-- beside it.  Through the uploaded helper (plan.enter) when there is one
-- and bwrap's path is known (plan.bwrap_path, the probe's), else by the
-- host's tools.
function M.run_command(plan)
  local bw = {}
  for i, a in ipairs(plan.bwrap_argv) do bw[i] = q(a) end
  -- bwrap runs with an empty environment: the SSH session's (client
  -- address, user, paths) would show inside as /proc/1/environ.
  local helper = plan.enter and plan.bwrap_path and plan.bwrap_path:sub(1, 1) == "/"
  bw[1] = plan.bwrap_path and q(plan.bwrap_path) or ('"$(command -v ' .. bw[1] .. ')"')
  local redirects = { M.STATUS_FD .. ">" .. q(plan.dir .. "/status") }
  for i = 1, #(plan.seccomp or {}) do
    redirects[#redirects + 1] = (M.SECCOMP_FD0 + i - 1) .. "<" .. q(plan.dir .. "/seccomp-" .. i)
  end
  redirects = table.concat(redirects, " ")
  -- OpenSSH refuses to signal a root login's command when the channel
  -- times out, so the remote ends the run itself (bwrap's
  -- --die-with-parent takes the sandbox with it).
  local limit = plan.timeout and string.format("timeout -s KILL %g ", plan.timeout) or ""
  -- the questions' server, outside the sandbox: it ends when the run does
  -- (its parent, this shell exec'd into the run, is gone)
  local server = ""
  if plan.server_argv then
    local argv = {}
    -- "$$": this shell's pid, which the run keeps (exec)
    for i, a in ipairs(plan.server_argv) do argv[i] = a == "$$" and '"$$"' or q(a) end
    server = table.concat(argv, " ") .. " </dev/null >/dev/null 2>&1 & "
  end
  if helper then return server .. "exec " .. limit .. helper_words(plan, bw) .. " " .. redirects end
  return server .. "exec " .. limit .. tool_words(plan, bw, redirects)
end

-- prepare_and_run_command(plan) -> the staging filled (prepare_command, in
-- a subshell), then the run: one SSH channel for both
function M.prepare_and_run_command(plan)
  return "(\n" .. M.prepare_command(plan) .. "\n) || exit 125\n" .. M.run_command(plan)
end

-- cleanup_command(dir [, root]): the staging gone, 000-mode work dirs
-- included (root removes them as they are)
function M.cleanup_command(dir, root)
  if root then return "rm -rf " .. q(dir) end
  return "chmod -R u+rwx " .. q(dir) .. " 2>/dev/null; rm -rf " .. q(dir)
end

-- A staging of more than this many KiB (du -sk) is removed in the
-- background once streamed (collect_command), and the collect ends with
-- CLEANUP_LATER: the remote's unlinking of a large tree (seconds for ten
-- thousand files) overlaps the work here, and finish_command waits for it
-- before the capture ends.
M.LARGE_STAGING_KB = 4096
M.CLEANUP_LATER = 90

-- collect_command(dir [, max_bytes [, root]]) -> the command line that
-- streams the upper trees and the deferred record back as one GNU tar
-- stream on stdout, cut after max_bytes (a longer stream arrives
-- truncated and is refused, rather than filling the disk here), then
-- removes the staging (cleanup_command): one SSH channel for both.  Its
-- exit status is the stream's, but CLEANUP_LATER when the stream went
-- whole and the staging was large: its removal then goes on in the
-- background, and finish_command must follow.
function M.collect_command(dir, max_bytes, root)
  -- no --sparse: GNU's sparse records are not read here (tar.c refuses
  -- them); the zeros come as zeros, and the replica and execute make
  -- holes of them again
  local tar = "tar --xattrs --xattrs-include='user.*' --numeric-owner --format=posix -cf - upper " ..
    "defer/deferred queries status"
  local stream = max_bytes and (tar .. string.format(" | head -c %d", max_bytes + 1)) or tar
  local cleanup = M.cleanup_command(dir, root)
  return "cd " .. q(dir) .. " && " .. stream .. "; s=$?; big=; " ..
    string.format('[ $s -eq 0 ] && set -- $(du -sk upper 2>/dev/null) && [ "${1:-0}" -gt %d ] && big=1; ',
      M.LARGE_STAGING_KB) ..
    'cd / && if [ "$big" ]; then (' .. cleanup .. ") </dev/null >/dev/null 2>&1 & exit " .. M.CLEANUP_LATER ..
    "; fi; " .. cleanup .. "; exit $s"
end

-- finish_command(dir [, root]) -> the staging gone, once a collect left
-- its removal to the background (CLEANUP_LATER): removed again until it
-- is (the background's rm may still hold an entry the first pass wanted
-- gone), for at most ~5 s of retries.
function M.finish_command(dir, root)
  local cleanup = M.cleanup_command(dir, root)
  return cleanup .. "; n=0; while [ -e " .. q(dir) .. " ] && [ $n -lt 100 ]; do sleep 0.05; " .. cleanup ..
    "; n=$((n+1)); done"
end

return M
