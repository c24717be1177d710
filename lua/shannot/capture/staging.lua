-- The staging area of one capturing run: which paths get an overlay (one
-- per mount point under each capture path, read from mountinfo), the
-- upper/work directories, the deferred-command shims, the namespace table
-- proc.spawn sets up, and the cleanup that leaves nothing behind.
-- ../shared/notes/overlay-pitfalls.md lists the traps this works around.
local err = require("shannot.err")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local sys = require("shannot.core.sys")
local text = require("shannot.text")
local bwrap = require("shannot.sandbox.bwrap")
local queries = require("shannot.capture.queries")

local M = {}

local SHIM_BIN, DEFERRED, SHIM_PATH, REAL_DIR = bwrap.SHIM_BIN, bwrap.DEFERRED, bwrap.SHIM, bwrap.REAL_DIR
M.MAX_DEFERRED_BYTES = 16 * 1024 * 1024

local function unescape_mount_path(s)
  return (s:gsub("\\(%d%d%d)", function(oct) return string.char(tonumber(oct, 8)) end))
end

-- parse_mountinfo(text) -> {{point =, fstype =}...} in mount order
function M.parse_mountinfo(data)
  local out = {}
  for line in data:gmatch("[^\n]+") do
    local point, rest = line:match("^%S+ %S+ %S+ %S+ (%S+) (.*)$")
    local fstype = rest and rest:match(" %- (%S+) ")
    if point and fstype then
      out[#out + 1] = { point = unescape_mount_path(point), fstype = fstype }
    end
  end
  return out
end

local under = paths.under

local function strictly_under(path, dir)
  return path ~= dir and under(path, dir)
end

-- Top-level capture directories: real paths, existing, none inside another.
local function capture_tops(capture)
  local real = {}
  for _, path in ipairs(capture) do
    local rp = fs.realpath(path)
    if rp and fs.is_dir(rp) then real[#real + 1] = rp end
  end
  return M.outermost(real)
end

-- As another user than root, only that user's own directories are
-- captured: a root-owned /etc overlaid with an upper of theirs would look
-- writable to them inside, and what they wrote there could never apply.
-- A top they do not own gives way to their home directory if it holds it.
-- owns(path) -> whether the user owns it (lstat here, the probe's answer
-- on a remote); real_home: the home directory's real path, or nil.
function M.own_tops(tops, owns, real_home)
  local out, seen = {}, {}
  local function keep(path)
    if not seen[path] then seen[path] = true; out[#out + 1] = path end
  end
  for _, top in ipairs(tops) do
    if owns(top) then
      keep(top)
    elseif real_home and strictly_under(real_home, top) and owns(real_home) then
      keep(real_home)
    end
  end
  return out
end

-- plan_overlays(capture, mounts) -> tops, overlays.  overlays are parent
-- first: each top, then every mount point below it (overlayfs does not
-- cross mounts), the last mount on a point being the one visible.
function M.plan_overlays(capture, mounts, own)
  local tops = capture_tops(capture)
  if own then
    tops = M.own_tops(tops, function(path)
      local st = fs.lstat(path)
      return st ~= nil and st.uid == own.uid
    end, own.home and fs.realpath(own.home))
  end
  return tops, M.overlays_for(tops, mounts)
end

-- overlays_for(tops, mounts) -> each top, then every mount point below
-- it, parent first (tops: real, existing, none inside another)
function M.overlays_for(tops, mounts)
  local fstype_at = {}
  for _, m in ipairs(mounts) do fstype_at[m.point] = m.fstype end
  local overlays = {}
  for _, top in ipairs(tops) do
    overlays[#overlays + 1] = { target = top }
    local below = {}
    for point in pairs(fstype_at) do
      if strictly_under(point, top) then below[#below + 1] = point end
    end
    table.sort(below)
    for _, point in ipairs(below) do
      overlays[#overlays + 1] = { target = point, fstype = fstype_at[point] }
    end
  end
  return overlays
end

-- outermost(paths) -> sorted, deduplicated, none inside another
function M.outermost(list)
  local sorted = table.move(list, 1, #list, 1, {})
  table.sort(sorted)
  local out = {}
  for _, p in ipairs(sorted) do
    if #out == 0 or not under(p, out[#out]) then out[#out + 1] = p end
  end
  return out
end


-- The shim bound over each deferred command: records the command line
-- (NUL-separated, so any byte survives) and says so on stderr.  Except
-- what systemctl does to files only (enable, disable, mask, preset,
-- set-default, ... and the file queries is-enabled, cat, get-default,
-- list-unit-files): that runs now, offline (systemctl --root=/, the real
-- one bound at bwrap.REAL_DIR), so what it writes is captured, reviewed
-- and rolled back like any write; with --now the call is recorded too,
-- for its start or stop.
local SHIM = [[
#!/bin/sh
# shannot: this command is deferred: recorded now, run on the host only
# after the session is approved.
case "$0" in
  ]] .. SHIM_BIN .. [[/*) shannot_cmd=${0##*/} ;;
  *) shannot_cmd=$0 ;;
esac
shannot_record() {
  {
    printf 'shannot-deferred\000%s\000%s\000%d\000' "$PWD" "$shannot_cmd" "$#"
    for shannot_arg in "$@"; do printf '%s\000' "$shannot_arg"; done
  } >> ]] .. DEFERRED .. [[

  echo "shannot: deferred: $shannot_cmd $* (recorded; runs only after approval)" >&2
}
]] .. queries.SHIM_FUNCTION .. queries.SHIM_DISPATCH .. [[
shannot_real=]] .. REAL_DIR .. [[/${shannot_cmd##*/}
if [ "${shannot_cmd##*/}" = systemctl ] && [ -x "$shannot_real" ]; then
  shannot_verb=
  shannot_root=no
  for shannot_arg in "$@"; do
    case "$shannot_arg" in
      --root|--root=*) shannot_root=yes ;;
      -*) ;;
      *) [ -n "$shannot_verb" ] || shannot_verb=$shannot_arg ;;
    esac
  done
  case "$shannot_verb" in
    enable|disable|reenable|mask|unmask|preset|preset-all|set-default|link|add-wants|add-requires|revert|\
    is-enabled|cat|get-default|list-unit-files)
      shannot_n=$#
      shannot_now=no
      for shannot_arg in "$@"; do
        if [ "$shannot_arg" = --now ]; then shannot_now=yes; else set -- "$@" "$shannot_arg"; fi
      done
      shift "$shannot_n"
      if [ "$shannot_now" = yes ]; then shannot_record "$@" --now; fi
      if [ "$shannot_root" = yes ]; then exec "$shannot_real" "$@"; fi
      exec "$shannot_real" --root=/ "$@"
      ;;
  esac
fi
shannot_record "$@"
exit 0
]]
M.SHIM_TEXT = SHIM  -- a remote staging writes the same shim

-- Paths of the deferred commands that exist as regular files in the
-- sandbox's PATH.  A symlink is left alone: binding over it would cover
-- its target (a busybox, say) for every other name too; the shim
-- directory first in PATH catches it by name.
local function existing_commands(names, search_path)
  local out, seen, dirs = {}, {}, {}
  for dir in search_path:gmatch("[^:]+") do
    local realdir = fs.realpath(dir)
    -- each real directory once (/bin and /usr/bin are one on merged /usr)
    if realdir and dirs[realdir] then realdir = nil end
    if realdir then dirs[realdir] = true end
    for _, name in ipairs(names) do
      local path = realdir and realdir .. "/" .. name
      local st = path and fs.lstat(path)
      if st and st.type == "file" and not seen[path] then
        seen[path] = true
        out[#out + 1] = path
      end
    end
  end
  table.sort(out)
  return out
end

local function check_names(names)
  for _, name in ipairs(names) do
    if name:find("/", 1, true) or name == "" or name == "." or name == ".." then
      return nil, string.format('defer: "%s" is not a command name', text.inert(name))
    end
  end
  return true
end

-- Ours alone: what a sandbox runs must not be another user's to change.
local function own_dir(path, euid)
  local st = fs.lstat(path)
  return st ~= nil and st.type == "dir" and st.uid == euid and st.mode & 18 == 0  -- 18 = 022
end

-- shims(names) -> a directory holding the shim and bin/NAME -> the shim
-- for each deferred command name (the shim tells them apart by $0) | nil,
-- msg.  Made once per content and kept (issue 19.1: 20 files made and
-- removed per run were a tenth of a capture's own time): the data
-- directory's shims/<name_hash of shim and names>, completed in a temporary
-- directory and renamed into place, so one under that name is whole.
-- Sandboxes only ever bind it read-only.  Scratch files: no fsync.
function M.shims(names)
  local ok, msg = check_names(names)
  if not ok then return nil, msg end
  local root = paths.data_dir() .. "/shims"
  local key = require("shannot.core.store").name_hash(SHIM .. "\0" .. table.concat(names, "\0"))
  local dir = root .. "/" .. key
  local euid = sys.ids(false).euid
  if own_dir(dir, euid) and own_dir(dir .. "/bin", euid) then return dir end
  ok, msg = fs.mkdir_p(root, 448)
  if not ok then return nil, msg end
  local tmp, terr = fs.mkdtemp(root .. "/.new-")
  if not tmp then return nil, terr end
  ok, msg = fs.chmod(tmp, 493)
  if ok then ok, msg = fs.write_new(tmp .. "/shim", SHIM, 493) end  -- 0755
  if ok then ok, msg = fs.mkdir(tmp .. "/bin", 493) end
  for _, name in ipairs(names) do
    if ok then ok, msg = fs.symlink(SHIM_PATH, tmp .. "/bin/" .. name) end
  end
  if ok then
    ok, msg = fs.rename(tmp, dir)
    if not ok and own_dir(dir, euid) then ok = true end  -- another run made it first
  end
  if fs.exists(tmp) then fs.rmtree(tmp) end
  if not ok then return nil, msg end
  return dir
end

-- The per-run part of the deferred-command machinery: the record and
-- the questions' channel.  Scratch files: no fsync.
local function write_channels(dir)
  -- 0666: whichever uid the sandboxed code runs as may append
  local ok, msg = fs.write_new(dir .. "/deferred", "", 438)
  -- the questions' channel: any uid may ask (1777, as /tmp), and the
  -- server outside never follows what a script puts there
  if ok then ok, msg = fs.mkdir(dir .. "/q", 448) end
  if ok then ok, msg = fs.set_meta(dir .. "/q", { mode = 1023 }) end
  if ok then ok, msg = fs.mkfifo(dir .. "/q/ask", 384) end
  if ok then ok, msg = fs.set_meta(dir .. "/q/ask", { mode = 438 }) end
  if not ok then return nil, msg end
  return true
end

local function random_suffix()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(4) or tostring(os.time())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The root of an overlay shows the upper directory's mode and owner: it
-- starts as the host directory's, so only a change made inside differs.
local function make_upper(upper, target, full_map)
  local st, msg = fs.lstat(target)
  if not st then return nil, msg end
  local ok
  ok, msg = fs.mkdir(upper, 448)
  if ok and full_map then ok, msg = fs.lchown(upper, st.uid, st.gid) end
  if ok then ok, msg = fs.chmod(upper, st.mode) end
  -- its time too: the overlay's root shows the upper's, which is the
  -- host's unless the script changes the directory (dir_times)
  if ok then ok, msg = fs.set_meta(upper, { mtime_sec = st.mtime_sec, mtime_nsec = st.mtime_nsec }) end
  return ok, msg
end

function M.staging_root()
  return paths.data_dir() .. "/staging"
end

-- A staging that a run left exactly as made (nothing captured) is kept
-- for the next run over the same overlays instead of being removed and
-- made again (issue 19.1: the two were a quarter of a capturing
-- `run -- true`).  One per overlay plan, in the staging root as
-- pool-<name_hash of the plan>; a run claims it by renaming it (atomic: two
-- runs never share one), `shannot prune` removes it like any staging
-- without a live pid.
local function pool_name(root, overlays, full_map)
  local targets = {}
  for i, o in ipairs(overlays) do targets[i] = o.target end
  local plan = (full_map and "map\0" or "own\0") .. table.concat(targets, "\0")
  return root .. "/pool-" .. require("shannot.core.store").name_hash(plan)
end

-- The upper root starts as the host directory looks now: a kept one may
-- hold an older mode, owner or time.
local function sync_upper(upper, target, full_map)
  local st, msg = fs.lstat(target)
  if not st then return nil, msg end
  local up = fs.lstat(upper)
  if not up or up.type ~= "dir" then return nil, "not a directory: " .. upper end
  local ok = true
  if full_map and (up.uid ~= st.uid or up.gid ~= st.gid) then ok, msg = fs.lchown(upper, st.uid, st.gid) end
  if ok and up.mode ~= st.mode then ok, msg = fs.chmod(upper, st.mode) end
  if ok and (up.mtime_sec ~= st.mtime_sec or up.mtime_nsec ~= st.mtime_nsec) then
    ok, msg = fs.set_meta(upper, { mtime_sec = st.mtime_sec, mtime_nsec = st.mtime_nsec })
  end
  return ok, msg
end

-- claim(stage, pool) -> whether the kept staging now is stage.dir, each
-- upper root in step with its host directory.
local function claim(stage, pool)
  if not fs.rename(pool, stage.dir) then return false end
  for i, o in ipairs(stage.overlays) do
    o.upper, o.work = stage.dir .. "/upper/" .. i, stage.dir .. "/wd/" .. i
    if not sync_upper(o.upper, o.target, stage.full_map) then return false end
  end
  return true
end

-- name_set(list) -> the list, also a set of its names
local function name_set(list)
  for _, n in ipairs(list) do list[n] = true end
  return list
end
local NONE = name_set({})
local MADE_TOP, MAYBE_TOP = name_set({ "defer", "pid", "upper", "wd" }), name_set({ "blobs", "trash" })
local MADE_DEFER, MADE_Q = name_set({ "deferred", "q" }), name_set({ "ask" })

-- only(dir, made [, maybe]) -> whether dir holds each of made, of maybe
-- any or none, and nothing else
local function only(dir, made, maybe)
  local list = fs.readdir(dir)
  if not list then return false end
  local seen = 0
  for _, n in ipairs(list) do
    if made[n] then seen = seen + 1 elseif not (maybe and maybe[n]) then return false end
  end
  return seen == #made
end

-- Nothing in it but what create() made, empty: each upper (its root with
-- the overlay's own attributes only), the record, the questions' channel.
local function as_made(stage)
  if not only(stage.dir, MADE_TOP, MAYBE_TOP) then return false end
  if fs.exists(stage.dir .. "/blobs") and not only(stage.dir .. "/blobs", NONE) then return false end
  if not (only(stage.dir .. "/defer", MADE_DEFER) and only(stage.dir .. "/defer/q", MADE_Q)) then
    return false
  end
  local rec = fs.lstat(stage.dir .. "/defer/deferred")
  if not (rec and rec.type == "file" and rec.size == 0) then return false end
  for _, o in ipairs(stage.overlays) do
    if not only(o.upper, NONE) then return false end
    for name in pairs(fs.xattrs(o.upper) or { [""] = true }) do
      if not name:match("^user%.overlay%.") and not name:match("^trusted%.overlay%.") then return false end
    end
  end
  return true
end

-- create(profile, opts) -> stage | nil, err.  opts.search_path: the
-- sandbox's PATH (for the deferred commands that exist).
function M.create(p, opts)
  local info, ierr = fs.read_file("/proc/self/mountinfo")
  if not info then return nil, err.env("cannot read the mount table: %s", ierr) end
  local ids = sys.ids(false)
  local own = ids.euid ~= 0 and { uid = ids.euid, home = paths.home() } or nil
  local tops, overlays = M.plan_overlays(p.capture, M.parse_mountinfo(info), own)
  local root = M.staging_root()
  local function unmakeable(why)
    return nil, err.env("cannot make the staging directory %s: %s; make the data directory writable, or set " ..
      "XDG_DATA_HOME to a place that is", root, why)
  end
  local ok, msg = fs.mkdir_p(root, 448)
  if not ok then return unmakeable(msg) end
  local dir = root .. "/" .. os.date("!%Y%m%d-%H%M%S") .. "-" .. random_suffix()
  local stage = { dir = dir, tops = tops, overlays = overlays, full_map = ids.euid == 0 }
  stage.pool = pool_name(root, overlays, stage.full_map)
  local kept = claim(stage, stage.pool)
  if not kept and fs.exists(dir) then fs.rmtree(dir) end  -- claimed, but out of step: made afresh
  if not kept then
    ok, msg = fs.mkdir(dir, 448)
    if not ok then return unmakeable(msg) end
  end
  -- From here on the caller owns the stage and must remove() it.
  local fail = function(m) M.remove(stage); return nil, err.env("staging: %s", m) end
  ok, msg = fs.write_new(dir .. "/pid", ids.pid .. "\n", 384)  -- a kept one has none
  if not ok then return fail(msg) end
  if not kept then
    for _, sub in ipairs({ "upper", "wd", "defer" }) do
      ok, msg = fs.mkdir(dir .. "/" .. sub, 448)
      if not ok then return fail(msg) end
    end
    for i, o in ipairs(overlays) do
      o.upper, o.work = dir .. "/upper/" .. i, dir .. "/wd/" .. i
      ok, msg = make_upper(o.upper, o.target, stage.full_map)
      if ok then ok, msg = fs.mkdir(o.work, 448) end
      if not ok then return fail(msg) end
    end
    ok, msg = write_channels(dir .. "/defer")
    if not ok then return fail(msg) end
  end
  stage.shims, msg = M.shims(p.defer)
  if not stage.shims then return fail(msg) end
  stage.deferred_paths = existing_commands(p.defer, opts.search_path or "")
  return stage
end

-- The data directory (sessions, staging) is hidden from the sandbox when
-- a capture path covers it: an overlay's own upper seen through that
-- overlay fails with ELOOP, and other sessions are none of its business.
-- bwrap hides it (a tmpfs over it, after the binds whose sources are in
-- it), so the overlays below never need to look inside.
local function hidden_dirs(stage)
  local data = fs.realpath(paths.data_dir())
  if not data then return {} end
  for _, top in ipairs(stage.tops) do
    if under(data, top) then return { data } end
  end
  return {}
end

-- namespace(stage) -> the table proc.spawn's `namespace` option takes.
-- A data directory under a capture path is bound back over its overlay:
-- bwrap resolves the sources of its binds (the shims, the deferred
-- record) by path once our overlays are up, and through the overlay a
-- write to the record would become a captured write of it instead.
function M.namespace(stage)
  local mounts = {}
  for _, o in ipairs(stage.overlays) do
    -- volatile: the staging is thrown away (or kept only when untouched),
    -- so nothing needs it on disk; no sync at unmount (that flushed the
    -- whole file system the staging is on, tens of ms after a run that
    -- wrote) and fsync in the sandbox (package managers) costs nothing
    mounts[#mounts + 1] = { target = o.target, lower = o.target, upper = o.upper, work = o.work, volatile = true }
  end
  for _, dir in ipairs(hidden_dirs(stage)) do mounts[#mounts + 1] = { target = dir, rebind = true } end
  return { full_map = stage.full_map, mounts = mounts }
end

-- sandbox_part(stage) -> the capture part of a sandbox plan (see
-- sandbox/bwrap.lua): the overlaid paths, the staging's shims, the data
-- directory hidden, capabilities as root.
function M.sandbox_part(stage)
  return { staging = stage.dir, shims = stage.shims, tops = stage.tops, deferred_paths = stage.deferred_paths,
    hidden = hidden_dirs(stage), root = stage.full_map }
end

-- describe_failure(stage, e) -> the message of a capture that could not
-- start: e.mount and e.reason (sandbox.run's) name the overlay refused.
function M.describe_failure(stage, e)
  local o = e.mount and stage.overlays[e.mount]
  if not o then return e.message end
  local what = o.fstype and string.format("the %s mount at %s", o.fstype, o.target) or o.target
  return string.format("cannot capture writes under %s: overlayfs refuses it (%s); " ..
    "use a profile whose capture paths leave it out", what, e.reason or "?")
end

-- deferred(stage, allowed) -> {{cwd =, argv = {...}}...} in the order
-- recorded | nil, err (see read_deferred)
function M.deferred(stage, allowed)
  return M.read_deferred(stage.dir .. "/defer/deferred", allowed)
end

-- allowed_deferred(defer, search_path[, resolve]) -> what read_deferred
-- accepts: the profile's deferred command names, and the directories of
-- the sandbox's PATH (where a deferred command may be called by full
-- path), as given and as resolve (default fs.realpath; remotely the
-- remote's view is not ours) makes them.
function M.allowed_deferred(defer, search_path, resolve)
  resolve = resolve or fs.realpath
  local names, dirs = {}, {}
  for _, n in ipairs(defer) do names[n] = true end
  for d in search_path:gmatch("[^:]+") do
    dirs[d] = true
    dirs[resolve(d) or d] = true
  end
  return { names = names, dirs = dirs, resolve = resolve }
end

M.MAX_DEFERRED_ARGS = 65536

-- Why a record's command is not a deferred command, or nil.  The channel
-- is writable from inside the sandbox, so a script may write records of
-- its own: it may add a call of a listed deferred command (reviewed like
-- any other), nothing else.
local function unlisted(cmd, cwd, allowed)
  if cwd:sub(1, 1) ~= "/" then return "has a relative working directory" end
  local dir, name = cmd:match("^(.*)/([^/]+)$")
  if not dir then name = cmd end
  if not allowed.names[name] then
    return string.format('calls "%s", which is not a deferred command', text.inert(cmd))
  end
  if dir then
    if dir == "" then dir = "/" end
    if dir:sub(1, 1) ~= "/" then dir = cwd .. "/" .. dir end  -- ./systemctl
    if not (allowed.dirs[dir] or allowed.dirs[allowed.resolve(dir) or dir]) then
      return string.format('calls "%s", outside the sandbox\'s PATH', text.inert(cmd))
    end
  end
end

local function malformed(why)
  return nil, err.refused("the deferred-command channel is malformed (%s); a script wrote it directly? " ..
    "The capture is refused", why)
end

-- read_deferred(file, allowed) -> records | nil, err.  allowed: from
-- allowed_deferred(); a record of anything else refuses the whole channel.
function M.read_deferred(file, allowed)
  local st = fs.lstat(file)
  if st and st.type ~= "file" then return malformed("not a regular file") end
  local data, msg, code = fs.read_file(file, M.MAX_DEFERRED_BYTES)
  if code == "EFBIG" then return malformed(string.format("larger than %d bytes", M.MAX_DEFERRED_BYTES)) end
  if not data then return nil, err.env("the deferred-command channel: %s", msg) end
  if data ~= "" and data:sub(-1) ~= "\0" then return malformed("an unterminated record") end
  local fields = {}
  for field in data:gmatch("([^%z]*)%z") do fields[#fields + 1] = field end
  local out, i = {}, 1
  while i <= #fields do
    if fields[i] ~= "shannot-deferred" then return malformed("record " .. (#out + 1) .. " has no header") end
    local cwd, cmd, n = fields[i + 1], fields[i + 2], fields[i + 3]
    n = n and n:match("^%d+$") and math.tointeger(tonumber(n))
    if not (cwd and cmd and cmd ~= "" and n and n <= M.MAX_DEFERRED_ARGS and i + 3 + n <= #fields) then
      return malformed("record " .. (#out + 1) .. " is incomplete")
    end
    local why = unlisted(cmd, cwd, allowed)
    if why then return malformed("record " .. (#out + 1) .. " " .. why) end
    local argv = { cmd }
    for k = 1, n do argv[k + 1] = fields[i + 3 + k] end
    out[#out + 1] = { cwd = cwd, argv = argv }
    i = i + 4 + n
  end
  return out
end

-- prune_stale() -> the staging directories removed: those whose run (the
-- pid recorded in them) is gone, left by a shannot that was killed.
function M.prune_stale()
  local removed = {}
  local root = M.staging_root()
  for _, name in ipairs(fs.readdir(root) or {}) do
    local dir = root .. "/" .. name
    local pid = (fs.read_file(dir .. "/pid", 64) or ""):match("^(%d+)")
    if not (pid and fs.exists("/proc/" .. pid)) and fs.rmtree(dir) then removed[#removed + 1] = dir end
  end
  return removed
end

-- Back to as made after a run that captured something (its blobs and
-- record went to the session): an upper that holds anything is made
-- afresh (a new directory lists its entries in the order they are made,
-- as a first run's does: an emptied one reuses freed slots), what
-- questions left and the blobs go, the record is made again.  -> whether
-- as_made now.
local function recycle(stage)
  for _, o in ipairs(stage.overlays) do
    local entries = fs.readdir(o.upper)
    if not entries then return false end
    if #entries > 0 then
      if not (fs.rmtree(o.upper) and make_upper(o.upper, o.target, stage.full_map)) then return false end
    end
  end
  for _, path in ipairs({ stage.dir .. "/blobs", stage.dir .. "/queries", stage.dir .. "/defer/deferred" }) do
    if not fs.rmtree(path) then return false end
  end
  for _, entry in ipairs(fs.readdir(stage.dir .. "/defer/q") or {}) do
    if entry ~= "ask" and not fs.rmtree(stage.dir .. "/defer/q/" .. entry) then return false end
  end
  return fs.write_new(stage.dir .. "/defer/deferred", "", 438) and as_made(stage)
end

-- clear_work(work, as_root): an overlay's work/ after its unmount, which
-- holds incompat/volatile/dirty (mode 000 directories).  As root no mode
-- stops a removal: those four entries by name, deepest first (rmtree's
-- walk, made to open and chmod each level, cost ~2 ms a run over seven
-- overlays); anything else there, or another user, rmtree.
local VOLATILE_LEFT = { "/incompat/volatile/dirty", "/incompat/volatile", "/incompat", "" }
local function clear_work(work, as_root)
  if as_root then
    local all = true
    for _, tail in ipairs(VOLATILE_LEFT) do all = all and fs.remove(work .. tail) ~= nil end
    if all then return end
  end
  fs.rmtree(work)
end

-- sweep(stage): empties the staging's trash, the work dirs its last run
-- set aside (set_aside).  Called while the sandbox runs (sandbox.run's
-- meanwhile), where shannot only waits; what it leaves, the next
-- set_aside clears, or the removal of the staging.
function M.sweep(stage)
  local trash = stage.dir .. "/trash"
  for _, name in ipairs(fs.readdir(trash) or {}) do clear_work(trash .. "/" .. name, stage.full_map) end
end

-- set_aside(stage): each overlay's work/ out of the way of the next mount
-- (a volatile mount leaves work/incompat/volatile, which refuses it; the
-- run ended normally, so the upper is whole).  As root, moved into the
-- trash for the next run's sweep: one rename each where removing was
-- four directory removals (~1.6 ms a run over seven overlays on ext4).
-- As another user, removed now: mode 000 directories left behind would
-- stop that user's own `rm -rf` of the data directory.
local function set_aside(stage)
  local trash = stage.dir .. "/trash"
  if stage.full_map then
    M.sweep(stage)  -- (a run that never got to its sweep)
    if not fs.exists(trash) then fs.mkdir(trash, 448) end
  end
  for i, o in ipairs(stage.overlays) do
    local work = o.work .. "/work"
    if not (stage.full_map and fs.rename(work, trash .. "/" .. i)) and fs.exists(work) then
      clear_work(work, stage.full_map)
    end
  end
end

-- remove(stage): everything, whatever state the run left it in; or, when
-- the run ended by itself (stage.reusable, capture/local.lua), emptied
-- back to as made (as_made, recycle) and kept as the pool's for the next
-- run over the same overlays: what was made need not be made again.
function M.remove(stage)
  if stage.pool and stage.reusable and (as_made(stage) or recycle(stage)) then
    if fs.exists(stage.dir .. "/blobs") then fs.remove(stage.dir .. "/blobs") end
    set_aside(stage)
    if fs.remove(stage.dir .. "/pid") and fs.rename(stage.dir, stage.pool) then return true end
  end
  return fs.rmtree(stage.dir)
end

return M
