-- Policy (DESIGN §4): every operation gets a decision (approve | deny |
-- review), a danger (safe | caution | danger) and the reason, from, in
-- order: built-in rules, the config's command patterns (exec operations),
-- the config's [policy] path globs, then the user's Lua policy files.
-- Deny always wins; then review; an operation nothing approves is
-- reviewed; a dangerous one is never approved without a person.
local cmdpattern = require("shannot.policy.cmdpattern")
local glob = require("shannot.glob")
local policyfile = require("shannot.policy.file")
local text = require("shannot.text")

local M = {}

M.DECISIONS = { "approve", "review", "deny" }
M.DANGERS = { "safe", "caution", "danger" }

-- Paths whose change can lock people out, break boot or hand out root.
local DANGER_PATHS = {
  "/boot", "/boot/**", "/etc/shadow*", "/etc/gshadow*", "/etc/passwd*", "/etc/group*",
  "/etc/sudoers", "/etc/sudoers.d/**", "/etc/ssh/**", "/etc/pam.d/**", "/etc/security/**",
  "/etc/fstab", "/etc/crypttab", "/etc/ld.so.*", "/etc/ld.so.conf.d/**", "/etc/systemd/**",
  "/etc/cron*", "/etc/cron*/**", "/var/spool/cron/**", "/etc/apt/sources.list*",
  "/etc/apt/trusted.gpg*", "/etc/apt/keyrings/**", "/root/.ssh/**", "/home/*/.ssh/**",
  "/bin/**", "/sbin/**", "/usr/bin/**", "/usr/sbin/**", "/lib/**", "/lib64/**", "/usr/lib/**",
  -- first in root's PATH: a command here shadows the deferred commands
  -- execute runs (systemctl, service) and every later root shell
  "/usr/local/bin/**", "/usr/local/sbin/**",
  "/etc/hosts", "/etc/resolv.conf", "/etc/network/**", "/etc/netplan/**",
}

-- Where a file is a program or its configuration: a content there that
-- no person can read (binary, too large to diff) is for a person to
-- judge with care.
local EXEC_CONFIG_PATHS = {
  "/etc/**", "/usr/**", "/bin/**", "/sbin/**", "/lib*/**", "/boot/**", "/opt/**", "/root/.*",
  "/root/.*/**", "/home/*/.*", "/home/*/.*/**", "/var/spool/cron/**", "/var/lib/dpkg/info/**",
}

-- Scratch and cache places: changing them harms nothing that matters.
local SAFE_PATHS = { "/tmp/**", "/var/tmp/**", "/var/cache/**" }

-- Commands that end what runs on the machine.
local DANGER_COMMANDS = {
  "reboot", "reboot *", "shutdown", "shutdown *", "poweroff", "poweroff *", "halt", "halt *",
  "telinit *", "init *", "systemctl reboot*", "systemctl poweroff*", "systemctl halt*",
  "systemctl kexec*", "systemctl isolate *", "modprobe *", "rmmod *", "insmod *", "swapoff *",
  "umount *", "mount *",
}

-- "/etc/**" is for /etc itself too: the directory each such glob names
-- (false for others), found once per glob (every operation asks them all)
local DIR_OF = setmetatable({}, { __index = function(t, p)
  local dir = p:sub(-3) == "/**" and p:sub(1, -4)
  t[p] = dir
  return dir
end })

-- globs(list) -> first(path): the first glob of list that path matches
-- (or the directory a "/**" one names), | nil.  A glob whose first
-- component is plain text ("/etc/..."), as most are, is only tried on
-- paths in that top directory: each operation meets a few of the forty
-- sensitive paths, not all.  The list is read once: made per session.
local function globs(list)
  local by_top, anywhere = {}, {}
  for i, p in ipairs(list) do
    local top, after = p:match("^/([^/*?%[]*)(.?)")
    if top and (after == "/" or after == "") then
      by_top[top] = by_top[top] or {}
      table.insert(by_top[top], i)
    else
      anywhere[#anywhere + 1] = i
    end
  end
  local elsewhere = {}  -- the globs to try in any other top directory
  for k, i in ipairs(anywhere) do elsewhere[k] = list[i] end
  -- top directory -> the globs to try there, in list order (made for the
  -- directories the list names: as many as it has globs at most)
  local tried = {}
  local function for_top(top)
    local t = tried[top]
    if t then return t end
    if not by_top[top] then return elsewhere end
    t = table.move(anywhere, 1, #anywhere, 1, {})
    table.move(by_top[top], 1, #by_top[top], #t + 1, t)
    table.sort(t)
    for k, i in ipairs(t) do t[k] = list[i] end
    tried[top] = t
    return t
  end
  return function(path)
    for _, p in ipairs(for_top(path:match("^/([^/]*)") or false)) do
      if path == DIR_OF[p] or glob.match(p, path) then return p end
    end
  end
end

local danger_path = globs(DANGER_PATHS)
local exec_config_path = globs(EXEC_CONFIG_PATHS)
local safe_path = globs(SAFE_PATHS)

local function compiled(patterns)
  local out = {}
  for i, p in ipairs(patterns) do out[i] = { source = p, pattern = assert(cmdpattern.compile(p)) } end
  return out
end

local DANGER_COMMAND_PATTERNS = compiled(DANGER_COMMANDS)

local function first_match(list, normalised, how)
  for _, c in ipairs(list) do
    if cmdpattern[how](c.pattern, normalised) then return c.source end
  end
end

-- The first pattern of list that any command argv runs (nested ones
-- included: sh -c, busybox, xargs, find -exec) contains, and that command.
local function first_contained(list, all)
  for _, n in ipairs(all) do
    local hit = first_match(list, n, "match_contains")
    if hit then return hit, n end
  end
end

-- is_command(name) for cmdpattern.normalise_all: whether name may be the
-- command of a pattern of these lists (only there is a guess worth it).
local function commands_of(...)
  local lists, known = { ... }, {}
  return function(name)
    if known[name] == nil then
      known[name] = false
      for _, list in ipairs(lists) do
        for _, c in ipairs(list) do
          if glob.match(c.pattern.command, name) then known[name] = true end
        end
      end
    end
    return known[name]
  end
end

local IS_DANGER_COMMAND = commands_of(DANGER_COMMAND_PATTERNS)

-- Programs that run code given to them, which the deny list cannot read.
local INTERPRETERS = {
  perl = true, python = true, python3 = true, ruby = true, node = true, nodejs = true, php = true,
  lua = true, ["lua5.1"] = true, ["lua5.3"] = true, ["lua5.4"] = true, awk = true, gawk = true,
  mawk = true, nawk = true, tclsh = true, expect = true,
}

-- Why a command runs code no pattern can see through, or nil: an
-- interpreter, a shell reading a script or its input, or shell code
-- whose words are only known when it runs ($x, $(...), ~, globs).
local function opaque(n)
  if INTERPRETERS[n.command] then return string.format("runs %s code, which the deny list cannot read", n.command) end
  if not cmdpattern.SHELLS[n.command] then return nil end
  local with_code = false
  for _, f in ipairs(n.flags) do
    if f == "-c" then with_code = true end
  end
  if not with_code then
    return string.format("runs %s on a script or its input, which the deny list cannot read", n.command)
  end
  for _, word in ipairs(n.operands) do  -- the code, wherever options put it
    if word:find("[$`~*?{]") then
      return "runs shell code whose words are only known when it runs ($, `, ~, globs)"
    end
  end
end

-- How a command found in argv is named in a reason: a guess (a word a
-- program not known here may run) says so.
local function found(source, n, what)
  if not n.guess then return string.format('matches %s "%s"', what, source) end
  local words = { n.command }
  table.move(n.flags, 1, #n.flags, 2, words)
  table.move(n.operands, 1, #n.operands, #words + 1, words)
  return string.format('may run "%s", which matches %s "%s"', text.inert(table.concat(words, " ")), what, source)
end

-- Built-in: the danger of an operation, and why.
function M.builtin(op)
  if op.kind == "query" then
    if not require("shannot.capture.queries").allowed(op.argv) then
      return "danger", "not a question shannot asks the host: it may change things"
    end
    return "safe", "a question to the running system: it changes nothing"
  end
  if op.kind == "exec" then
    local all = cmdpattern.normalise_all(op.argv or {}, IS_DANGER_COMMAND, op.cwd)
    local hit, n = first_contained(DANGER_COMMAND_PATTERNS, all)
    if hit and n.guess then return "danger", found(hit, n, "the built-in") .. ": it stops or reconfigures" end
    if hit then return "danger", string.format('"%s" stops or reconfigures the running system', hit) end
    if all.incomplete then return "danger", "runs more nested commands than shannot looks through" end
    for _, c in ipairs(all) do
      local why = not c.guess and opaque(c)
      if why then return "danger", why end
    end
    return "caution", "runs a command on the host"
  end
  local path = op.path or ""
  local hit = danger_path(path)
  if hit then return "danger", string.format("%s is a sensitive path (%s)", path, hit) end
  if op.kind == "rename" then
    hit = danger_path(op.from or "")
    if hit then return "danger", string.format("moves %s, a sensitive path (%s)", op.from, hit) end
    if op.new and op.new.type == "dir" then return "caution", "moves a whole directory" end
  end
  if op.kind == "delete" and op.base and op.base.type == "dir" then
    return "danger", "deletes a whole directory"
  end
  if op.kind == "replace_dir" then return "danger", "replaces a whole directory" end
  if (op.kind == "write" or op.kind == "symlink") and op.base and op.base.type == "dir" then
    return "danger", string.format("replaces a whole directory with a %s", op.kind == "write" and "file" or "symlink")
  end
  local new_caps = op.new and op.new.xattrs and op.new.xattrs["security.capability"]
  if new_caps and new_caps ~= (op.base and op.base.xattrs or {})["security.capability"] then
    return "danger", "gives the file capabilities (security.capability): it runs with privileges"
  end
  local mode = op.new and op.new.mode
  if op.kind == "link" and mode and mode & 3072 ~= 0 then
    return "danger", string.format("a second name for a setuid/setgid file (%04o)", mode)
  end
  if mode and (op.kind == "chmod" or op.kind == "write" or op.kind == "mkdir") then
    if mode & 3072 ~= 0 then return "danger", string.format("sets setuid/setgid (%04o)", mode) end
    if mode & 2 ~= 0 and not (op.new.type == "dir" and mode & 512 ~= 0) then
      return "danger", string.format("makes it writable by everyone (%04o)", mode)
    end
  end
  local base, new = op.base or {}, op.new or {}
  if base.exists and base.uid == 0 and new.uid and new.uid ~= 0 and op.kind ~= "delete" then
    return "danger", string.format("hands a root-owned %s to uid %d", base.type or "file", new.uid)
  end
  if op.kind == "write" and op.new and op.new.content and op.new.content ~= "text" then
    local executable = (op.new.mode or 0) & 73 ~= 0  -- 0111
    if executable or exec_config_path(path) then
      return "danger", string.format("its content cannot be reviewed as text (%s) and it is %s",
        op.new.content == "binary" and "binary" or "too large to diff",
        executable and "executable" or "a program's or its configuration's place")
    end
  end
  if safe_path(path) then return "safe", "scratch or cache space" end
  return "caution", nil
end

-- A read-only copy of an operation for policy files.
local function frozen(t)
  local proxy = {}
  for k, v in pairs(t) do proxy[k] = type(v) == "table" and frozen(v) or v end
  return setmetatable({}, {
    __index = proxy,
    __newindex = function() error("the operation is read-only", 2) end,
    __pairs = function() return next, proxy, nil end,
    __len = function() return #proxy end,
  })
end

-- Votes: {decision, reason, source}
local function votes_for(op, cfg, ctx)
  local votes = {}
  local function vote(decision, reason, source) votes[#votes + 1] = { decision, reason, source } end
  local values = cfg and cfg.values
  if op.kind == "exec" then
    local all = cmdpattern.normalise_all(op.argv or {}, ctx.is_deny_command, op.cwd)
    local deny, n = first_contained(ctx.deny_patterns, all)
    if deny then vote("deny", found(deny, n, "always_deny"), "config") end
    if all.incomplete and #ctx.deny_patterns > 0 then
      vote("deny", "runs more nested commands than shannot looks through for always_deny", "config")
    end
    -- Only a plain command line is approved by pattern: one with commands
    -- inside it (sh -c, xargs, ...) is for a person to read.
    -- Nor one that sets variables for it (env LD_PRELOAD=..., PATH=...).
    local certain = {}
    for _, c in ipairs(all) do
      if not c.guess then certain[#certain + 1] = c end
    end
    -- Nor one behind a wrapper with options or of its own kind (strace -o
    -- '|CMD' true, timeout -s, systemd-run -p ExecStartPre=...).
    local allow = #certain == 1 and not all.incomplete and not certain[1].sets_env and not certain[1].wrapped
      and first_match(ctx.approve_patterns, certain[1], "match_exact")
    if allow then vote("approve", string.format('matches auto_approve "%s"', allow), "config") end
  elseif values then
    local path = op.path or ""
    local hit = ctx.deny_path(path)
    if hit then vote("deny", string.format('path matches [policy] deny "%s"', hit), "config") end
    hit = ctx.review_path(path)
    if hit then vote("review", string.format('path matches [policy] review "%s"', hit), "config") end
    hit = ctx.approve_path(path)
    if hit then vote("approve", string.format('path matches [policy] auto_approve "%s"', hit), "config") end
  end
  for _, file in ipairs(cfg and cfg.policies or {}) do
    for i in ipairs(file.rules) do
      local decision, reason = policyfile.call(file, i, frozen(op), ctx.frozen_ctx)
      if decision == nil then return nil, reason end
      -- A project's policy file was found by walking up from the current
      -- directory: it may make things stricter, never approve.
      if decision and not (file.project and decision == "approve") then
        vote(decision, reason or ("policy " .. file.where[i]), file.where[i])
      end
    end
  end
  return votes
end

local function pick(votes, wanted)
  for _, v in ipairs(votes) do
    if v[1] == wanted then return v end
  end
end

-- decide(op, cfg, ctx) -> decision, danger, reason | nil, err
function M.decide(op, cfg, ctx)
  local danger, why = M.builtin(op)
  local votes, verr = votes_for(op, cfg, ctx)
  if not votes then return nil, verr end
  local v = pick(votes, "deny")
  if v then return "deny", danger, v[2] end
  v = pick(votes, "review")
  if v then return "review", danger, v[2] end
  v = pick(votes, "approve")
  if v and danger ~= "danger" then return "approve", danger, v[2] end
  if v then return "review", danger, "dangerous, so a person decides: " .. why end
  -- a question changes nothing: it only stops an execute whose answer moved
  if op.kind == "query" and danger == "safe" then return "approve", danger, why end
  return "review", danger, why or "no rule approves it"
end

-- The command patterns of a context, compiled when an operation first
-- needs them (a deferred command): a hundred patterns cost a capture
-- that ran none ~1.5 ms.  (config.lua checked them when it read them.)
local COMMAND_PATTERNS = {
  deny_patterns = function(ctx) return compiled(ctx.profile_values.always_deny or {}) end,
  is_deny_command = function(ctx) return commands_of(ctx.deny_patterns) end,
  approve_patterns = function(ctx) return compiled(ctx.profile_values.auto_approve or {}) end,
}
local LAZY = { __index = function(ctx, key)
  local make = COMMAND_PATTERNS[key]
  if not make then return nil end
  local v = make(ctx)
  rawset(ctx, key, v)
  return v
end }

-- context(cfg, session) -> what decide() needs, built once per session
function M.context(cfg, s)
  local values = cfg and cfg.values
  local paths = values and values.policy or {}
  return setmetatable({
    profile_values = values and values.profile or {},
    deny_path = globs(paths.deny or {}), review_path = globs(paths.review or {}),
    approve_path = globs(paths.auto_approve or {}),
    frozen_ctx = frozen({
      session = s.id, command = s.command, profile = s.profile, target = s.target or "local",
    }),
  }, LAZY)
end

-- recheck(s, cfg) -> the operations the policy of now denies | nil, err.
-- At approve: a deny rule added since the capture holds; each such
-- operation becomes denied, its reason naming the rule.  Nothing else
-- changes (what a person chose in the review stays chosen).
function M.recheck(s, cfg)
  local ctx, denied = M.context(cfg, s), {}
  for _, op in ipairs(s.operations) do
    local now, perr = M.recheck_op(op, cfg, ctx)
    if now == nil then return nil, perr end
    if now then denied[#denied + 1] = op end
  end
  return denied
end

-- recheck_op(op, cfg, ctx) -> whether the policy of now denies the
-- operation (then it is denied, its reason naming the rule) | nil, err
function M.recheck_op(op, cfg, ctx)
  if op.decision == "deny" then return false end
  local decision, danger, reason = M.decide(op, cfg, ctx)
  if not decision then return nil, danger end
  if decision ~= "deny" then return false end
  op.decision, op.danger = "deny", danger
  op.reason = text.inert("denied at approval: " .. tostring(reason))
  return true
end

-- evaluate(session, cfg) -> true | nil, err: sets decision, danger and
-- reason on every operation.
function M.evaluate(s, cfg)
  local ctx = M.context(cfg, s)
  for _, op in ipairs(s.operations) do
    local decision, danger, reason = M.decide(op, cfg, ctx)
    if not decision then return nil, danger end
    op.decision, op.danger, op.reason = decision, danger, reason and text.inert(reason) or nil
  end
  return true
end

return M
