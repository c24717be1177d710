-- STYLE 38: one owner for the bwrap command line.  The same profile and
-- run, planned by the local sandbox and by the SSH executor's capture,
-- give the same sandbox: only paths differ, plus the one capability a
-- remote sandbox without a user namespace of ours must not have.
local bwrap = require("shannot.sandbox.bwrap")
local fs = require("shannot.fs")
local profile = require("shannot.sandbox.profile")
local sandbox = require("shannot.sandbox")
local ssh_capture = require("shannot.capture.ssh")

local function normalized(argv, paths)
  local order = {}
  for from in pairs(paths) do order[#order + 1] = from end
  table.sort(order, function(x, y) return #x > #y end)  -- the longest prefix first
  local out = {}
  for i, a in ipairs(argv) do
    for _, from in ipairs(order) do
      if a == from or a:sub(1, #from + 1) == from .. "/" then a = paths[from] .. a:sub(#from + 1); break end
    end
    if argv[i - 1] == "--add-seccomp-fd" then a = "FD" end
    out[i] = a
  end
  out[1] = "bwrap"
  return out
end

-- the argument pairs of a that b lacks, as "--flag value" strings
local function only_in(a, b)
  local count = {}
  for i = 1, #b - 1 do count[b[i] .. " " .. b[i + 1]] = (count[b[i] .. " " .. b[i + 1]] or 0) + 1 end
  local out = {}
  for i = 1, #a - 1 do
    local pair = a[i] .. " " .. a[i + 1]
    if a[i] == "--cap-add" then
      if (count[pair] or 0) == 0 then out[#out + 1] = pair end
    end
  end
  return out
end

describe("the bwrap command line", function()
  local p = assert(profile.load("system"))
  local job = { argv = { "/bin/sh", "/run/shannot/script/s.sh" }, script_inside = "/run/shannot/script/s.sh",
    script = "/home/me/s.sh" }
  local home = os.getenv("HOME") or "/root"
  -- what ${VAR} in the profile's environment takes on a remote host
  local env = { HOME = home, USER = os.getenv("USER"), LOGNAME = os.getenv("USER") }
  local function getenv(k) return env[k] end
  local var_run_link = (fs.lstat("/var/run") or {}).type == "link"

  local function local_argv(root)
    local plan = assert(sandbox.prepare(p, job.argv, { cwd = home, getenv = getenv,
      capture = { staging = "/data/staging/L", tops = { "/etc", "/var" }, deferred_paths = { "/usr/bin/systemctl" },
        hidden = {}, root = root },
      script = { source = job.script, target = job.script_inside } }))
    for _, f in ipairs(plan.keep) do f:close() end
    plan.enter = { exe = "/usr/lib/shannot/shannot" }
    return normalized(bwrap.argv(p, plan, "local"),
      { ["/data/staging/L"] = "STAGING", ["/usr/lib/shannot/shannot"] = "ENTER", [job.script] = "SCRIPT" })
  end

  local function remote_argv(root)
    local facts = { home = home, user = os.getenv("USER"), tops = { "/etc", "/var" }, uid = "1001", gid = "1002",
      defer = { "/usr/bin/systemctl" }, root = root, var_run_link = var_run_link and "yes" or "no" }
    local staging = { dir = "/tmp/shannot-abc", seccomp = { "a", "b" }, enter = "/tmp/shannot-abc/enter" }
    if not p.seccomp_profile then staging.seccomp = { "a" } end
    return normalized(bwrap.argv(p, ssh_capture.sandbox_plan(p, job, facts, staging), "remote"),
      { ["/tmp/shannot-abc/enter"] = "ENTER", ["/tmp/shannot-abc/script"] = "SCRIPT",
        ["/tmp/shannot-abc"] = "STAGING" })
  end

  -- argv less the run of words starting at the first `first`, and that run
  local function without(argv, first, n)
    for i = 1, #argv do
      if argv[i] == first then
        local out = table.move(argv, 1, i - 1, 1, {})
        table.move(argv, i + n, #argv, #out + 1, out)
        return out, table.move(argv, i, i + n - 1, 1, {})
      end
    end
    return argv, {}
  end

  -- A remote run's bwrap writes its status to a file of the staging
  -- (remote_shell.STATUS_FD); a local one's, to a pipe run() makes.
  local function remote_argv_unstated(root)
    local argv, status = without(remote_argv(root), "--json-status-fd", 2)
    assert.same({ "--json-status-fd", "6" }, status)
    return argv
  end

  it("is the same locally and remotely for a capture as another user, but for whose user namespace", function()
    -- locally, bwrap makes one by itself; remotely, under util-linux's
    -- (the user as 0, for the mounts), it is told to, with the user's ids
    local there, ns = without(remote_argv_unstated(false), "--unshare-user", 5)
    assert.same({ "--unshare-user", "--uid", "1001", "--gid", "1002" }, ns)
    assert.same(local_argv(false), there)
  end)

  it("differs as root only in CAP_MKNOD, which a remote sandbox does not get", function()
    local here, there = local_argv(true), remote_argv_unstated(true)
    assert.same({ "--cap-add CAP_MKNOD" }, only_in(here, there))
    assert.same({}, only_in(there, here))
    local rest, i = {}, 1
    while i <= #here do
      if here[i] == "--cap-add" and here[i + 1] == "CAP_MKNOD" then
        i = i + 2
      else
        rest[#rest + 1], i = here[i], i + 1
      end
    end
    assert.same(there, rest)
  end)

  it("is built only by sandbox/bwrap.lua", function()
    -- STYLE 38: nobody else writes bwrap's mount or namespace options
    local found = {}
    require("support.h").lua_sources(function(path, src)
      if path ~= "lua/shannot/sandbox/bwrap.lua" then
        for _, opt in ipairs({ '"--ro-bind"', '"--unshare', '"--cap-add"', '"--tmpfs"', '"--die-with-parent"' }) do
          if src:find(opt, 1, true) then found[#found + 1] = path .. " " .. opt end
        end
      end
    end)
    assert.same({}, found)
  end)
end)
