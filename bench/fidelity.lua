-- Faithfulness (issue 14.10): real workloads written by others, each run
-- two ways from the same state, the trees compared as full manifests
-- (spec/support/manifest.lua: types, modes, owners, sizes, link targets
-- and counts, SHA-256, times, sparseness, extended attributes, ACLs,
-- capabilities).
--
--   directly: in a private mount namespace whose /etc /opt /srv /var /usr
--     are overlays over the host with throw-away uppers (as root in the
--     first user namespace: redirect_dir and index on, so a directory
--     rename is a rename and hard links stay hard links), so the host
--     keeps its state;
--   through shannot: run -> approve -> execute on the host, then
--     rollback.
--
-- Per workload it prints how many paths differ after execute from the
-- direct run, and after rollback from before.  Times at or after the
-- workload's start read "new" (the moment a run made a file, which no
-- two runs share); what differs for a listed legitimate reason (a log
-- line's time stamp, say) is counted apart and named.
--
-- Usage (as root, after make): bench/fidelity [WORKLOAD-NAME...]
package.path = "spec/?.lua;" .. package.path
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local manifest = require("support.manifest")

local SHANNOT = arg[1]
local WORK = arg[2]
local ONLY = {}
for i = 3, #arg do ONLY[arg[i]] = true end

local ROOTS = { "/etc", "/opt", "/srv", "/var", "/usr" }

-- /usr: sizes and times (its gigabytes would take minutes to hash);
-- elsewhere every file up to 4 MiB by its SHA-256
local function contents_of(root)
  if root == "/usr" then return false end
  return "small"
end

-- Differences with a reason that is not shannot's: -> the reason | nil
local LEGIT = {
  { "^/var/log/", "a log: time stamps inside" },
  { "^/var/cache/man/", "man-db's index: its own time stamps" },
  { "^/var/cache/debconf/", "debconf's cache: written in hash order" },
  { "^/var/cache/ldconfig/aux%-cache$", "ldconfig's cache: inode numbers inside" },
}

local function legit(path)
  for _, l in ipairs(LEGIT) do
    if path:match(l[1]) then return l[2] end
  end
end

local function sh(script, opts)
  local r = assert(proc.run({ "sh", "-c", script }, opts or { stdin = "null" }))
  return r
end

local function must(script)
  local r = sh(script)
  assert(r.code == 0, script .. ": " .. (r.stderr or "") .. (r.stdout or ""))
  return r
end

-- The manifest of the roots as one table {path = line}.
local function snapshot(since)
  local all = {}
  for _, root in ipairs(ROOTS) do
    if fs.lstat(root) then
      local lines = manifest.of(root, { dir_times = true, since = since, contents = contents_of(root),
        ignore = function(rel) return root == "/var" and rel:match("^lib/apt/lists/") ~= nil end })
      for rel, line in pairs(lines) do all[rel == "." and root or root .. "/" .. rel] = line end
    end
  end
  return all
end

local function save(t, file)
  local f = assert(io.open(file, "w"))
  f:write(json.encode(t))
  f:close()
end

local function load(file)
  return assert(json.decode(assert(fs.read_file(file, 1 << 30))))
end

-- --dump FILE SINCE: the manifest, from inside the direct run's namespace
if SHANNOT == "--dump" then
  save(snapshot(tonumber(arg[3])), WORK)
  os.exit(0)
end

-- A compiled Python file that Python takes as it is, here and now: the
-- time and size of its source written in its header are those of the
-- source beside it (it embeds the time the run wrote the .py: no two runs
-- share it, but each must be consistent).  -> the reason | nil
local function valid_pyc(path)
  local dir, name = path:match("^(.*)/__pycache__/([^/.]+)%.[^/]+%.pyc$")
  if not dir then return nil end
  local f = io.open(path, "rb")
  local head = f and f:read(16)
  if f then f:close() end
  local src = fs.stat(dir .. "/" .. name .. ".py")
  if not (head and #head == 16 and src) then return nil end
  local flags, mtime, size = string.unpack("<I4I4I4", head, 5)
  if flags == 0 and mtime == src.mtime_sec % (1 << 32) and size == src.size % (1 << 32) then
    return "a .pyc: the time of its .py inside, which it matches"
  end
end

-- compare(a, b [, legit_now]) -> shannot's differences, the legitimate
-- ones ("path (reason)"), each a list; legit_now(path) -> reason | nil:
-- a check of the host as it is now
local function compare(a, b, legit_now)
  local real, fine = {}, {}
  local seen = {}
  for _, t in ipairs({ a, b }) do
    for path in pairs(t) do
      if not seen[path] then
        seen[path] = true
        if a[path] ~= b[path] then
          local why = legit(path) or (legit_now and legit_now(path))
          if why then fine[#fine + 1] = path .. " (" .. why .. ")" else real[#real + 1] = path end
        end
      end
    end
  end
  table.sort(real)
  table.sort(fine)
  return real, fine
end

---------------------------------------------------------------------------
-- The workloads: setup (on the host, before; it is part of "before"),
-- script (sh, run both ways), after (on the host once executed: what a
-- person does about a deferred command's effect, such as a started daemon)
-- and cleanup (after the rollback).
---------------------------------------------------------------------------

local DEBS = WORK .. "/debs"

local function build_deb(name, files, control_extra)
  local root = DEBS .. "/" .. name
  fs.rmtree(root)
  assert(fs.mkdir_p(root .. "/DEBIAN"))
  for path, f in pairs(files) do
    local full = root .. path
    assert(fs.mkdir_p(full:match("^(.*)/[^/]*$")))
    local file = assert(io.open(full, "w"))
    file:write(f.data)
    file:close()
    assert(fs.chmod(full, f.mode or 420))
  end
  local control = "Package: " .. name .. "\nVersion: 1.0\nArchitecture: all\n" ..
    "Maintainer: shannot bench <bench@example.invalid>\nDescription: a package of the fidelity bench\n" ..
    (control_extra or "")
  local file = assert(io.open(root .. "/DEBIAN/control", "w"))
  file:write(control)
  file:close()
  -- shipped times from long ago: dpkg keeps them, so must execute
  must("find " .. root .. " -path '*/DEBIAN' -prune -o -exec touch -h -d '2020-02-02 02:02:02' {} +")
  must("dpkg-deb --root-owner-group --build " .. root .. " " .. DEBS .. "/" .. name .. ".deb >/dev/null")
  return DEBS .. "/" .. name .. ".deb"
end

local function script_file(text)
  return { data = "#!/bin/sh\nset -e\n" .. text, mode = 493 }
end

local WORKLOADS = {
  {
    name = "cli-deb", what = "a CLI .deb (dpkg -i)",
    setup = function()
      local deb = build_deb("shannot-fid-hello", {
        ["/usr/bin/shannot-fid-hello"] = script_file("echo hello\n"),
        ["/usr/share/doc/shannot-fid-hello/README"] = { data = "hello\n" },
        ["/usr/share/man/man1/shannot-fid-hello.1"] = { data = ".TH HELLO 1\n" },
      })
      return "dpkg -i " .. deb
    end,
  },
  {
    name = "alternatives-deb", what = "a .deb with update-alternatives in its maintainer scripts",
    setup = function()
      local deb = build_deb("shannot-fid-editor", {
        ["/usr/bin/shannot-fid-editor-real"] = script_file("echo editing\n"),
        ["/DEBIAN/postinst"] = script_file('update-alternatives --install /usr/bin/shannot-fid-ed shannot-fid-ed ' ..
          '/usr/bin/shannot-fid-editor-real 50\n'),
        ["/DEBIAN/prerm"] = script_file('update-alternatives --remove shannot-fid-ed ' ..
          '/usr/bin/shannot-fid-editor-real\n'),
      })
      return "dpkg -i " .. deb
    end,
  },
  {
    name = "daemon-deb", what = "a daemon .deb with maintainer scripts (Debian's memcached: a user, " ..
      "a unit, an init script, enabled and started)",
    setup = function()
      local r = sh("cd " .. DEBS .. " && apt-get download memcached >/dev/null 2>&1 && ls memcached_*.deb")
      if r.code ~= 0 then return nil, "memcached's .deb cannot be downloaded (apt-get download)" end
      if sh("dpkg -s memcached >/dev/null 2>&1").code == 0 then return nil, "memcached is installed already" end
      return "dpkg -i " .. DEBS .. "/" .. r.stdout:match("[^\n]+")
    end,
    after = "/etc/init.d/memcached stop >/dev/null 2>&1 || true",
  },
  {
    name = "adduser", what = "adduser --system --group with a home directory",
    setup = function()
      if sh("getent passwd shannot-fid >/dev/null").code == 0 then return nil, "the user exists already" end
      return "adduser --system --group --home /var/lib/shannot-fid shannot-fid"
    end,
  },
  {
    name = "python-venv", what = "python3 -m venv with pip (ensurepip: wheels unpacked, .pyc compiled)",
    setup = function()
      if sh("/usr/bin/python3 -c 'import ensurepip, venv'").code ~= 0 then return nil, "no python3-venv" end
      return "/usr/bin/python3 -m venv /opt/shannot-fid-venv"
    end,
    cleanup = "rm -rf /opt/shannot-fid-venv",
  },
  {
    name = "special-files", what = "capabilities, ACLs (access and default), xattrs, hard links, a sparse " ..
      "file, a FIFO, mtimes, a directory rename",
    setup = function()
      must("rm -rf /srv/shannot-fid && mkdir -p /srv/shannot-fid/app/lib && cd /srv/shannot-fid && " ..
        "for i in $(seq 1 200); do echo \"file $i\" > app/lib/f$i; done && echo conf > app/conf && " ..
        "echo kept > kept && find . -exec touch -h -d '2019-09-09 09:09:09.5' {} +")
      local acl = "import os, struct\n" ..
        "def acl(*es): return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, p, i) for t, p, i in es)\n" ..
        "a = acl((1, 6, 0xffffffff), (2, 4, 1000), (4, 4, 0xffffffff), (0x10, 4, 0xffffffff), " ..
        "(0x20, 4, 0xffffffff))\n" ..
        "os.setxattr('acl-file', 'system.posix_acl_access', a)\n" ..
        "os.setxattr('acl-dir', 'system.posix_acl_default', a)\n" ..
        "os.setxattr('tagged', 'user.origin', b'fidelity')\n"
      return "cd /srv/shannot-fid && cp /bin/true tool && /usr/sbin/setcap cap_net_raw+ep tool && " ..
        "echo a > acl-file && mkdir acl-dir && echo t > tagged && /usr/bin/python3 -c \"" .. acl .. "\" && " ..
        "echo data > one && ln one two && ln kept kept-too && truncate -s 64M sparse && echo end >> sparse && " ..
        "mkfifo -m 640 pipe && touch -d '2001-01-01 01:01:01.25' dated && mv app app.old && mkdir app && " ..
        "echo v2 > app/conf"
    end,
    cleanup = "rm -rf /srv/shannot-fid",
  },
}

---------------------------------------------------------------------------

local OVERLAYS = [[
set -e
mount -t tmpfs tmpfs "$T"
for d in /etc /opt /srv /var /usr; do
  n=$(echo "$d" | tr / _)
  mkdir -p "$T/u$n" "$T/w$n"
  chown --reference="$d" "$T/u$n"; chmod --reference="$d" "$T/u$n"; touch -r "$d" "$T/u$n"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$T/u$n,workdir=$T/w$n,redirect_dir=on,index=on" "$d"
done
]]

local function direct(w, script, since)
  local out = WORK .. "/" .. w.name .. ".direct.json"
  local ns = WORK .. "/ns"
  assert(fs.mkdir_p(ns))
  local r = assert(proc.run({ "unshare", "-m", "--propagation", "private", "sh", "-c",
    OVERLAYS .. 'sh -c "$1" >"$W/direct.log" 2>&1 || { echo "direct run failed" >&2; exit 1; }\n' ..
    '"$2" lua bench/fidelity.lua --dump "$3" "$4"', "sh", script, SHANNOT, out, tostring(since) },
    { env = { "T=" .. ns, "W=" .. WORK, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root", "LANG=C.UTF-8" }, stdin = "null" }))
  assert(r.code == 0, "direct run of " .. w.name .. ": " .. (r.stderr or "") .. (fs.read_file(WORK .. "/direct.log",
    65536) or ""))
  return load(out)
end

local function shannot(args)
  local env = { "HOME=" .. WORK .. "/home", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8" }
  local r = assert(proc.run({ SHANNOT, table.unpack(args) }, { env = env, stdin = "null" }))
  return r
end

local function through_shannot(w, script, since, direct_tree)
  local r = shannot({ "run", "--json", "--", "sh", "-c", script })
  assert(r.code == 0, "run: " .. r.stderr)
  local doc = assert(json.decode(r.stdout))
  local id = assert(doc.session and doc.session.id, "nothing captured")
  local a = shannot({ "approve", id, "--yes" })
  assert(a.code == 0, "approve: " .. a.stderr)
  local x = shannot({ "execute", id })
  local executed = snapshot(since)
  local real, fine = compare(direct_tree, executed, valid_pyc)  -- while the host holds what execute made
  if w.after then sh(w.after) end
  local rb = shannot({ "rollback", id })
  assert(rb.code == 0, "rollback: " .. rb.stdout .. rb.stderr)
  return { tree = executed, x = x, real = real, fine = fine }
end

-- The legitimate differences, one line per reason: "N paths (reason), e.g. PATH"
local function grouped(fine)
  local by, order = {}, {}
  for _, f in ipairs(fine) do
    local path, why = f:match("^(.-) %((.*)%)$")
    if not by[why] then by[why] = {}; order[#order + 1] = why end
    table.insert(by[why], path)
  end
  local out = {}
  for _, why in ipairs(order) do
    local list = by[why]
    out[#out + 1] = #list == 1 and string.format("%s (%s)", list[1], why) or
      string.format("%d paths (%s), e.g. %s", #list, why, list[1])
  end
  return out
end

local function row(cells, widths)
  local out = {}
  for i, c in ipairs(cells) do out[i] = string.format("%-" .. widths[i] .. "s", c) end
  return table.concat(out, "  ")
end

assert(require("shannot.core.sys").ids().euid == 0, "bench/fidelity runs as root (dpkg, adduser, setcap)")
assert(fs.mkdir_p(DEBS))
assert(fs.mkdir_p(WORK .. "/home/.config/shannot"))
-- fidelity is of everything: nothing left out by [capture] ignore
assert(fs.write_atomic(WORK .. "/home/.config/shannot/config.toml", "[capture]\nignore = []\n"))
local widths = { 17, 8, 24, 24 }
local results, notes = {}, {}
for _, w in ipairs(WORKLOADS) do
  if next(ONLY) == nil or ONLY[w.name] then
    local script, why = w.setup()
    if not script then
      results[#results + 1] = { w.name, "-", "skipped: " .. why, "" }
    else
      local before = snapshot()
      local since = os.time()
      local d = direct(w, script, since)
      local ok, done = pcall(through_shannot, w, script, since, d)
      if not ok then
        results[#results + 1] = { w.name, "-", "failed: " .. tostring(done):match("[^\n]*"), "" }
      else
        local after = snapshot()
        local executed, x, real, fine = done.tree, done.x, done.real, done.fine
        local rreal, rfine = compare(before, after)
        local n = 0
        for _ in pairs(d) do n = n + 1 end
        results[#results + 1] = { w.name, tostring(n),
          string.format("%s%s", #real == 0 and "equal" or (#real .. " differ"),
            #fine > 0 and string.format(" (+%d legit)", #fine) or ""),
          string.format("%s%s", #rreal == 0 and "equal" or (#rreal .. " differ"),
            #rfine > 0 and string.format(" (+%d legit)", #rfine) or "") }
        if x.code ~= 0 then notes[#notes + 1] = w.name .. ": execute exited " .. x.code end
        for _, p in ipairs(real) do notes[#notes + 1] = w.name .. " execute vs direct: " .. p ..
          "\n    direct:  " .. tostring(d[p]) .. "\n    shannot: " .. tostring(executed[p]) end
        for _, p in ipairs(grouped(fine)) do notes[#notes + 1] = w.name .. " execute vs direct, legit: " .. p end
        for _, p in ipairs(rreal) do notes[#notes + 1] = w.name .. " rollback vs before: " .. p ..
          "\n    before: " .. tostring(before[p]) .. "\n    after:  " .. tostring(after[p]) end
        for _, p in ipairs(grouped(rfine)) do notes[#notes + 1] = w.name .. " rollback vs before, legit: " .. p end
      end
      if w.cleanup then sh(w.cleanup) end
    end
  end
end

print(row({ "workload", "paths", "after execute vs direct", "after rollback vs before" }, widths))
for _, r in ipairs(results) do print(row(r, widths)) end
if #notes > 0 then
  print("")
  for _, n in ipairs(notes) do print(n) end
end
