-- The command line: global flags, dispatch to lua/shannot/cmd/*.lua (loaded
-- only when used), option parsing shared by every command, and help.
local const = require("shannot.const")
local err = require("shannot.err")
local text = require("shannot.text")

local M = {}

-- name -> one-line summary; the order is the order `help` lists them.
local COMMANDS = {
  { "run", "run a script or command in the sandbox, capturing what it would change" },
  { "sessions", "list the sessions captured runs made" },
  { "show", "show a session's operations and diffs" },
  { "shell", "a read-only shell in a session's captured state over the host" },
  { "prune", "remove expired and old finished sessions" },
  { "audit", "show and verify the audit log" },
  { "approve", "approve a pending session (every operation not denied)" },
  { "deny", "reject a pending session" },
  { "revoke", "take an approval back: the session is pending again" },
  { "execute", "apply an approved session, with a checkpoint" },
  { "rollback", "undo an executed session from its checkpoint" },
  { "checkpoint", "list and show checkpoints" },
  { "remote", "add, list and remove remote hosts" },
  { "mcp", "serve the Model Context Protocol to LLM agents" },
  { "profile", "list, show and check sandbox profiles" },
  { "status", "what this machine can do: bwrap, user namespaces, overlayfs" },
  { "config", "show, check and locate the configuration" },
  { "lua", "run a Lua file with the shannot API" },
  { "repl", "an interactive Lua prompt with the shannot API" },
  { "help", "show help for shannot or one command" },
}

local function command_names()
  local out = {}
  for i, c in ipairs(COMMANDS) do out[i] = c[1] end
  return out
end

-- commands() -> {{name, summary}...}: the listed commands, as help lists
-- them (scripts/man.lua writes a page for each, the completions offer them)
function M.commands()
  local out = {}
  for _, c in ipairs(COMMANDS) do
    if not c.hidden then out[#out + 1] = { c[1], c[2] } end
  end
  return out
end

-- Commands shannot runs itself, never listed: a fleet's per-host child,
-- and what the shell completions ask (completions/).
local INTERNAL = { ["__fleet-host"] = "shannot.cmd.fleet_host", ["__complete"] = "shannot.cmd.complete" }

-- command(name) -> its module | nil (a listed one only)
function M.command(name)
  for _, c in ipairs(COMMANDS) do
    if c[1] == name then return require("shannot.cmd." .. name) end
  end
end

local function find_command(name)
  local cmd = M.command(name)
  if cmd then return cmd end
  if INTERNAL[name] then return require(INTERNAL[name]) end
end

function M.out(...)
  io.stdout:write(...)
end

-- actor() -> who the audit log names for what this process does: "mcp"
-- when the MCP server started it (SHANNOT_ACTOR=mcp, set on its `shannot
-- run` children), else "cli".
function M.actor()
  return os.getenv("SHANNOT_ACTOR") == "mcp" and "mcp" or "cli"
end

-- client() -> {name, version} | nil: the MCP client whose call started
-- this process (SHANNOT_MCP_CLIENT, JSON, set by the MCP server beside
-- SHANNOT_ACTOR), for the session and the audit log
function M.client()
  if M.actor() ~= "mcp" then return nil end
  local c = require("shannot.json").decode(os.getenv("SHANNOT_MCP_CLIENT") or "")
  if type(c) ~= "table" or type(c.name) ~= "string" or type(c.version) ~= "string" then return nil end
  return { name = c.name:sub(1, 256), version = c.version:sub(1, 256) }
end

function M.warn(fmt, ...)
  io.stderr:write("shannot: ", text.inert(string.format(fmt, ...)), "\n")
end

-- progress(opts) -> a progress reporter (shannot.progress) drawing on
-- stderr when it is a terminal and neither --quiet nor --json was given,
-- else progress.none; opts.warn then clears the line before it speaks.
-- To be closed: the line goes on every way out.
function M.progress(opts)
  local progress = require("shannot.progress")
  local term = require("shannot.term")
  if opts.quiet or opts.json or not term.isatty(2) then return progress.none end
  local p = progress.new({ write = function(s) io.stderr:write(s) end, width = function() return (term.size(2)) end,
    delay = require("shannot.testhooks").progress_delay() })
  local warn = opts.warn or M.warn
  opts.warn = function(...)
    p:clear()
    warn(...)
  end
  return p
end

-- parse(argv, first, spec) -> opts, positional | nil, err
-- spec.options: { ["--name"] = {key=, arg="WHAT", type="number"|"size",
-- many = true (repeatable: a list of the values)} }
-- spec.stop_at_positional: everything from the first positional on is
-- positional (for commands that take a command or a script and its args).
-- "--" always ends the options; what follows is returned as opts["--"].
function M.parse(argv, first, spec)
  local opts, positional = {}, {}
  local i = first
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      opts["--"] = table.move(argv, i + 1, #argv, 1, {})
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local o = spec.options[name]
      if not o then
        local known = {}
        for k in pairs(spec.options) do known[#known + 1] = k end
        table.sort(known)
        return nil, err.usage('%s: unknown option "%s"%s', spec.name, text.inert(a),
          text.did_you_mean(name, known))
      end
      local value = true
      if o.arg then
        value = inline
        if value == nil then
          i = i + 1
          value = argv[i]
        end
        if value == nil then return nil, err.usage("%s: %s needs a value (%s)", spec.name, name, o.arg) end
        local converted, cerr = M.convert(value, o.type, name, spec.name)
        if converted == nil then return nil, cerr end
        value = converted
      elseif inline then
        return nil, err.usage("%s: %s takes no value", spec.name, name)
      end
      local key = o.key or name:sub(3):gsub("%-", "_")
      if o.many then  -- repeatable: every value, in order
        opts[key] = opts[key] or {}
        table.insert(opts[key], value)
      else
        opts[key] = value
      end
    else
      if spec.stop_at_positional then
        table.move(argv, i, #argv, #positional + 1, positional)
        break
      end
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return opts, positional
end

local SIZE_UNITS = { [""] = 1, k = 1024, K = 1024, m = 1024 ^ 2, M = 1024 ^ 2, g = 1024 ^ 3, G = 1024 ^ 3 }

function M.convert(value, kind, name, cmd)
  if kind == "number" then
    local n = tonumber(value)
    if not n or n <= 0 or n ~= n or n == math.huge then
      return nil, err.usage('%s: %s must be a positive number of seconds, not "%s"', cmd, name, text.inert(value))
    end
    return n
  elseif kind == "size" then
    local digits, unit = value:match("^(%d+)([kKmMgG]?)i?[bB]?$")
    if not digits then
      return nil, err.usage('%s: %s must be a size such as 65536, 64K or 1M, not "%s"', cmd, name, text.inert(value))
    end
    return math.tointeger(tonumber(digits) * SIZE_UNITS[unit])
  end
  return value
end

local function usage_line(cmd)
  return "usage: " .. cmd.usage:gsub("\n", "\n       ")
end

function M.command_help(name)
  local cmd = find_command(name)
  if not cmd then return nil end
  return usage_line(cmd) .. "\n\n" .. cmd.help:gsub("^%s+", "")
end

function M.general_help()
  local lines = {
    "shannot " .. const.VERSION .. ": see what a script would change before it changes anything",
    "",
    "usage: shannot COMMAND [OPTIONS] [ARGS...]",
    "       shannot --version | help [COMMAND]",
    "",
    "commands:",
  }
  for _, c in ipairs(COMMANDS) do
    lines[#lines + 1] = string.format("  %-9s %s", c[1], c[2])
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Run 'shannot help COMMAND' or 'shannot COMMAND --help' for details."
  lines[#lines + 1] = "Exit codes: 0 ok, 1 the sandboxed command failed, 2 usage or bad input,"
  lines[#lines + 1] = "3 refused, 4 environment (e.g. bwrap missing)."
  return table.concat(lines, "\n")
end

-- main(argv) -> exit code | nil, err
function M.main(argv)
  local name = argv[1]
  if name == nil then
    io.stderr:write(M.general_help(), "\n")
    return const.EXIT.USAGE
  end
  if name == "--version" or name == "-V" or name == "version" then
    M.out("shannot ", const.VERSION, "\n")
    return const.EXIT.OK
  end
  if name == "--help" or name == "-h" then name = "help" end
  if name == "remote" and argv[3] == "run" and argv[2] and argv[2]:sub(1, 1) ~= "-" then
    -- `shannot remote NAME run ...` (the earlier tool's form) is
    -- `shannot run --target NAME ...`
    argv = { "run", "--target", argv[2], table.unpack(argv, 4) }
    name = "run"
  end
  local cmd = find_command(name)
  if not cmd then
    return nil, err.usage('unknown command "%s"%s; see "shannot help"', text.inert(name),
      text.did_you_mean(name, command_names()))
  end
  if argv[2] == "--help" or argv[2] == "-h" then
    M.out(M.command_help(name), "\n")
    return const.EXIT.OK
  end
  local spec = { name = name, options = cmd.options or {}, stop_at_positional = cmd.stop_at_positional }
  local opts, positional = M.parse(argv, 2, spec)
  if not opts then return nil, positional end
  collectgarbage("restart") -- stopped by the C host for start-up
  if cmd.needs_config ~= false then
    -- Read before anything runs: a broken config stops every command
    -- (exit 2) instead of falling back to defaults, deny list included.
    local cfg, cerr = require("shannot.config").load()
    if not cfg then return nil, cerr end
    local policies, perr = require("shannot.policy.file").load_all(cfg.files)
    if not policies then return nil, perr end
    cfg.policies = policies
    for _, why in ipairs(cfg.files.system_unreadable or {}) do M.warn("skipped a system config file: %s", why) end
    if #cfg.refused > 0 then
      M.warn("%s: %d setting%s ignored: a project file may only make things stricter " ..
        '(see "shannot config check")', cfg.files.project, #cfg.refused, #cfg.refused == 1 and "" or "s")
    end
    opts.config = cfg
  end
  opts.actor, opts.warn = M.actor(), M.warn
  return cmd.run(opts, positional)
end

return M
