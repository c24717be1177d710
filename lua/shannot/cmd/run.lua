-- shannot run [OPTIONS] SCRIPT [ARGS] | -c 'CODE' | -- CMD [ARGS...]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local executor = require("shannot.executor")
local profile = require("shannot.sandbox.profile")
local text = require("shannot.text")

-- Not needed by a plain sandbox exec'd in place (in_place): loaded after.
local function json() return require("shannot.json") end

local M = {
  usage = "shannot run [--profile P] [--target T] [--network] [--hide GLOB]... [--timeout S] [--max-output SIZE] " ..
    "[--why TEXT] [--quiet] [--json] [--exit-code] " ..
    "SCRIPT [ARGS] | -c 'CODE' | -- CMD [ARGS...]",
  help = [[
Runs a script (SCRIPT, run by its #! line or by /bin/sh), shell code (-c)
or a command (after --) in a bubblewrap sandbox built from a profile
(default "system"): the system is visible read-only (or only the
profile's binds), /dev, /proc and /tmp are fresh, /run is empty (no D-Bus,
systemd or docker socket), the network is cut off unless the profile
allows it, the environment is cleared and set from the profile.

With a profile that has capture paths (the default "system" one: /etc,
/var, /opt, /srv, /home, /root, /usr) the run really writes, but
into overlays: nothing on the host changes.  What it wrote, deleted or
re-moded, and the deferred commands it called (systemctl, service,
reboot, ...: recorded, not run), becomes a session in status pending,
shown with "shannot show ID --diff" and applied only once approved.  A
run that changed nothing makes no session.  Deferred calls reach shannot
through a record the sandboxed code can also write directly: such a
script can add calls of the profile's deferred commands (reviewed like
any other), and anything else found there refuses the capture (exit 3).  As root the dry-run may do
whatever root may (other users' files, chown); as another user only
that user's files can change.

shannot exits 0 when the command succeeded and 1 when it failed (its exit
code is shown on stderr); a session is kept either way.  With --exit-code
(for CI, like terraform plan -detailed-exitcode) it exits 0 when the
command succeeded and nothing was captured, 10 when it succeeded and a
session was made, 1 when it failed (with or without a session: a failure
wins); errors keep their codes (2 usage, 3 refused, 4 environment).

options:
  --profile P         a profile name (see "shannot profile list") or a JSON file
  -c CODE             run CODE with /bin/sh -c
  --timeout S         kill the command and everything it started after S seconds
  --max-output SIZE   keep at most SIZE bytes of each stream (default 1M; half
                      from the start, half from the end) for --json and sessions
  --interpreter I     run SCRIPT with I (e.g. bash, python3), not its #! line
  --hide GLOB         hide what an absolute glob matches (repeatable): a
                      file reads as empty, a directory as an empty
                      read-only one; expanded where the sandbox runs
                      (this machine, or the --target host), symlinks
                      resolved (a link's target is hidden); *, ? and [...]
                      match within one component, dot files included
  --network           let the sandbox reach the network (downloads of a
                      package install, say): what the script sends during a
                      dry run is itself a side effect, and is not reviewed
  --target T          run on a remote host over SSH: a [remotes.T] of the
                      config, or USER@HOST[:PORT] (see "shannot remote")
  --accept-new        with --target: accept and remember an unknown host key
  --why TEXT          why the change is wanted, kept with the session and
                      shown to whoever reviews it (show, the review UI)
  --exit-code         exit 10 when the command succeeded and changes were
                      captured (a session was made), 0 when nothing was;
                      1 when it failed, changes or not
  --quiet             no progress line (on a terminal, storing what a run
                      wrote shows one on stderr when it lasts over a second)
  --exec              a plain sandbox (a profile that captures nothing) in
                      place of shannot: bwrap replaces it, so nothing runs
                      after the command: its output is not filtered of
                      terminal control strings and a limit it runs into
                      is not named (the exit code is as without --exec)

fleets (many hosts; see "shannot help remote" for groups):
  --target @GROUP     every host of a [groups.GROUP] of the config or of a
                      group of the inventory; --target a,b,c: those hosts
  --inventory FILE    an Ansible inventory (INI or YAML) whose hosts and
                      groups targets may name (default: inventory = in
                      config.toml); alone, every host in it
  --limit PATTERN     only the hosts an Ansible pattern keeps: names,
                      globs (web*), groups, ":" unions, "&" and "!"
  --forks N           hosts captured at a time (default 8)
  A fleet run captures on every host in parallel, each host's session its
  own, grouped under one run id: "shannot show RUN" groups hosts by
  identical changes (variant A, B, ...), "shannot approve RUN --variant A"
  approves one variant.  First every host key is checked; unknown ones are
  listed all at once and nothing runs (--accept-new accepts them).  Exit
  code 1 when any host failed (unreachable, refused, its run failed);
  else, with --exit-code, 10 when any host's changes were captured.
  --json              print one JSON document: command, profile, exit_code,
                      signal, timed_out, stdout, stderr, *_truncated,
                      *_dropped_bytes, duration, session (id and counts or null),
                      ignored (paths [capture] ignore left out)]],
  options = {
    ["--profile"] = { arg = "P" },
    ["-c"] = { arg = "CODE", key = "code" },
    ["--timeout"] = { arg = "S", type = "number" },
    ["--max-output"] = { arg = "SIZE", type = "size" },
    ["--json"] = {},
    ["--target"] = { arg = "T" },
    ["--interpreter"] = { arg = "I" },
    ["--accept-new"] = { key = "accept_new" },
    ["--network"] = {},
    ["--hide"] = { arg = "GLOB", many = true },
    ["--limit"] = { arg = "PATTERN" },
    ["--inventory"] = { arg = "FILE" },
    ["--forks"] = { arg = "N", type = "number" },
    ["--why"] = { arg = "TEXT" },
    ["--exit-code"] = { key = "exit_code" },
    ["--quiet"] = {},
    ["--exec"] = {},
  },
  stop_at_positional = true,
}

-- Where a script is bound inside the sandbox: /tmp there is fresh, so its
-- own path may not exist.
local SCRIPT_DIR = "/run/shannot/script"

local function json_document(r, captured)
  local doc = {
    command = json().array(r.command), profile = r.profile,
    exit_code = r.exit_code or json().null, signal = r.signal_name or json().null,
    timed_out = r.timed_out, duration = r.duration, session = json().null, ignored = r.ignored or 0,
  }
  for _, name in ipairs({ "stdout", "stderr" }) do
    doc[name] = r[name]
    doc[name .. "_truncated"] = r[name .. "_truncated"]
    doc[name .. "_dropped_bytes"] = r[name .. "_dropped"]
    doc[name .. "_dropped_at"] = r[name .. "_dropped_at"]
  end
  if captured then
    doc.session = { id = captured.id, counts = captured.counts,
      operations = require("shannot.session").count(captured) }
  end
  return doc
end

local function first_line(s)
  return (s or ""):match("[^\n]+") or ""
end

-- The run ended without the command's exit code: say why, as an error.
local function abnormal_end(r, opts)
  if r.interrupted then
    return nil, err.failed("interrupted; the sandbox and everything in it were killed")
  end
  if r.timed_out then
    return nil, err.failed("timed out after %g s; the sandbox and everything in it were killed", opts.timeout)
  end
  local said = first_line(r.stderr)
  return nil, err.env('the sandbox could not be set up%s; "shannot status" tells what this machine lacks',
    said ~= "" and (": " .. text.inert(text.middle(said, 300))) or "")
end

-- The interpreter line of a script: {interp [, arg]} or nil.  Its first
-- 256 bytes, as the kernel reads them (a script of any length).
local function shebang(path)
  local f = io.open(path, "rb")
  local head = f and f:read(256) or ""
  if f then f:close() end
  local line = head:match("^#!([^\n]*)")
  if not line then return nil end
  local interp, arg = line:match("^%s*(%S+)%s*(.-)%s*$")
  if not interp then return nil end
  return arg ~= "" and { interp, arg } or { interp }
end

-- what_to_run(opts, args) -> job | nil, err: argv inside the sandbox, the
-- command as the user gave it (for the session), a session name, extra
-- binds.
function M.what_to_run(opts, args)
  if opts.code then
    if #args > 0 or opts["--"] then
      return nil, err.usage("run: -c takes the code alone: shannot run -c 'CODE'")
    end
    return { argv = { "/bin/sh", "-c", opts.code }, name = "sh-c", command = { "-c", opts.code }, code = opts.code }
  end
  if opts["--"] then
    if #args > 0 then
      return nil, err.usage('run: put "--" before the command: shannot run [OPTIONS] -- %s',
        text.command_line(args))
    end
    if #opts["--"] == 0 then return nil, err.usage("run: no command given after --") end
    return { argv = opts["--"], name = opts["--"][1], command = opts["--"] }
  end
  if #args == 0 then return nil, err.usage("run: nothing to run; usage: %s", M.usage) end
  local script = args[1]
  local st = fs.stat(script)
  if not st then
    return nil, err.usage('run: no such script "%s"; to run a command: shannot run -- %s',
      text.inert(script), text.command_line(args))
  end
  if st.type ~= "file" then return nil, err.usage('run: "%s" is not a file', text.inert(script)) end
  local real = assert(fs.realpath(script))
  local name = real:match("([^/]+)$")
  local inside = SCRIPT_DIR .. "/" .. name
  local argv = opts.interpreter and { opts.interpreter } or shebang(real) or { "/bin/sh" }
  argv[#argv + 1] = inside
  table.move(args, 2, #args, #argv + 1, argv)
  local command = { real }
  table.move(args, 2, #args, 2, command)
  return { argv = argv, name = name, command = command, script = real, script_inside = inside }
end

M.MAX_WHY = 16 * 1024

-- why(text) -> text | nil, err: the reason given with --why, checked
function M.why(why)
  if why == nil then return nil end
  if #why > M.MAX_WHY then
    return nil, err.usage("run: --why is %d bytes long; at most %d are kept", #why, M.MAX_WHY)
  end
  if not utf8.len(why) then return nil, err.usage("run: --why is not valid UTF-8") end
  return why
end

-- in_place(opts, job, profile, where) -> whether bwrap replaces shannot
-- (no fork, no wait; the sandbox's first program reports the end as
-- finish() would) | nil, err.  Only when asked (--exec): every run
-- otherwise filters the command's output of terminal control strings
-- (issue 11) and names a limit it ran into, which needs shannot after
-- the command.  And only for a plain sandbox here (no capture paths),
-- nothing to time, print as JSON, clean up (a script's private copy,
-- hidden files' scratch) or supervise (unix_sockets); with a reason to
-- expect that bwrap fails to set it up, shannot waits (it reports that
-- as exit 4).
function M.in_place(opts, job, p, where)
  if not opts.exec then return false end
  if where.target ~= "local" or #p.capture > 0 or #p.unix_sockets > 0 or opts.json or opts.timeout or job.script
    or (opts.hide and #opts.hide > 0) then
    return nil, err.usage("run: --exec is for a plain sandbox on this machine: a profile that captures nothing, " ..
      "without --target, --json, --timeout, --hide or a script file")
  end
  return require("shannot.sandbox").setup_doubtful(p) == nil
end

function M.run(opts, args)
  local job, jerr = M.what_to_run(opts, args)
  if not job then return nil, jerr end
  for _, pattern in ipairs(opts.hide or {}) do
    local ok, why = require("shannot.sandbox.hide").check(pattern)
    if not ok then return nil, err.usage('run: --hide "%s" must be %s', text.inert(pattern), why) end
  end
  local why, whyerr = M.why(opts.why)
  if whyerr then return nil, whyerr end
  job.why, job.client = why, cli.client()
  -- a script's private copy (nothing to keep for a command or -c)
  local kept, kerr
  if job.script then
    kept, kerr = require("shannot.capture.script").keep(job)
    if not kept then return nil, kerr end
  end
  local _ <close> = kept
  if job.client and job.kept then
    -- an MCP client's script lives in a directory gone after the call:
    -- the session names the client instead
    job.kept.name = "mcp-script"
    job.command = { "mcp-script" }
  end
  if require("shannot.fleet").is_fleet(opts.target, opts) then
    return require("shannot.fleet.capture").command(opts, job)
  end
  local where, werr = executor.settings(executor.target_of(opts.target, opts.config), opts.config)
  if not where then return nil, werr end
  local p, perr = profile.for_run({ profile = opts.profile, network = opts.network, config = opts.config,
    warn = cli.warn }, where)
  if not p then return nil, perr end
  local exec, eerr = M.in_place(opts, job, p, where)
  if eerr then return nil, eerr end
  if exec then
    local _, xerr = require("shannot.sandbox").exec(p, job.argv, { bwrap = where.bwrap_path,
      limits = require("shannot.sandbox.limits").of(opts.config), report = text.inert(job.argv[1]) })
    return nil, xerr  -- only when bwrap could not start
  end
  local ex <close>, xerr = executor.open(where, { accept_new = opts.accept_new, profile = p })
  if not ex then return nil, xerr end
  local progress <close> = cli.progress(opts)
  local r, captured = require("shannot.capture").run(ex, p, job, {
    json = opts.json, ttl = opts.config and opts.config.values.session.ttl, config = opts.config,
    actor = opts.actor, timeout = opts.timeout,
    max_output = opts.max_output or require("shannot.proc").DEFAULT_MAX_OUTPUT,
    warn = opts.warn, hide = opts.hide, progress = progress,
  })
  progress:finish()
  if not r then return nil, captured end
  return M.finish(opts, job, r, captured)
end

-- The exit code of a run whose command succeeded: with --exit-code,
-- whether it captured anything (const.EXIT.CHANGES: a session was made).
local function success(opts, captured)
  return (opts.exit_code and captured) and const.EXIT.CHANGES or const.EXIT.OK
end

-- finish(opts, job, result, session) -> exit code | nil, err
function M.finish(opts, job, r, captured)
  if opts.json and (r.exit_code or r.timed_out) then
    cli.out(json().encode(json_document(r, captured), { indent = "  " }), "\n")
    return r.exit_code == 0 and success(opts, captured) or const.EXIT.FAILED
  end
  -- The command's output came through as it was; whatever state it left
  -- the terminal in must not hide or disguise what shannot says now.
  require("shannot.term").reset_after_output({ r.stdout or "", r.stderr or "" })
  for _, which in ipairs(r.limits_hit or {}) do
    local v = opts.config and opts.config.values.limits[which]
    if math.type(v) == "integer" and which == "memory" then v = require("shannot.session.view").size(v) end
    cli.warn("the sandbox ran into its %s limit ([limits] %s = %s)", which, which, tostring(v))
  end
  if captured then io.stderr:write(require("shannot.session.view").summary(captured)) end
  if not captured and (r.ignored or 0) > 0 then
    cli.warn("nothing captured: %s", require("shannot.session.view").ignored_line(r.ignored))
  end
  if r.exit_code == nil then return abnormal_end(r, opts) end
  if r.exit_code ~= 0 then
    cli.warn("command %s exited with code %d", text.inert(job.argv[1]), r.exit_code)
    return const.EXIT.FAILED
  end
  return success(opts, captured)
end

return M
