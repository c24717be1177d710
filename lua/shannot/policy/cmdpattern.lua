-- Command patterns ([profile] auto_approve / always_deny) and the argv
-- normaliser they are matched against.  The earlier shannot matched the
-- first word (`ls; rm -rf ~` passed as "ls") or exact strings (`rm -fr /`
-- slipped past "rm -rf /"); here both sides are normalised the same way:
--
--   * wrappers go: sudo/doas (and their options), env [-i] [-u N] [VAR=x],
--     nice [-n N], nohup, ionice, stdbuf, time, command, exec, builtin,
--     timeout [opts] DURATION, chroot DIR, setsid, flock FILE;
--   * the command is its base name (/usr/bin/rm and \rm are rm);
--   * a unique prefix of a long option is the option (--recur is
--     --recursive); path operands are written the shortest way (//,
--     /usr/.. and /. are /); kill's signal is dropped, its pids kept;
--   * normalise_all also finds the commands inside (sh -c, busybox,
--     xargs, find -exec, eval, env -S) for the deny list;
--   * bundled short flags split and flags are sorted and de-duplicated
--     (-rf, -fr, -r -f and --recursive --force are all -f -r), operands
--     keep their order after the flags; "--" ends flags.
--
-- A pattern is words split on spaces.  Each word is a glob (fnmatch, "*"
-- never crossing "/") for
-- one normalised word; a last word "*" stands for any remaining operands.
--   approve (match_exact):  the flags must be the same set, the operands
--     must match one for one.  "ls *" is ls with anything; "date" is bare
--     date only (date -s sets the clock).
--   deny (match_contains):  the command's flags must include the
--     pattern's and every pattern operand must match some operand, so
--     extra flags or operands (rm -rfv /tmp /) do not dodge it.
local err = require("shannot.err")
local glob = require("shannot.glob")

local M = {}

-- Long options that mean a short flag, per command.
local LONG = {
  rm = { ["--recursive"] = "-r", ["--force"] = "-f", ["--dir"] = "-d" },
  cp = { ["--recursive"] = "-r", ["--force"] = "-f" },
  mv = { ["--force"] = "-f" },
  chmod = { ["--recursive"] = "-R" },
  chown = { ["--recursive"] = "-R" },
  chgrp = { ["--recursive"] = "-R" },
  shred = { ["--remove"] = "-u", ["--zero"] = "-z" },
  passwd = { ["--delete"] = "-d" },
}

-- Every long option of the commands the deny list watches, so that a
-- unique prefix (GNU getopt takes --recur, --no-pres) means the option.
local LONG_NAMES = {
  rm = { "--recursive", "--force", "--dir", "--no-preserve-root", "--preserve-root", "--one-file-system",
    "--interactive", "--verbose", "--help", "--version" },
  cp = { "--recursive", "--force", "--archive", "--no-dereference", "--preserve", "--verbose",
    "--target-directory", "--no-target-directory", "--update", "--remove-destination", "--sparse" },
  mv = { "--force", "--no-clobber", "--verbose", "--target-directory", "--update", "--backup" },
  shred = { "--remove", "--zero", "--force", "--iterations", "--size", "--exact", "--verbose" },
  passwd = { "--delete", "--lock", "--unlock", "--expire", "--status", "--all", "--root", "--prefix", "--quiet" },
}
for _, cmd in ipairs({ "chmod", "chown", "chgrp" }) do
  LONG_NAMES[cmd] = { "--recursive", "--no-preserve-root", "--preserve-root", "--reference", "--verbose",
    "--changes", "--silent", "--quiet", "--dereference", "--no-dereference", "--from" }
end

-- long_option(command, arg) -> arg with a unique prefix spelled out
local function long_option(command, a)
  local names = LONG_NAMES[command]
  if not names or a:sub(1, 2) ~= "--" then return a end
  local name, value = a:match("^([^=]*)(=?.*)$")
  local found
  for _, n in ipairs(names) do
    if n == name then return a end
    if n:sub(1, #name) == name then
      if found then return a end  -- ambiguous: getopt refuses it too
      found = n
    end
  end
  return found and (found .. value) or a
end

-- clean_path(word) -> a path operand written the shortest way: "//",
-- "/." and ".." resolved lexically (/usr/../ is /), so no spelling of
-- a path dodges a pattern.  Other words as they are; "of=/x" too.
function M.clean_path(word)
  local prefix, path = word:match("^(%w+=)(/.*)$")
  if not prefix then prefix, path = "", word end
  if path:sub(1, 1) ~= "/" then return word end
  -- /proc/self/root/dev/vda is /dev/vda (a process's root is / here)
  local rest = path:match("^/+proc/+[%w-]+/+root(/.*)$") or path:match("^/+proc/+[%w-]+/+root$") and "/"
  while rest do
    path = rest
    rest = path:match("^/+proc/+[%w-]+/+root(/.*)$")
  end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  -- no trailing "/": `rm -rf /usr/` is rm -rf /usr (a pattern /* holds it)
  return prefix .. "/" .. table.concat(parts, "/")
end

-- Short flags that are the same thing, per command.
local SAME = { rm = { ["-R"] = "-r" }, cp = { ["-R"] = "-r" } }

-- wrapper -> set of its options that take a value
local WRAPPERS = {
  sudo = { ["-u"] = true, ["-g"] = true, ["-C"] = true, ["-D"] = true, ["-h"] = true,
    ["-p"] = true, ["-r"] = true, ["-t"] = true, ["-U"] = true, ["-T"] = true },
  doas = { ["-u"] = true, ["-C"] = true },
  env = { ["-u"] = true, ["-C"] = true, ["-S"] = true },
  nice = { ["-n"] = true },
  ionice = { ["-c"] = true, ["-n"] = true, ["-p"] = true },
  stdbuf = { ["-i"] = true, ["-o"] = true, ["-e"] = true },
  nohup = {}, time = {}, command = {}, exec = {}, builtin = {},
  -- and one positional (the duration) after its options
  timeout = { ["-s"] = true, ["-k"] = true, ["--signal"] = true, ["--kill-after"] = true },
  chroot = { ["--userspec"] = true, ["--groups"] = true },
  setsid = {}, unbuffer = {}, chronic = {}, flock = { ["-w"] = true, ["-E"] = true },
  -- tracers run the command they are given
  strace = { ["-o"] = true, ["-e"] = true, ["-p"] = true, ["-s"] = true, ["-u"] = true, ["-E"] = true,
    ["-P"] = true, ["-a"] = true, ["-b"] = true, ["-I"] = true, ["-X"] = true, ["-O"] = true, ["-S"] = true },
  ltrace = { ["-o"] = true, ["-e"] = true, ["-p"] = true, ["-s"] = true, ["-u"] = true, ["-n"] = true },
  valgrind = {},
  -- scheduling, limits, credentials and namespaces of the command they run
  chrt = { ["-T"] = true, ["-P"] = true, ["-D"] = true, ["--sched-runtime"] = true,
    ["--sched-period"] = true, ["--sched-deadline"] = true },
  taskset = {},
  prlimit = { ["-p"] = true, ["--pid"] = true, ["-o"] = true, ["--output"] = true },
  setpriv = { ["--reuid"] = true, ["--regid"] = true, ["--ruid"] = true, ["--rgid"] = true,
    ["--euid"] = true, ["--egid"] = true, ["--groups"] = true, ["--securebits"] = true,
    ["--pdeathsig"] = true, ["--inh-caps"] = true, ["--ambient-caps"] = true, ["--bounding-set"] = true,
    ["--selinux-label"] = true, ["--apparmor-profile"] = true, ["--landlock-access"] = true,
    ["--landlock-rule"] = true, ["--seccomp-filter"] = true },
  nsenter = { ["-t"] = true, ["--target"] = true, ["-S"] = true, ["--setuid"] = true, ["-G"] = true,
    ["--setgid"] = true, ["-N"] = true, ["--env"] = false },
  unshare = { ["-S"] = true, ["--setuid"] = true, ["-G"] = true, ["--setgid"] = true, ["-R"] = true,
    ["--root"] = true, ["-w"] = true, ["--wd"] = true, ["--propagation"] = true, ["--map-user"] = true,
    ["--map-group"] = true, ["--map-users"] = true, ["--map-groups"] = true, ["-l"] = true, ["--load-interp"] = true },
  pkexec = { ["--user"] = true },
  ["systemd-run"] = { ["-p"] = true, ["--property"] = true, ["-u"] = true, ["--unit"] = true,
    ["-M"] = true, ["--machine"] = true, ["-H"] = true, ["--host"] = true, ["-E"] = true, ["--setenv"] = true,
    ["--description"] = true, ["--slice"] = true, ["--uid"] = true, ["--gid"] = true, ["--nice"] = true,
    ["--working-directory"] = true, ["--service-type"] = true, ["--on-active"] = true, ["--on-boot"] = true,
    ["--on-startup"] = true, ["--on-unit-active"] = true, ["--on-unit-inactive"] = true,
    ["--on-calendar"] = true, ["--timer-property"] = true, ["--path-property"] = true,
    ["--socket-property"] = true },
  -- runuser -u USER CMD... (runuser USER -c CODE is shell code: see nested)
  runuser = { ["-u"] = true, ["--user"] = true, ["-g"] = true, ["--group"] = true, ["-G"] = true,
    ["--supp-group"] = true, ["-s"] = true, ["--shell"] = true, ["-w"] = true,
    ["--whitelist-environment"] = true },
}

-- Wrappers that take positionals before the command: how many.
local POSITIONALS = { timeout = 1, chroot = 1, flock = 1, chrt = 1, taskset = 1 }

local function basename(word)
  word = word:gsub("^\\", "")
  return word:match("^.*/(.*)$") or word  -- anchored: linear in a long word
end

-- The options given to a wrapper before its positionals or command
-- (-uroot counts as -u too), and where they end.
local function wrapper_options(name, argv, i)
  local seen, takes_value = {}, WRAPPERS[name]
  while argv[i] and argv[i] ~= "--" and argv[i]:sub(1, 1) == "-" and #argv[i] > 1 do
    local a = argv[i]
    seen[a:match("^([^=]*)")], seen[a:sub(1, 2)] = true, true
    i = i + (takes_value[a] and 2 or 1)
  end
  return seen, i
end

-- Whether the wrapper at argv[i - 1] runs a command of argv: runuser only
-- with -u (runuser USER -c CODE is shell code, see nested()), chrt -p and
-- taskset -p change a running process, flock FILE -c CODE is shell code.
local function wraps(name, argv, i)
  local seen, after = wrapper_options(name, argv, i)
  if name == "runuser" then return seen["-u"] or seen["--user"] end
  if name == "chrt" or name == "taskset" then return not (seen["-p"] or seen["--pid"]) end
  if name == "flock" then
    if argv[after] == "--" then after = after + 1 end
    local c = argv[after + 1]
    return not (c and (c:match("^%-c") or c:match("^%-%-command")))
  end
  return true
end

-- Wrapper options that change the directory the command runs in.
local CHDIR = {
  env = { ["-C"] = true, ["--chdir"] = true }, sudo = { ["-D"] = true, ["--chdir"] = true },
  nsenter = { ["-w"] = true, ["--wd"] = true }, unshare = { ["-w"] = true, ["--wd"] = true },
  ["systemd-run"] = { ["--working-directory"] = true },
}

-- Wrappers that change nothing of what the command may do when given
-- without options: a command line behind them may still be approved by
-- pattern.  Any other wrapper (or option) may run code of its own:
-- strace -o '|CMD', systemd-run -p ExecStartPre=..., timeout's signal.
local PLAIN_WRAPPERS = { sudo = true, doas = true, command = true, builtin = true, exec = true, nohup = true,
  time = true }

-- skip_wrappers(argv) -> index of the real command, whether an `env
-- VAR=value` sets a variable for it, whether a wrapper with options (or
-- one that is more than plain) came first, and the directory a wrapper
-- option named for it (or nil).
local function skip_wrappers(argv)
  local i, sets_env, wrapped, cwd = 1, false, false, nil
  while argv[i] do
    local name = basename(argv[i])
    local takes_value = WRAPPERS[name]
    if not takes_value or not wraps(name, argv, i + 1) then return i, sets_env, wrapped, cwd end
    if not PLAIN_WRAPPERS[name] then wrapped = true end
    i = i + 1
    while argv[i] do
      local a = argv[i]
      if a == "--" then i = i + 1; break end
      if name == "env" and a:find("^[%a_][%w_]*=") then
        sets_env = true
        i = i + 1
      elseif a:sub(1, 1) == "-" and #a > 1 then
        wrapped = true
        local opt, value = a:match("^(%-%-[^=]+)=(.*)$")
        if CHDIR[name] and CHDIR[name][opt or a] then cwd = value or argv[i + 1] end
        i = i + ((takes_value[a] and 2) or 1)
      else
        break
      end
    end
    i = i + (POSITIONALS[name] or 0)
  end
  return i, sets_env, wrapped, cwd
end

local function add_flag(flags, seen, flag)
  if not seen[flag] then
    seen[flag] = true
    flags[#flags + 1] = flag
  end
end

-- normalise(argv) -> {command, flags = {...}, operands = {...}, sets_env},
-- or nil for an empty command line.
function M.normalise(argv)
  local start, sets_env, wrapped = skip_wrappers(argv)
  if argv[start] == nil then return nil end
  local command = basename(argv[start])
  local long, same = LONG[command] or {}, SAME[command] or {}
  local flags, operands, seen, words = {}, {}, {}, {}
  local only_operands = false
  if command == "kill" then return M.normalise_kill(argv, start) end
  for i = start + 1, #argv do
    local a = long_option(command, argv[i])
    local cleaned = M.clean_path(a)
    words[#words + 1] = cleaned
    if only_operands or a == "-" or a:sub(1, 1) ~= "-" then
      operands[#operands + 1] = cleaned
    elseif a == "--" then
      only_operands = true
    elseif a:find("^%-%a+$") then  -- bundled short flags: -rf
      for c in a:sub(2):gmatch(".") do
        local f = "-" .. c
        add_flag(flags, seen, same[f] or f)
      end
    else
      add_flag(flags, seen, long[a] or a)
    end
  end
  table.sort(flags)
  -- sets_env: `env LD_PRELOAD=... cmd` is not cmd (policy never approves it)
  -- words: everything after the command in its order (an approve
  -- pattern's operands must come first: `systemctl -p status stop x` is
  -- no `systemctl status *`); wrapped: see skip_wrappers
  return { command = command, flags = flags, operands = operands, words = words, sets_env = sets_env or nil,
    wrapped = wrapped or nil }
end

-- kill's first argument may name the signal (-9, -KILL, -s KILL, -n 9,
-- --signal KILL); the rest are process ids, so -1 (every process) is an
-- operand: "kill -- -1" matches `kill -9 -1` and `kill -s KILL -1`.
local function names_signal(a, more)
  if not a or a == "--" or not a:match("^%-%w+$") then return false end
  return more or not a:match("^%-%d+$")  -- a lone -N is a pid: kill -1
end

function M.normalise_kill(argv, start)
  local i = start + 1
  local a = argv[i]
  if a == "-s" or a == "-n" or a == "--signal" then
    i = i + 2
  elseif names_signal(a, argv[i + 1] ~= nil) then
    i = i + 1
  end
  if argv[i] == "--" then i = i + 1 end
  local operands = table.move(argv, i, #argv, 1, {})
  return { command = "kill", flags = {}, operands = operands, words = operands }
end

---------------------------------------------------------------------------
-- Commands inside commands: sh -c, busybox, xargs, find -exec, eval,
-- env -S.  The deny list looks at every one of them.
---------------------------------------------------------------------------

M.MAX_NESTING = 4

M.SHELLS = { sh = true, bash = true, dash = true, zsh = true, ksh = true, mksh = true,
  ash = true, yash = true, posh = true }

-- xargs options that take a value as the next word
local XARGS_VALUE = { ["-a"] = true, ["-d"] = true, ["-E"] = true, ["-I"] = true, ["-L"] = true,
  ["-n"] = true, ["-P"] = true, ["-s"] = true, ["--arg-file"] = true, ["--delimiter"] = true,
  ["--max-lines"] = true, ["--max-args"] = true, ["--max-procs"] = true, ["--max-chars"] = true,
  ["--process-slot-var"] = true, ["--replace"] = false }

-- sh [options] -c CODE [arg0 [args]]: the CODE, or nil.
local function shell_code(argv, start)
  local i = start + 1
  local wants_code = false
  while argv[i] do
    local a = argv[i]
    if a == "--" then i = i + 1; break end
    if not a:match("^[-+]") then break end
    if a:match("^[-+]%a*c%a*$") and a:sub(1, 1) == "-" then wants_code = true end
    i = i + ((a == "-o" or a == "+o" or a == "-O" or a == "+O") and 2 or 1)
  end
  if wants_code then return argv[i] end
end

local function split_code(code)
  return require("shannot.shellsplit").split(code)
end

local function xargs_command(argv, start)
  local i = start + 1
  while argv[i] and argv[i]:sub(1, 1) == "-" and argv[i] ~= "--" do
    i = i + (XARGS_VALUE[argv[i]] and 2 or 1)
  end
  if argv[i] == "--" then i = i + 1 end
  if argv[i] then return { table.move(argv, i, #argv, 1, {}) } end
  return {}
end

-- An operand that stands for anything below the path before it (find's
-- {}): a pattern operand naming a path below that one matches it.
M.BELOW = "/\0"
-- More commands than this from one find (start paths x -exec parts) are
-- not spelt out: the list is marked incomplete.
M.MAX_FIND_COMMANDS = 4096

local FIND_EXEC = { ["-exec"] = true, ["-execdir"] = true, ["-ok"] = true, ["-okdir"] = true }

-- find -exec CMD ... {} ;: CMD once per start path, {} being that path
-- (what it names below the start paths is not known here).
local function find_commands(argv, start, roots)
  local out, i = {}, start + 1
  while argv[i] do
    if FIND_EXEC[argv[i]] then
      local cmd = {}
      i = i + 1
      while argv[i] and argv[i] ~= ";" and argv[i] ~= "+" do
        cmd[#cmd + 1] = argv[i]
        i = i + 1
      end
      for _, root in ipairs(#roots > 0 and roots or { "." }) do
        -- {} is the start path or anything found below it
        for _, at in ipairs({ root, (root:gsub("/+$", "")) .. M.BELOW }) do
          if #out >= M.MAX_FIND_COMMANDS then return out, true end
          local one = {}
          for k, w in ipairs(cmd) do one[k] = (w:gsub("{}", function() return at end)) end
          if #one > 0 then out[#out + 1] = one end
        end
      end
    end
    i = i + 1
  end
  return out
end

-- absolute(word, cwd) -> a relative path operand taken below cwd (the
-- directory a deferred command was recorded in); other words as they are.
function M.absolute(word, cwd)
  if not cwd or cwd:sub(1, 1) ~= "/" or word == "" or word:match("^[-/$~]") or word:find("=", 1, true) then
    return word
  end
  return M.clean_path(cwd .. "/" .. word)
end

-- Relative operands of commands after a `cd DIR` in the same shell code
-- are taken below DIR, so `cd / && rm -rf *` is seen as rm -rf /*.
local function follow_cd(commands, cwd)
  for _, cmd in ipairs(commands) do
    local is_cd, d = cmd[1] == "cd" or cmd[1] == "pushd", 2
    while is_cd and cmd[d] and cmd[d]:match("^%-[PLe@]+$") do d = d + 1 end  -- cd -P DIR
    if is_cd and cmd[d] == "--" then d = d + 1 end
    if is_cd and cmd[d] and cmd[d] ~= "-" then
      local dir = cmd[d]
      if dir:sub(1, 1) == "/" then cwd = dir elseif cwd then cwd = cwd .. "/" .. dir end
    elseif cwd then
      for i = 2, #cmd do cmd[i] = M.absolute(cmd[i], cwd) end
    end
  end
  return commands
end

local function shell_commands(code, cwd)
  return follow_cd(split_code(code), cwd)
end

-- The value of option -X (also -abX VALUE, -XVALUE) or --long (--long
-- VALUE, --long=VALUE) among argv's words after start, or nil.
local function option_value(argv, start, letter, long)
  for i = start + 1, #argv do
    local a = argv[i]
    if a == "--" then return nil end
    if a == long then return argv[i + 1] end
    local v = a:match("^" .. long:gsub("%-", "%%-") .. "=(.*)$")
    if v then return v end
    if a:match("^%-%a*" .. letter .. "$") then return argv[i + 1] end
    v = a:match("^%-" .. letter .. "(.+)$")
    if v then return v end
  end
end

-- su [options] -c CMD, runuser USER -c CMD, script -c CMD, flock FILE -c
-- CMD: the shell code given to -c (--command)
local function su_code(argv, start)
  return option_value(argv, start, "c", "--command")
end

-- su/runuser -s PROG [USER] [--] ARGS (no -c): PROG runs with ARGS.
local SU_VALUE = { ["-s"] = true, ["--shell"] = true, ["-g"] = true, ["--group"] = true, ["-G"] = true,
  ["--supp-group"] = true, ["-w"] = true, ["--whitelist-environment"] = true, ["-u"] = true, ["--user"] = true }
local function su_shell(argv, start)
  local prog = option_value(argv, start, "s", "--shell")
  if not prog then return nil end
  local i, user_seen = start + 1, false
  while argv[i] do
    local a = argv[i]
    if a == "--" then i = i + 1; break end
    if a:sub(1, 1) == "-" and a ~= "-" then
      i = i + (SU_VALUE[a] and 2 or 1)
    elseif not user_seen then
      user_seen, i = true, i + 1
    else
      break
    end
  end
  if argv[i] == "--" then i = i + 1 end
  local out = { prog }
  return table.move(argv, i, #argv, 2, out)
end

-- sg GROUP [-c] COMMAND...: the command, run as shell code
local function sg_code(argv, start)
  local i = start + 2
  if argv[i] == "-c" then i = i + 1 end
  if argv[i] then return table.concat(argv, " ", i) end
end

-- watch [options] CMD...: the command is run as `sh -c "CMD..."`
local function watch_code(argv, start)
  local i = start + 1
  while argv[i] and argv[i]:sub(1, 1) == "-" do
    local a = argv[i]
    i = i + ((a == "-n" or a == "--interval" or a == "-q" or a == "--equexit") and 2 or 1)
  end
  return table.concat(argv, " ", i)
end

-- find's start paths: its operands after its options (-H -L -P -D X
-- -O3) and before the first test or action
local function find_roots(argv, start)
  local roots, i = {}, start + 1
  while argv[i] and (argv[i]:match("^%-[HLP]+$") or argv[i]:match("^%-O%d*$") or argv[i] == "-D") do
    i = i + (argv[i] == "-D" and 2 or 1)
  end
  if argv[i] == "--" then i = i + 1 end
  for k = i, #argv do
    local a = argv[k]
    if a:match("^[-(!]") then break end
    roots[#roots + 1] = a
  end
  return roots
end

-- nested(argv, start) -> the argv lists argv[start] runs inside itself
local function nested(argv, start, cwd)
  local name = basename(argv[start])
  if M.SHELLS[name] then
    local code = shell_code(argv, start)
    return code and shell_commands(code, cwd) or {}
  elseif name == "su" or name == "runuser" or name == "script" or name == "flock" then
    local code = su_code(argv, start)
    if code then return shell_commands(code, cwd) end
    local prog = (name == "su" or name == "runuser") and su_shell(argv, start)
    return prog and { prog } or {}
  elseif name == "sg" then
    local code = sg_code(argv, start)
    return code and shell_commands(code, cwd) or {}
  elseif name == "gdb" then
    for i = start + 1, #argv do
      if argv[i] == "--args" then return { table.move(argv, i + 1, #argv, 1, {}) } end
    end
    return {}
  elseif name == "watch" then
    return shell_commands(watch_code(argv, start), cwd)
  elseif name == "eval" then
    return shell_commands(table.concat(argv, " ", start + 1), cwd)
  elseif name == "busybox" or name == "toybox" then
    return { table.move(argv, start + 1, #argv, 1, {}) }
  elseif name == "xargs" then
    return xargs_command(argv, start)
  elseif name == "find" then
    local roots = find_roots(argv, start)
    for i, r in ipairs(roots) do roots[i] = M.absolute(r, cwd) end
    return find_commands(argv, start, roots)
  end
  return {}
end

-- env -S STRING (-SSTRING, --split-string[=]STRING) is the words of
-- STRING in its place: `env -S 'rm -rf' /` runs rm -rf /.
local function split_env_s(argv)
  for k, a in ipairs(argv) do
    if basename(a) == "env" then
      for j = k + 1, #argv do
        local v = argv[j]
        local str, used
        if v == "-S" or v == "--split-string" then
          str, used = argv[j + 1], 2
        elseif v:match("^%-[i0v]*S$") then  -- -S bundled after flags: -iS STRING
          str, used = argv[j + 1], 2
        elseif v:match("^%-[i0v]*S.") then
          str, used = v:match("^%-[i0v]*S(.*)$"), 1
        elseif v:match("^%-%-split%-string=") then
          str, used = v:match("=(.*)$"), 1
        end
        if str then
          local out = table.move(argv, 1, j - 1, 1, {})
          for _, w in ipairs(require("shannot.shellsplit").words(str)) do out[#out + 1] = w end
          return table.move(argv, j + used, #argv, #out + 1, out)
        end
        if v:sub(1, 1) ~= "-" and not v:find("=", 1, true) then break end
      end
    end
  end
  return argv
end

-- How many words the guesses of one normalise_all may look at in all.
M.GUESS_BUDGET = 200000

-- A word that is more than one word to a shell: shell code given to some
-- program that may run it (script -qc, sg, a wrapper not known here).
local function looks_like_code(word)
  return word:find("[%s;&|<>`$(){}]") ~= nil
end

-- The shell code a word may hold: the word itself, and what follows each
-- "=" in it (--checkpoint-action=exec=CODE, -oProxyCommand=CODE,
-- alias.x=!CODE), less a leading "!" or "|" (git's and strace's marks).
local function code_in(word)
  local out = {}
  local function try(text)
    text = text:gsub("^[!|]", "")
    if looks_like_code(text) then out[#out + 1] = text end
  end
  try(word)
  local from, n = 1, 0
  while n < 4 do
    local eq = word:find("=", from, true)
    if not eq then break end
    try(word:sub(eq + 1))
    from, n = eq + 1, n + 1
  end
  return out
end

local function within(cwd, dir)
  if not dir then return cwd end
  if dir:sub(1, 1) == "/" then return dir end
  return cwd and (cwd .. "/" .. dir) or nil
end

-- The command with its relative operands taken below cwd, if any was.
local function below_cwd(n, cwd)
  if not cwd then return nil end
  local changed, operands = false, {}
  for i, o in ipairs(n.operands) do
    operands[i] = M.absolute(o, cwd)
    changed = changed or operands[i] ~= o
  end
  if not changed then return nil end
  return { command = n.command, flags = n.flags, operands = operands, words = n.words, guess = true }
end

-- collect(argv, st, at): argv's command and those inside it into st.out.
-- at: depth (of nesting), guess (argv itself is a guess), suffixes (also
-- every command argv might run that is not known here: see
-- normalise_all), cwd (the directory argv runs in, when known).
local function collect(argv, st, at)
  if st.out.incomplete then return end  -- it is denied as it is: no more work
  argv = split_env_s(argv)
  local n = M.normalise(argv)
  local start, _, _, wcwd = skip_wrappers(argv)
  local cwd, depth = within(at.cwd, wcwd), at.depth
  if n then
    n.guess = at.guess or nil
    st.out[#st.out + 1] = n
    st.out[#st.out + 1] = below_cwd(n, cwd)
  end
  if depth >= M.MAX_NESTING or not argv[start] then return end
  local inner_list, too_many = nested(argv, start, cwd)
  if too_many then
    st.out.incomplete = true
    return
  end
  for _, inner in ipairs(inner_list) do
    collect(inner, st, { depth = depth + 1, guess = at.guess, suffixes = true, cwd = cwd })
  end
  if not at.suffixes then return end
  for k = 2, #argv do  -- a wrapper's own option may hold code too: strace -o '|CMD'
    local w = argv[k]
    local name = basename(w)
    local codes = code_in(w)  -- the command word too: sudo -s 'CODE'
    local command = k ~= start and name ~= "" and w:sub(1, 1) ~= "-" and st.is_command(name)
    if #codes > 0 or command then
      st.budget = st.budget - (#codes > 0 and #w * #codes or #argv - k + 1)
      if st.budget < 0 then
        st.out.incomplete = true
        return
      end
    end
    for _, code in ipairs(codes) do
      for _, inner in ipairs(shell_commands(code, cwd)) do
        collect(inner, st, { depth = depth + 1, guess = true, suffixes = true, cwd = cwd })
      end
    end
    if command and #codes == 0 then
      collect(table.move(argv, k, #argv, 1, {}), st, { depth = depth + 1, guess = true, suffixes = false, cwd = cwd })
    end
  end
end

-- normalise_all(argv [, is_command [, cwd]]) -> {normalised...}: the
-- command argv runs and every command inside it (sh -c code, busybox
-- applets, xargs and find -exec commands, eval, env -S, su/runuser/
-- script/flock -c, su -s PROG, sg, gdb --args), each normalised, nested
-- ones up to MAX_NESTING deep.  A shell redirection's target is a command
-- ">" TARGET.  With cwd (where the command runs), relative operands are
-- also taken below it (env -C and a cd in shell code move it).
-- Then the guesses, marked guess = true: a program not known here may
-- run the rest of its words (chrt 1 rm ..., pkexec rm ...) or a word of
-- shell code (script -qc 'rm ...', --opt=CODE), so each rest of argv
-- that starts with a word is_command(basename) accepts (default: any),
-- and the code in each word that looks like shell code, is normalised
-- too.  A list whose guesses would look at more than GUESS_BUDGET words
-- in all, or a find with more than MAX_FIND_COMMANDS commands, is marked
-- incomplete = true.
function M.normalise_all(argv, is_command, cwd)
  local st = { out = {}, budget = M.GUESS_BUDGET, is_command = is_command or function() return true end }
  collect(argv, st, { depth = 0, guess = false, suffixes = true, cwd = type(cwd) == "string" and cwd or nil })
  return st.out
end

-- Splits a pattern into words (no quoting: a pattern is not shell code).
local function words(pattern)
  local out = {}
  for w in pattern:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- compile(pattern) -> compiled | nil, err (usage: what is wrong with it)
function M.compile(pattern)
  if type(pattern) ~= "string" then return nil, err.usage("must be a string") end
  local w = words(pattern)
  if #w == 0 then return nil, err.usage("is empty") end
  local rest = false
  if #w > 1 and w[#w] == "*" then
    rest = true
    w[#w] = nil
  end
  local n = M.normalise(w)
  if not n then return nil, err.usage("names no command") end
  n.rest, n.text = rest, pattern
  return n
end

-- fnmatch with FNM_PATHNAME: in "rm -r /*", * stops at "/".  A word
-- standing for anything below a path (BELOW) matches a pattern that
-- names a path below it.
local function word_match(pattern, word)
  if word:sub(-#M.BELOW) == M.BELOW then
    local prefix = word:sub(1, -#M.BELOW) -- keeps the "/"
    return pattern:sub(1, #prefix) == prefix and #pattern > #prefix
  end
  return glob.match(pattern, word)
end

local function same_flags(p, n)
  if #p.flags ~= #n.flags then return false end
  for i, f in ipairs(p.flags) do
    if not word_match(f, n.flags[i]) then return false end
  end
  return true
end

-- match_exact(compiled, normalised) -> boolean.  A command line that
-- names no command (a bare `sudo` or `env`) matches nothing.
-- A pattern ending in "*" takes any further operands, and any flags only
-- when it names none itself ("ls *": ls -la /etc); one that names flags
-- takes exactly those ("dpkg -l *" is not dpkg -l -i x), and its operands
-- must be the first words after the command, before any flag (whose
-- value they might be: "systemctl status *" is not systemctl -p status
-- stop x).

function M.match_exact(p, n)
  if n == nil then return false end
  if not word_match(p.command, n.command) then return false end
  if (not p.rest or #p.flags > 0) and not same_flags(p, n) then return false end
  if #n.operands < #p.operands or (not p.rest and #n.operands ~= #p.operands) then
    return false
  end
  for i, o in ipairs(p.operands) do
    if not word_match(o, n.operands[i]) then return false end
    if p.rest and n.words and n.words[i] ~= n.operands[i] then return false end
  end
  return true
end

local function any_match(pattern, list)
  for _, w in ipairs(list) do
    if word_match(pattern, w) then return true end
  end
  return false
end

-- match_contains(compiled, normalised) -> boolean
function M.match_contains(p, n)
  if n == nil then return false end
  if not word_match(p.command, n.command) then return false end
  for _, f in ipairs(p.flags) do
    if not any_match(f, n.flags) then return false end
  end
  for _, o in ipairs(p.operands) do
    if not any_match(o, n.operands) then return false end
  end
  return true
end

return M
