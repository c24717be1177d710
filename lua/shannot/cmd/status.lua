-- shannot status [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local json = require("shannot.json")
local probe = require("shannot.sandbox.probe")

local function yes_no(c)
  if c.ok then return "yes" end
  return "no: " .. tostring(c.error)
end

local function render(s)
  local lines = {
    "shannot " .. s.version,
    string.format("  platform         %s %s %s", s.platform.system, s.platform.release, s.platform.machine),
    string.format("  user             %s (uid %d)%s", s.user.name or "?", s.user.uid,
      s.user.root and "" or ": only your own files can be changed by a captured run"),
  }
  if s.client then
    lines[#lines + 1] = "  sandbox          none here: the client build runs commands on Linux hosts over SSH " ..
      "(--target; shannot remote test NAME tells what a host can do)"
    lines[#lines + 1] = "  config           " .. s.paths.config_file ..
      (s.paths.config_file_exists and "" or " (not present)")
    lines[#lines + 1] = "  data             " .. s.paths.data_dir
    return table.concat(lines, "\n")
  end
  local b = s.bwrap
  lines[#lines + 1] = "  bwrap            " ..
    (b.ok and string.format("%s (%s)", b.path, b.version or "version unknown") or ("missing: " .. b.error))
  lines[#lines + 1] = "  sandbox works    " .. yes_no(s.sandbox)
  lines[#lines + 1] = "  user namespaces  " .. yes_no(s.user_namespaces)
  lines[#lines + 1] = "  overlayfs        " .. yes_no(s.overlayfs) ..
    (s.overlayfs.ok and (" (userxattr, staging in " .. s.overlayfs.staging .. ")") or "")
  lines[#lines + 1] = "  syscall filter   " .. (s.syscall_filter.ok and ("yes (" .. s.syscall_filter.arch .. ")")
    or ("no: " .. tostring(s.syscall_filter.error)))
  lines[#lines + 1] = "  landlock         " .. (s.landlock_abi > 0
    and string.format("yes (ABI %d): host FIFOs and devices cannot be opened for writing", s.landlock_abi)
    or "no: a sandbox can write into a host FIFO it sees")
  lines[#lines + 1] = "  limits           " .. s.limits .. " (processes and memory of each sandbox)"
  lines[#lines + 1] = "  config           " .. s.paths.config_file ..
    (s.paths.config_file_exists and "" or " (not present)")
  lines[#lines + 1] = "  profiles         " .. s.paths.profiles_dir
  lines[#lines + 1] = "  data             " .. s.paths.data_dir
  return table.concat(lines, "\n")
end

return {
  usage = "shannot status [--json]",
  help = [[
Shows what this machine can do, found by trying rather than guessing: the
bwrap found and its version, whether a sandbox starts, whether user
namespaces and overlayfs (with user xattrs, on the disk where sessions are
staged) work, and the config and data paths.  Exits 4 when no sandbox can
be started here.

options:
  --json   one JSON document]],
  options = { ["--json"] = {} },
  run = function(opts)
    local s = probe.gather()
    if opts.json then
      cli.out(json.encode(s, { indent = "  " }), "\n")
    else
      cli.out(render(s), "\n")
    end
    return s.usable and const.EXIT.OK or const.EXIT.ENV
  end,
}
