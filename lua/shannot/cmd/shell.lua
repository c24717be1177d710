-- shannot shell ID [-- CMD [ARGS...]]: a read-only sandbox showing a
-- session's captured state over the host.  The session's operations are
-- laid out as overlay upper trees in a fresh staging (written from its
-- blobs, deletions as whiteouts, replaced directories opaque), mounted
-- over the host as a capture's would be, and seen through bwrap's
-- read-only root.  Nothing is applied, the session is not written, and
-- the staging goes when the shell ends.
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local proc = require("shannot.proc")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot shell ID [-- CMD [ARGS...]]",
  help = [[
Opens a shell ($SHELL, else /bin/sh), or runs CMD, in a read-only sandbox
(the session's profile) where the system looks as it would after the
session is executed: its writes, new directories, symlinks, deletions,
renames and mode, owner and time changes are laid over the host.  Deferred
commands and queries are not run.  Nothing is applied, nothing on the
host changes, and the session is not modified; leaving the shell removes
the view.  Local sessions only: a remote one is refused (exit 2).

  shannot shell 20261122-101500-setup-3fa1 -- cat /etc/myapp/app.conf]],
  options = {},
}

local OPAQUE_XATTR = "user.overlay.opaque"

-- The overlay a path lies in: the deepest target above it.
local function overlay_of(overlays, path)
  local best
  for _, o in ipairs(overlays) do
    if paths.under(path, o.target) and (not best or #o.target > #best.target) then best = o end
  end
  return best
end

local View = {}
View.__index = View

function View.check(_, ok, msg)
  if not ok then err.throw(err.env("shell: %s", msg)) end
  return ok
end

-- where(path) -> the upper path standing for path, its parents made
-- there as the host has them (mode, owner, time) | nil: not captured here
function View:where(path)
  local o = overlay_of(self.overlays, path)
  if not o then return nil end
  local rel = path:sub(#o.target + 1)
  if rel == "" then return o.upper end
  local dir, host = o.upper, o.target
  for part in rel:match("^(.*)/[^/]*$"):gmatch("[^/]+") do
    dir, host = dir .. "/" .. part, host .. "/" .. part
    local here = fs.lstat(dir)
    if not here then
      local st = fs.lstat(host)
      self:check(fs.mkdir(dir, 448))
      if st then self:meta(dir, st) end
    elseif here.type ~= "dir" then
      -- a capture never puts anything below a symlink or a file it made:
      -- a session that does would lead the view's writes elsewhere
      self:check(nil, string.format("the session puts %s below a %s it made; refused", text.inert(path), here.type))
    end
  end
  return o.upper .. rel
end

-- meta(path, {mode, uid, gid, mtime_sec, mtime_nsec}): as the session says
function View:meta(path, m)
  local want = { mode = m.mode and (m.mode & 4095) or nil, mtime_sec = m.mtime_sec, mtime_nsec = m.mtime_nsec }
  if self.root then want.uid, want.gid = m.uid, m.gid end
  if m.type == "link" then want.mode = nil end
  self:check(fs.set_meta(path, want))
end

local function whiteout(dst)
  local r = proc.run({ "mknod", dst, "c", "0", "0" })
  if not (r and r.code == 0) then return nil, "cannot make a whiteout at " .. dst end
  return true
end

-- copy(host, dst): the host's entry as it is, into the upper tree
function View:copy(host, dst)
  local r = proc.run({ "cp", "-a", "--no-target-directory", host, dst })
  self:check(r and r.code == 0, "cannot copy " .. host .. ": " .. tostring(r and r.stderr))
end

local function remove(dst)
  if fs.lstat(dst) then fs.rmtree(dst) end
end

function View:op(op)
  local kind, new = op.kind, op.new or {}
  if kind == "exec" or kind == "query" then
    self.not_run = self.not_run + 1
    return
  end
  local dst = op.path and self:where(op.path)
  if not dst then
    self.outside = self.outside + 1
    return
  end
  if kind == "write" or kind == "link" then
    remove(dst)
    self:check(require("shannot.store").copy_out(self.blobs, new.hash, dst, 384))
    self:meta(dst, new)
  elseif kind == "mkdir" or kind == "replace_dir" then
    remove(dst)
    self:check(fs.mkdir(dst, 448))
    if kind == "replace_dir" then self:check(fs.set_xattr(dst, OPAQUE_XATTR, "y")) end
    self:meta(dst, new)
  elseif kind == "symlink" then
    remove(dst)
    self:check(fs.symlink(new.link, dst))
    self:meta(dst, new)
  elseif kind == "mkfifo" then
    remove(dst)
    self:check(fs.mkfifo(dst, 384))
    self:meta(dst, new)
  elseif kind == "delete" then
    remove(dst)
    self:check(whiteout(dst))
  elseif kind == "rename" then
    local from = self:where(op.from)
    remove(dst)
    self:copy(op.from, dst)
    if from then
      remove(from)
      self:check(whiteout(from))
    end
  else  -- chmod, chown, touch, xattr: the host's entry with the new metadata
    if not fs.lstat(dst) then
      local st = fs.lstat(op.path)
      if st and st.type == "dir" then
        -- a directory in the upper tree merges with the host's: its
        -- contents need no copy (a chown -R of /var/www copies nothing)
        self:check(fs.mkdir(dst, 448))
      else
        self:copy(op.path, dst)
      end
    end
    self:meta(dst, new)
  end
end

-- lay(s, overlays, root) -> {not_run =, outside =} | nil, err
local function lay(s, overlays, root)
  local v = setmetatable({ overlays = overlays, root = root, blobs = session.dir(s.id) .. "/blobs",
    not_run = 0, outside = 0 }, View)
  return err.try(function()
    for _, op in ipairs(s.operations) do v:op(op) end
    return v
  end)
end

local function profile_of(s)
  local profile = require("shannot.sandbox.profile")
  local p = s.profile and profile.load(s.profile)
  if p then return p end
  cli.warn('shell: the session\'s profile "%s" is gone; using "%s"', text.inert(tostring(s.profile)),
    profile.DEFAULT)
  return profile.load(profile.DEFAULT)
end

function M.run(opts, args)
  local id = args[1]
  if not id then return nil, err.usage("shell: which session? usage: %s", M.usage) end
  if #args > 1 then
    return nil, err.usage('shell: put "--" before the command: shannot shell %s -- %s', text.inert(id),
      text.command_line({ table.unpack(args, 2) }))
  end
  local s, serr = session.load(id)
  if not s then return nil, serr end
  if s.target and s.target ~= "local" then
    return nil, err.usage("shell: session %s is on %s; shell shows local sessions only (not supported yet)",
      s.id, require("shannot.session.view").where(s))
  end
  local argv = opts["--"]
  if argv and #argv == 0 then return nil, err.usage("shell: no command given after --") end
  local shell = os.getenv("SHELL")
  argv = argv or { (shell and shell:sub(1, 1) == "/") and shell or "/bin/sh" }
  local sandbox = require("shannot.sandbox")
  local here, herr = sandbox.check_platform()
  if not here then return nil, herr end
  local p, perr = profile_of(s)
  if not p then return nil, perr end
  local staging = require("shannot.capture.staging")
  -- the overlays a capture with this profile would make, without its
  -- deferred-command shims
  local bare = setmetatable({ defer = {} }, { __index = p })
  local st, sterr = staging.create(bare, {})
  if not st then return nil, sterr end
  local _ <close> = require("shannot.guard")(function() staging.remove(st) end)
  local v, verr = lay(s, st.overlays, st.full_map)
  if not v then return nil, verr end
  if v.not_run > 0 then cli.warn("shell: %d deferred command(s) and queries are not run here", v.not_run) end
  if v.outside > 0 then cli.warn("shell: %d operation(s) lie outside the profile's capture paths", v.outside) end
  local settings = require("shannot.executor").settings("local", opts.config)
  local r, rerr = sandbox.run(p, argv, {
    bwrap = settings and settings.bwrap_path, namespace = staging.namespace(st),
    limits = require("shannot.sandbox.limits").of(opts.config), cwd = require("shannot.core.sys").getcwd(),
  })
  if not r then return nil, rerr end
  if r.exit_code == nil then
    return nil, err.env("shell: the sandbox could not be set up; \"shannot status\" tells what this machine lacks")
  end
  if r.exit_code ~= 0 then
    if opts["--"] then cli.warn("command %s exited with code %d", text.inert(argv[1]), r.exit_code) end
    return const.EXIT.FAILED
  end
  return const.EXIT.OK
end

return M
