-- How an operation reads for a person, shared by `shannot show` and the
-- review UI: a one-line description and the diff of a write.  Texts are
-- raw (a path or link target may hold anything); callers make them inert.
local session = require("shannot.session")

local M = {}

function M.octal(mode)
  return mode and string.format("%04o", mode) or "?"
end

function M.size(n)
  if not n then return "?" end
  if n < 1024 then return n .. " B" end
  local units, v, i = { "KiB", "MiB", "GiB", "TiB" }, n / 1024, 1
  while v >= 1024 and i < #units do v, i = v / 1024, i + 1 end
  return string.format("%.1f %s", v, units[i])
end

-- time(meta) -> "2001-02-03 04:05:06.5 UTC" from mtime_sec/nsec
function M.time(m)
  if math.type(m.mtime_sec) ~= "integer" then return "?" end
  local frac = (m.mtime_nsec or 0) > 0 and string.format(".%09d", m.mtime_nsec):gsub("0+$", "") or ""
  return os.date("!%Y-%m-%d %H:%M:%S", m.mtime_sec) .. frac .. " UTC"
end

function M.owner(m)
  return string.format("%s:%s", tostring(m.uid), tostring(m.gid))
end

-- xattr_change(before, after) -> "+name, -name, ~name" (added, removed,
-- changed; capabilities and ACLs by their names)
function M.xattr_change(before, after)
  local xattrs = require("shannot.xattrs")
  local parts = {}
  for _, name in ipairs(xattrs.names(after)) do
    if (before or {})[name] == nil then parts[#parts + 1] = "+" .. name
    elseif before[name] ~= after[name] then parts[#parts + 1] = "~" .. name end
  end
  for _, name in ipairs(xattrs.names(before)) do
    if (after or {})[name] == nil then parts[#parts + 1] = "-" .. name end
  end
  return table.concat(parts, ", ")
end

-- describe(op) -> what the operation does, in one line
function M.describe(op)
  local line = M.describe_kind(op)
  local x = op.kind ~= "xattr" and op.new and op.new.xattrs
  if x and next(x) ~= nil then
    line = line .. ", extended attributes " .. table.concat(require("shannot.xattrs").names(x), " ")
  end
  return line
end

function M.describe_kind(op)
  local new, base = op.new or {}, op.base or {}
  local octal, size, owner = M.octal, M.size, M.owner
  local replaced = base.exists and new.type and base.type ~= new.type
    and string.format(", replaces a %s", base.type) or ""
  if op.kind == "write" then
    if base.exists and base.type == "file" then
      -- a write may change mode and owner too: said, never folded away
      local also = ""
      if base.mode and new.mode ~= base.mode then
        also = also .. ", mode " .. octal(base.mode) .. " -> " .. octal(new.mode)
      end
      if base.uid and (new.uid ~= base.uid or new.gid ~= base.gid) then
        also = also .. ", owner " .. owner(base) .. " -> " .. owner(new)
      end
      return string.format("modified, %s -> %s, %s%s", size(base.size), size(new.size), octal(new.mode), also)
    end
    return string.format("new file, %s, %s %s%s", size(new.size), octal(new.mode), owner(new), replaced)
  elseif op.kind == "mkdir" then
    return string.format("new directory, %s %s%s", octal(new.mode), owner(new), replaced)
  elseif op.kind == "replace_dir" then
    return string.format("directory emptied and made anew, %s %s", octal(new.mode), owner(new))
  elseif op.kind == "symlink" then
    return "-> " .. tostring(new.link or "?") .. replaced
  elseif op.kind == "link" then
    return string.format("hard link to %s (the same file: %s, %s %s)%s", tostring(new.hardlink or "?"),
      size(new.size), octal(new.mode), owner(new), replaced)
  elseif op.kind == "mkfifo" then
    return string.format("new FIFO (named pipe), %s %s%s", octal(new.mode), owner(new), replaced)
  elseif op.kind == "rename" then
    local n = new.count or 1
    local what = new.type == "dir" and (n .. (n == 1 and " entry" or " entries")) or ("a " .. tostring(new.type))
    return string.format("%s -> %s, %s, %s, unchanged (moved, not copied)", tostring(op.from or "?"),
      tostring(op.path), what, size(new.bytes or new.size or 0))
  elseif op.kind == "delete" then
    return base.type == "dir" and "directory and everything in it" or ("a " .. tostring(base.type))
  elseif op.kind == "chmod" then
    return string.format("%s -> %s", octal(base.mode), octal(new.mode))
  elseif op.kind == "chown" then
    return string.format("%s -> %s", owner(base), owner(new))
  elseif op.kind == "touch" then
    return string.format("modification time %s -> %s", M.time(base), M.time(new))
  elseif op.kind == "xattr" then
    return "extended attributes: " .. M.xattr_change(base.xattrs, new.xattrs)
  elseif op.kind == "query" then
    local a = op.answer or {}
    local said = (a.stdout or ""):match("^[^\n]*") or ""
    return string.format("the host answered: exit %s%s; asked again before execute", tostring(a.code),
      said ~= "" and (', "' .. said .. '"') or "")
  elseif op.kind == "exec" then
    return "run on the host after the file operations, in " .. tostring(op.cwd or "/")
  end
  return ""
end

-- What can be shown of a content that cannot be diffed (diff.preview):
-- kind ("binary" | "text"), text | nil.
local function preview(blobs, hash)
  local diff = require("shannot.diff")
  local head, tail, size = require("shannot.store").peek(blobs, hash, diff.PREVIEW_TEXT_BYTES)
  if not head then return nil end
  return diff.preview(head, tail, size)
end

local SHOWN = { binary = "; its first and last bytes:", text = "; its first and last lines:" }

-- diff(s, op) -> text [, why] | nil, why.  text: the unified diff of a
-- write; or, for a content that cannot be diffed (binary, too large), a
-- preview of the new content (hex or its first and last lines) with why
-- saying what it is; nil when there is nothing to show.  Raw text:
-- callers make it inert.
function M.diff(s, op)
  local diff = require("shannot.diff")
  local store = require("shannot.store")
  local blobs = assert(session.dir(s.id)) .. "/blobs"
  local new_meta, base = op.new or {}, op.base or {}
  local old_file = base.exists and base.type == "file"
  local small = (new_meta.size or 0) <= diff.MAX_BYTES and (not old_file or (base.size or 0) <= diff.MAX_BYTES)
  if not small or (old_file and not base.stored) then
    local why = string.format("too large to diff: %s -> %s", M.size(old_file and base.size or 0),
      M.size(new_meta.size))
    if not old_file then why = string.format("new file too large to diff, %s", M.size(new_meta.size)) end
    if not new_meta.hash then return nil, why end
    local kind, text = preview(blobs, new_meta.hash)
    return text, why .. (SHOWN[kind] or "")
  end
  local old, oerr
  if old_file then old, oerr = store.read(blobs, base.hash, diff.MAX_BYTES) end
  local new, nerr
  if new_meta.hash then new, nerr = store.read(blobs, new_meta.hash, diff.MAX_BYTES) end
  if oerr or nerr then return nil, "cannot show the diff: " .. tostring(oerr or nerr) end
  local d = diff.describe(old, new, { a_label = "a" .. require("shannot.text").inert(op.path),
    b_label = "b" .. require("shannot.text").inert(op.path) })
  if d.kind == "text" then return d.text end
  if d.kind ~= "same" and new_meta.hash then  -- binary, or too costly to diff
    local kind, text = preview(blobs, new_meta.hash)
    return text, d.summary .. (SHOWN[kind] or "")
  end
  return nil, d.summary
end

-- where(s) -> where the session's changes land: "this machine", or
-- "deploy@web1:22 (remote web1, host key SHA256:...)"
function M.where(s)
  local w = s.where
  if type(w) ~= "table" then
    return (s.target and s.target ~= "local") and ("remote " .. tostring(s.target)) or "this machine"
  end
  local at = require("shannot.remote").display(w)
  return string.format("%s (remote %s%s)", at, tostring(w.name),
    w.fingerprint and (", host key " .. tostring(w.fingerprint)) or "")
end

-- remote_at(s) -> "USER@HOST:PORT" of a remote session, nil for a local one
function M.remote_at(s)
  if type(s.where) == "table" then return require("shannot.remote").display(s.where) end
  return s.target
end

-- Operation kinds in the order summaries list them.
M.KINDS = { "write", "mkdir", "replace_dir", "symlink", "mkfifo", "link", "rename", "delete", "chmod", "chown", "xattr",
  "touch", "query", "exec" }

local KIND_SET = {}
for _, kind in ipairs(M.KINDS) do KIND_SET[kind] = true end

-- "2 write, 1 delete, 1 exec"
function M.count_line(counts)
  -- one kind (most sessions of a listing): no walk of every kind
  local only, n = next(counts)
  if only == nil then return "" end
  if next(counts, only) == nil and KIND_SET[only] then
    return math.type(n) and n > 0 and (n .. " " .. only) or ""
  end
  local parts = {}
  for _, kind in ipairs(M.KINDS) do
    if (counts[kind] or 0) > 0 then parts[#parts + 1] = counts[kind] .. " " .. kind end
  end
  return table.concat(parts, ", ")
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

-- "12 paths ignored ([capture] ignore)": left out of a capture, neither
-- shown nor applied
function M.ignored_line(n)
  return plural(n, "path") .. " ignored ([capture] ignore)"
end

-- not_captured(s) -> lines saying what the run made that no operation
-- holds (sockets, device nodes): never dropped silently
function M.not_captured(s)
  local out = {}
  for _, sk in ipairs(type(s.skipped) == "table" and s.skipped or {}) do
    out[#out + 1] = string.format("not captured: %s, a %s (it cannot be reviewed or made on the host by shannot)",
      tostring(sk.path), tostring(sk.type))
  end
  if math.type(s.ignored) == "integer" and s.ignored > 0 then out[#out + 1] = M.ignored_line(s.ignored) end
  return out
end

-- The session made, and the commands to review and apply it.
local function summary_head(s)
  local failure = session.run_failure(s)
  if failure then
    return string.format("shannot: captured %s (%s) as session %s, pending review; FAILED RUN: the command %s, " ..
      "so this may be only part of its work\n  review: shannot show %s --diff\n" ..
      "  apply:  shannot approve %s --allow-failed\n",
      plural(session.count(s), "operation"), M.count_line(s.counts), s.id, failure, s.id, s.id)
  end
  return string.format("shannot: captured %s (%s) as session %s, pending review\n" ..
    "  review: shannot show %s --diff\n  apply:  shannot approve %s\n",
    plural(session.count(s), "operation"), M.count_line(s.counts), s.id, s.id, s.id)
end

-- summary(s) -> what a front end says after a capture: the session made,
-- the commands to review and apply it, what was not captured.
function M.summary(s)
  local skipped = M.not_captured(s)
  local tail = #skipped > 0 and ("  " .. table.concat(skipped, "\n  ") .. "\n") or ""
  return summary_head(s) .. tail
end

return M
