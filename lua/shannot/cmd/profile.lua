-- shannot profile list | show P | check FILE
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local profile = require("shannot.sandbox.profile")
local text = require("shannot.text")

-- The file format, shared by the help and shannot-profile(5) (scripts/man.lua).
local WHERE = [[
Sandbox profiles are JSON files: the built-in ones (minimal, readonly,
diagnostics, systemd, system) and yours in ~/.config/shannot/profiles/
(NAME.json; a user profile of the same name wins over a built-in one).]]

local SUBCOMMANDS = [[
  list         every profile, where it comes from, and any problem with it
  show P       the profile P (a name or a file) with defaults filled in
  check FILE   validates FILE and prints the bwrap command line it gives]]

local FIELDS = [[
Fields: name, description, allowed_commands (globs on the command; empty
means any), binds [{source, target, read_only, create_target, optional}],
tmpfs_paths, environment (values may use ${VAR} from your environment),
network_isolation, seccomp_profile (compiled BPF, relative to the file,
added to shannot's own filter: it can refuse more, never less),
additional_args (passed to bwrap), capture, defer, unix_sockets (host
sockets a sandbox may connect to; every other one stays out of reach:
shannot itself makes the connect for it, on this machine only).

allowed_commands is a convenience, not a boundary: it checks only the
command shannot starts, which may start any other program the sandbox can
see (a shell, awk's system(), sed's e command, find -exec, xargs).  What a
sandbox can reach is set by its binds and capture paths, the read-only
host, the system call filter and Landlock.]]

local M = {
  usage = "shannot profile list [--json]\nshannot profile show P [--json]\nshannot profile check FILE",
  help = WHERE .. "\n\n" .. SUBCOMMANDS .. "\n\n" .. FIELDS,
  format = WHERE .. "\n\n" .. FIELDS,
  options = { ["--json"] = {} },
}

local function list(opts)
  local entries = profile.list()
  if opts.json then
    cli.out(json.encode(json.array(entries), { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  local bad = 0
  for _, e in ipairs(entries) do
    local source = e.source .. (e.overrides_builtin and " (overrides the built-in one)" or "")
    cli.out(string.format("%-12s %s\n", e.name, source))
    if e.problem then
      bad = bad + 1
      cli.out("             BROKEN: ", text.inert(e.problem), "\n")
    elseif e.description ~= "" then
      cli.out("             ", e.description, "\n")
    end
  end
  return bad == 0 and const.EXIT.OK or const.EXIT.USAGE
end

local function show(_, name)
  if not name then return nil, err.usage("profile show: which profile? usage: shannot profile show P") end
  local p, e = profile.load(name)
  if not p then return nil, e end
  local doc = profile.to_table(p)
  doc.source = p.builtin and "built-in" or p.source
  cli.out(json.encode(doc, { indent = "  " }), "\n")
  return const.EXIT.OK
end

-- Groups bwrap arguments one option per line, shell-quoted.
local function format_command(argv)
  local lines, cur = {}, { text.quote(argv[1]) }
  for i = 2, #argv do
    local a = argv[i]
    if a:sub(1, 2) == "--" and #cur > 0 then
      lines[#lines + 1] = table.concat(cur, " ")
      cur = {}
    end
    cur[#cur + 1] = text.quote(a)
  end
  lines[#lines + 1] = table.concat(cur, " ")
  return table.concat(lines, " \\\n    ")
end

local function check(file)
  if not file then return nil, err.usage("profile check: which file? usage: shannot profile check FILE") end
  local p, e = profile.load(file)
  if not p then return nil, e end
  local warnings = {}
  for _, b in ipairs(profile.ignored_binds(p)) do
    warnings[#warnings + 1] = string.format("bind of %s is ignored: every sandbox gets a fresh %s", b.target, b.target)
  end
  for _, b in ipairs(p.binds) do
    if not b.optional and not fs.exists(b.source) then
      warnings[#warnings + 1] = string.format(
        'bind source %s does not exist here: bwrap will refuse to start (mark it "optional": true?)', b.source)
    end
  end
  if p.seccomp_profile and not fs.exists(p.seccomp_profile) then
    warnings[#warnings + 1] = "seccomp_profile " .. p.seccomp_profile .. " does not exist here"
  end
  cli.out(string.format("%s: ok (profile %s)\n", text.inert(file), p.name))
  for _, w in ipairs(warnings) do cli.out("warning: ", w, "\n") end
  local argv = require("shannot.sandbox.bwrap").argv(p, { cwd = require("shannot.core.sys").getcwd(),
    argv = { "CMD..." } }, "local")
  cli.out(format_command(argv), "\n")
  return const.EXIT.OK
end

function M.run(opts, args)
  local sub = args[1]
  if sub == "list" then return list(opts) end
  if sub == "show" then return show(opts, args[2]) end
  if sub == "check" then return check(args[2]) end
  if sub == nil then return nil, err.usage("profile: what to do? usage: %s", M.usage:gsub("\n", " | ")) end
  return nil, err.usage('profile: unknown subcommand "%s"%s', text.inert(sub),
    text.did_you_mean(sub, { "list", "show", "check" }))
end

return M
