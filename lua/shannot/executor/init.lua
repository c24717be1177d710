-- Executors (DESIGN §6): one interface, so capture, session, execute,
-- rollback and MCP code is the same for this machine and for a remote
-- host; the choice between them is made here and nowhere else.
--
--   ex.target                     "local" or the remote's name
--   ex.default_profile            the profile a run uses unless told
--   ex:capture(plan)              -> trees, deferred, result
--        | false, nil, result (the run ended with nothing to capture)
--        | nil, err
--     plan: profile, job {argv, name, command, script, script_inside},
--     config, timeout, max_output, show_output (the output passes
--     through as it comes), hide (absolute globs: paths hidden inside
--     the sandbox, expanded where it runs), warn(fmt, ...).  trees (to be closed: it owns the staging):
--     overlays {{target, upper}}, blobs, max_bytes, deferred_file, and
--     up/host (capture/walk.lua's tree readers; default: this machine's).
--   ex:state(path [, known]), ex:originals(op, cpdir), ex:sync(cpdir),
--   ex:apply(op, ctx), ex:exec(op, timeout [, show]), ex:restore(entry, cpdir,
--   prefix), ex:remove_temps(paths, prefix), ex:below(path) (every path
--   below a directory), ex:xattrs(path) (the kept extended attributes, nil
--   when the executor cannot tell), ex:set_times({{path, mtime_sec,
--   mtime_nsec}...}) (set last):
--   execute and rollback (executor/local.lua), ex:close()
local M = {}

-- The config's local executor settings (profile, bwrap_path), if any.
local function local_settings(cfg)
  if not cfg then return {} end
  local e = cfg.values.executor[cfg.values.default_executor]
  if e and (e.type or "local") == "local" then return e end
  return cfg.values.executor["local"] or {}
end

-- target_of(requested, cfg) -> the executor a run goes to: "local", the
-- requested remote, or the config's ssh default_executor.
function M.target_of(requested, cfg)
  if requested then return requested end
  local name = cfg and cfg.values.default_executor
  local e = name and cfg.values.executor[name]
  if e and e.type == "ssh" or (cfg and cfg.values.remotes[name]) then return name end
  return "local"
end

-- settings(target, cfg) -> {target, profile (the default one), remote
-- (remote.resolve's, for an SSH target)} | nil, err: the executor a
-- target names, before anything is opened or connected.
function M.settings(target, cfg)
  if target == nil or target == "local" then
    local l = local_settings(cfg)
    return { target = "local", profile = l.profile, bwrap_path = l.bwrap_path }
  end
  local t, terr = require("shannot.remote").resolve(target, cfg)
  if not t then return nil, terr end
  return { target = t.name, profile = t.profile, remote = t }
end

-- open(settings [, opts]) -> executor | nil, err.  The caller closes it.
-- opts.accept_new: accept and remember an unknown host key; opts.profile:
-- the profile a capture will use, refused before connecting when this
-- executor cannot run it.
function M.open(where, opts)
  opts = opts or {}
  if not where.remote then return require("shannot.executor.local").new(where) end
  if opts.profile then
    local ok, perr = require("shannot.capture.ssh").check_profile(opts.profile)
    if not ok then return nil, perr end
  end
  local s, cerr = require("shannot.remote").connect(where.remote, { accept_new = opts.accept_new })
  if not s then return nil, cerr end
  local fs = require("shannot.fs")
  local paths = require("shannot.paths")
  assert(fs.mkdir_p(paths.data_dir() .. "/staging", 448))
  local scratch = assert(fs.mkdtemp(paths.data_dir() .. "/staging/ssh-"))
  local ex, msg = require("shannot.executor.ssh").new(s, where.remote, scratch)
  if not ex then
    s:close()
    fs.rmtree(scratch)
    return nil, require("shannot.err").env("%s: sftp: %s", where.target, msg)
  end
  return ex
end

-- for_target(target, cfg [, opts]) -> executor | nil, err (open's)
function M.for_target(target, cfg, opts)
  local where, werr = M.settings(target, cfg)
  if not where then return nil, werr end
  return M.open(where, opts)
end

return M
