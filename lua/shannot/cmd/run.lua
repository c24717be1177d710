-- shannot run [OPTIONS] -- CMD [ARGS...]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local profile = require("shannot.profile")
local proc = require("shannot.proc")
local sandbox = require("shannot.sandbox")
local text = require("shannot.text")

local M = {
  usage = "shannot run [--profile P] [--timeout S] [--max-output SIZE] [--json] -- CMD [ARGS...]",
  help = [[
Runs CMD in a bubblewrap sandbox built from a profile (default "system"):
the system is visible read-only (or only the profile's binds), /dev, /proc
and /tmp are fresh, /run is empty (no D-Bus, systemd or docker socket),
the network is cut off unless the profile allows it, the environment is
cleared and set from the profile, and the command gets no capabilities.
The profile's allowed_commands are checked before anything starts.

Output streams through as it comes.  shannot exits 0 when CMD succeeded and
1 when it failed (its exit code is shown on stderr).

options:
  --profile P         a profile name (see "shannot profile list") or a JSON file
  --timeout S         kill CMD and everything it started after S seconds
  --max-output SIZE   with --json: keep at most SIZE bytes of each stream
                      (default 1M; half from the start, half from the end)
  --json              print one JSON document: command, profile, exit_code,
                      signal, timed_out, stdout, stderr, *_truncated,
                      *_dropped_bytes, duration]],
  options = {
    ["--profile"] = { arg = "P" },
    ["--timeout"] = { arg = "S", type = "number" },
    ["--max-output"] = { arg = "SIZE", type = "size" },
    ["--json"] = {},
  },
}

local function json_document(r)
  local doc = {
    command = json.array(r.command), profile = r.profile,
    exit_code = r.exit_code or json.null, signal = r.signal_name or json.null,
    timed_out = r.timed_out, duration = r.duration,
  }
  for _, name in ipairs({ "stdout", "stderr" }) do
    doc[name] = r[name]
    doc[name .. "_truncated"] = r[name .. "_truncated"]
    doc[name .. "_dropped_bytes"] = r[name .. "_dropped"]
    doc[name .. "_dropped_at"] = r[name .. "_dropped_at"]
  end
  return doc
end

local function first_line(s)
  return (s or ""):match("[^\n]+") or ""
end

-- The run ended without CMD's exit code: say why, as an error.
local function abnormal_end(r, opts)
  if r.interrupted then
    return nil, err.failed("interrupted; the sandbox and everything in it were killed")
  end
  if r.timed_out then
    return nil, err.failed("timed out after %g s; the sandbox and everything in it were killed", opts.timeout)
  end
  local why = opts.json and (": " .. text.inert(first_line(r.stderr))) or " (bwrap's message is above)"
  return nil, err.env("the sandbox could not be set up%s", why)
end

-- The config's local executor settings (profile, bwrap_path), if any.
local function local_executor(cfg)
  if not cfg then return {} end
  local e = cfg.values.executor[cfg.values.default_executor]
  if e and (e.type or "local") == "local" then return e end
  return cfg.values.executor["local"] or {}
end

function M.run(opts, args)
  local argv = opts["--"]
  if #args > 0 then
    return nil, err.usage('run: put "--" before the command: shannot run [OPTIONS] -- %s',
      text.command_line(args))
  end
  if argv == nil or #argv == 0 then
    return nil, err.usage("run: no command given; usage: %s", M.usage)
  end
  local executor = local_executor(opts.config)
  local p, perr = profile.load(opts.profile or executor.profile)
  if not p then return nil, perr end
  local r, rerr = sandbox.run(p, argv, {
    capture = opts.json, timeout = opts.timeout, bwrap = executor.bwrap_path,
    max_output = opts.max_output or proc.DEFAULT_MAX_OUTPUT,
  })
  if not r then return nil, rerr end
  if opts.json and (r.exit_code or r.timed_out) then
    cli.out(json.encode(json_document(r), { indent = "  " }), "\n")
    return r.exit_code == 0 and const.EXIT.OK or const.EXIT.FAILED
  end
  if r.exit_code == nil then return abnormal_end(r, opts) end
  if r.exit_code ~= 0 then
    cli.warn("command %s exited with code %d", text.inert(argv[1]), r.exit_code)
    return const.EXIT.FAILED
  end
  return const.EXIT.OK
end

return M
