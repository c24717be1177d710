-- What this machine can do, found by trying: bwrap present and working,
-- a user + mount namespace, an overlayfs with user xattrs where sessions
-- will be staged.
local const = require("shannot.const")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local profile = require("shannot.sandbox.profile")
local proc = require("shannot.proc")
local sandbox = require("shannot.sandbox")
local sys = require("shannot.core.sys")

local M = {}

local function check(ok, msg)
  if ok then return { ok = true } end
  return { ok = false, error = msg }
end

local function bwrap_info()
  local path, e = sandbox.find_bwrap()
  if not path then return { ok = false, error = e.message } end
  local info = { ok = true, path = path }
  local r = proc.run({ path, "--version" }, { timeout = 5 })
  info.version = r and r.code == 0 and r.stdout:match("^%s*(.-)%s*$") or nil
  local help = proc.run({ path, "--help" }, { timeout = 5 })
  info.has_overlay_option = help ~= nil and help.stdout:find("--overlay", 1, true) ~= nil
  return info
end

local function overlay_probe(dir)
  local ok, msg = fs.mkdir_p(dir, 448)  -- 0700
  if not ok then return check(false, msg) end
  local probe_dir, perr = fs.mkdtemp(dir .. "/probe-")
  if not probe_dir then return check(false, perr) end
  for _, sub in ipairs({ "lower", "upper", "work", "merged" }) do
    fs.mkdir(probe_dir .. "/" .. sub, 448)
  end
  local result = check(require("shannot.core.sandbox").probe(probe_dir))
  fs.rmtree(probe_dir)
  result.staging = dir
  return result
end

local function sandbox_probe(bwrap)
  if not bwrap.ok then return check(false, "bwrap is missing") end
  local p = assert(profile.load("readonly"))
  local r, e = sandbox.run(p, { "true" }, { keep_output = true, timeout = 10, stdin = "null" })
  if not r then return check(false, e.message) end
  if r.exit_code == 0 then return check(true) end
  return check(false, (r.stderr or ""):match("[^\n]+") or proc.describe_end(r))
end

-- gather() -> a table for `status` (text and --json alike)
function M.gather()
  local ids, uname = sys.ids(), sys.uname()
  local info = {
    version = const.VERSION,
    platform = { system = uname.sysname, release = uname.release, machine = uname.machine },
    user = { uid = ids.uid, name = ids.user, root = ids.uid == 0 },
    paths = {
      config_file = paths.config_file(), config_dir = paths.config_dir(),
      data_dir = paths.data_dir(), profiles_dir = paths.profiles_dir(),
    },
  }
  info.paths.config_file_exists = fs.exists(info.paths.config_file)
  if sys.client then
    -- the client build: no local sandbox to probe, remote hosts only
    local no = { ok = false, error = "the client build has no local sandbox: use --target" }
    info.client = true
    info.bwrap, info.sandbox, info.user_namespaces, info.overlayfs, info.syscall_filter = no, no, no, no, no
    info.usable = false
    return info
  end
  info.bwrap = bwrap_info()
  info.sandbox = sandbox_probe(info.bwrap)
  local core_sandbox = require("shannot.core.sandbox")
  info.user_namespaces = check(core_sandbox.probe())
  info.overlayfs = overlay_probe(paths.data_dir() .. "/staging")
  local bpf, serr = require("shannot.sandbox.seccomp").program()
  info.syscall_filter = bpf and { ok = true, arch = require("shannot.core.seccomp").native_arch() }
    or { ok = false, error = serr }
  info.landlock_abi = core_sandbox.landlock_abi()
  info.limits = require("shannot.sandbox.limits").kind()
  info.usable = info.bwrap.ok and info.sandbox.ok
  return info
end

return M
