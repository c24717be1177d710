-- A full manifest of a tree, for differential checks (the same workload
-- run directly and through run/approve/execute; a host after rollback
-- and before): per path its type, mode, owner, size, link target, link
-- count, SHA-256, modification time, whether it is sparse, and every
-- extended attribute (ACLs and capabilities included) but overlayfs's.
-- Shared by the specs and bench/fidelity.
local fs = require("shannot.fs")
local store = require("shannot.store")

local M = {}

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function xattr_text(path)
  local all = fs.xattrs(path) or {}
  local names = {}
  for name in pairs(all) do
    if not name:match("^trusted%.overlay%.") and not name:match("^user%.overlay%.") then names[#names + 1] = name end
  end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. hex(all[name]) end
  return table.concat(parts, ",")
end

-- time_of(st, opts) -> the modification time as compared: a time at or
-- after opts.since is "new" (the moment a run made it, which no two runs
-- share); a directory's is left out unless opts.dir_times (it moves
-- whenever an entry in it does).
local function time_of(st, opts)
  if st.type == "dir" and not opts.dir_times then return "-" end
  if opts.since and st.mtime_sec >= opts.since then return "new" end
  if opts.seconds then return string.format("%d", st.mtime_sec) end
  return string.format("%d.%09d", st.mtime_sec, st.mtime_nsec)
end

-- of(root [, opts]) -> {rel = line}, sorted rels.  opts: since (seconds:
-- later times read "new"), dir_times, seconds (times to the second: what
-- a remote checkpoint keeps), ignore (a predicate on rel),
-- contents (false: sizes and times only, for trees of gigabytes;
-- "small": the SHA-256 of files up to 4 MiB only).
function M.of(root, opts)
  opts = opts or {}
  local lines, rels = {}, {}
  local function visit(path, rel)
    if opts.ignore and opts.ignore(rel) then return end
    local st = assert(fs.lstat(path))
    local sum, sparse = "-", "-"
    if st.type == "file" then
      local skip = opts.contents == false or (opts.contents == "small" and st.size > 4 * 1024 * 1024)
      sum = skip and "-" or assert(store.hash_file(path))
      sparse = st.blocks * 512 < st.size and "sparse" or "dense"
    end
    lines[rel] = table.concat({ st.type, string.format("%04o", st.mode), st.uid .. ":" .. st.gid,
      st.type == "file" and st.size or "-", st.type == "link" and assert(fs.readlink(path)) or "-",
      st.type ~= "dir" and st.nlink or "-", sum, sparse, time_of(st, opts),
      st.type ~= "link" and xattr_text(path) or "-" }, " ")
    rels[#rels + 1] = rel
    if st.type == "dir" then
      local names = assert(fs.readdir(path))
      table.sort(names)
      for _, name in ipairs(names) do visit(path .. "/" .. name, rel == "." and name or rel .. "/" .. name) end
    end
  end
  visit(root, ".")
  table.sort(rels)
  return lines, rels
end

-- text(root [, opts]) -> the manifest as one string (for assert.equal)
function M.text(root, opts)
  local lines, rels = M.of(root, opts)
  local out = {}
  for _, rel in ipairs(rels) do out[#out + 1] = rel .. " " .. lines[rel] end
  return table.concat(out, "\n")
end

-- differences(a_root, b_root [, opts]) -> list of "rel: a | b" lines
function M.differences(a_root, b_root, opts)
  local a, ar = M.of(a_root, opts)
  local b, br = M.of(b_root, opts)
  local seen, out = {}, {}
  for _, list in ipairs({ ar, br }) do
    for _, rel in ipairs(list) do
      if not seen[rel] then
        seen[rel] = true
        if a[rel] ~= b[rel] then out[#out + 1] = rel .. ": " .. tostring(a[rel]) .. " | " .. tostring(b[rel]) end
      end
    end
  end
  table.sort(out)
  return out
end

-- changed(a, b) -> up to 20 lines of two manifest texts that differ
-- ("- " only in a, "+ " only in b): what a failing spec shows
function M.changed(a, b)
  local in_a, in_b, out = {}, {}, {}
  for line in a:gmatch("[^\n]+") do in_a[line] = true end
  for line in b:gmatch("[^\n]+") do
    in_b[line] = true
    if not in_a[line] and #out < 20 then out[#out + 1] = "+ " .. line end
  end
  for line in a:gmatch("[^\n]+") do
    if not in_b[line] and #out < 20 then out[#out + 1] = "- " .. line end
  end
  return out
end

return M
