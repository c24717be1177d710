-- The lists of a session that grow with its operations (the operations,
-- the checkpoint's entries, the results, the approved digests), each a
-- file of one JSON document per line beside the small session.json: a
-- session of 100 000 operations is read and written one record at a
-- time, and a listing reads only the header.
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")

local M = {}

-- The longest line a reader takes: an operation's answer (a question's
-- whole output) or argument list is the largest record there is.
M.MAX_LINE = 16 * 1024 * 1024
local CHUNK = 256 * 1024

---------------------------------------------------------------------------
-- Writing: into a temp file beside the target, renamed over it once
-- complete and synced, so a reader meets the old list or the new one.
---------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer
Writer.__close = function(self) self:abandon() end

-- writer(path [, opts]) -> a writer | nil, msg.  opts.scratch: a file
-- no crash need find again (a capture's spool, in its staging): commit
-- renames it without syncing it or its directory (a sync cost a run that
-- changed nothing ~10 ms).
function M.writer(path, opts)
  local tmp = string.format("%s.tmp-%d", path, require("shannot.core.sys").ids().pid)
  fs.remove(tmp)
  local f, msg = fs.open(tmp, "a", 384)
  if not f then return nil, msg end
  return setmetatable({ path = path, tmp = tmp, f = f, buf = {}, size = 0, count = 0,
    scratch = opts and opts.scratch }, Writer)
end

function Writer:flush()
  if #self.buf == 0 then return true end
  local ok, msg = self.f:write(table.concat(self.buf))
  self.buf, self.size = {}, 0
  return ok, msg
end

-- add_line(text) -> true | nil, msg: one record's JSON text
function Writer:add_line(line)
  self.buf[#self.buf + 1] = line .. "\n"
  self.size, self.count = self.size + #line + 1, self.count + 1
  if self.size >= CHUNK then return self:flush() end
  return true
end

function Writer:add(record)
  return self:add_line(json.encode_line(record))
end

-- commit([batch]) -> true | nil, msg: durable and in place.  With a batch
-- (durable.lua's), written and handed to it: its place() syncs and
-- renames the file together with the others it holds.
function Writer:commit(batch)
  if self.done then return nil, "already committed or abandoned" end
  self.done = true
  local ok, msg = self:flush()
  if ok and batch and not self.scratch then
    batch:file(self.f, self.tmp, self.path)
    return true
  end
  if ok and not self.scratch then
    local own = require("shannot.durable").batch()
    own:file(self.f, self.tmp, self.path)
    return own:commit()
  end
  self.f:close()
  if ok then ok, msg = fs.rename(self.tmp, self.path) end
  if not ok then
    fs.remove(self.tmp)
    return nil, msg
  end
  return true
end

-- abandon(): nothing written stays (once committed, nothing to do); as
-- __close, on any way out of the writer's scope, an error included
function Writer:abandon()
  if self.done then return end
  self.done = true
  self.f:close()
  fs.remove(self.tmp)
end

-- write(path, list, encode [, batch]) -> true | nil, msg: a whole list
-- at once; encode(item) -> its line (default json.encode_line); batch:
-- commit's
function M.write(path, list, encode, batch)
  local w, msg = M.writer(path)
  if not w then return nil, msg end
  for _, item in ipairs(list) do
    local ok, werr = w:add_line((encode or json.encode_line)(item))
    if not ok then w:abandon(); return nil, werr end
  end
  return w:commit(batch)
end

---------------------------------------------------------------------------
-- Reading
---------------------------------------------------------------------------

-- each_line(f, path) -> iterator of (line number, text, offset).  A
-- line over MAX_LINE, or a last one without its newline (a file cut
-- short), is err.throw'n (a usage error naming the file).
local function each_line(f, path)
  local pending, pending_at, n = "", 0, 0
  -- the lines of the last chunk read and where each starts (two lists:
  -- no table per line)
  local texts, offsets, qi, count, done = {}, {}, 1, 0, false
  local function fill()
    while qi > count and not done do
      local chunk = f:read(CHUNK)
      if not chunk then
        done = true
        if pending ~= "" then err.throw(err.usage("%s: its last line is cut short", path)) end
        break
      end
      local data, start, base = pending .. chunk, 1, pending_at
      qi, count = 1, 0
      while true do
        local nl = data:find("\n", start, true)
        if not nl then break end
        count = count + 1
        texts[count], offsets[count] = data:sub(start, nl - 1), base + start - 1
        start = nl + 1
      end
      for i = count + 1, #texts do texts[i], offsets[i] = nil, nil end
      pending, pending_at = data:sub(start), base + start - 1
      if #pending > M.MAX_LINE then
        err.throw(err.usage("%s: a line is longer than %d bytes", path, M.MAX_LINE))
      end
    end
  end
  return function()
    fill()
    if qi > count then return nil end
    local text, offset = texts[qi], offsets[qi]
    texts[qi], qi, n = false, qi + 1, n + 1
    return n, text, offset
  end
end

-- open(path) -> file | nil, msg, code: a regular file, never through a link
function M.open(path)
  local st = fs.lstat(path)
  if st and st.type ~= "file" then return nil, string.format("%s: a %s, not a file", path, st.type), "EINVAL" end
  local f, msg = io.open(path, "rb")
  if not f then return nil, msg, st and "EACCES" or "ENOENT" end
  return f
end

-- each(f, path, decode) -> iterator of (n, record, offset, length), from
-- the file's start (one handle read again and again is one file, however
-- the name is changed meanwhile).  decode(text, path, n) -> record |
-- nil, why (naming the record "PATH:N"): each line's; a line it refuses
-- is err.throw'n: run the loop inside err.try (or let main report it).
function M.each(f, path, decode)
  f:seek("set", 0)
  local next_line = each_line(f, path)
  return function()
    local n, line, offset = next_line()
    if not n then return nil end
    local rec, why = decode(line, path, n)
    if rec == nil then err.throw(err.usage("%s", why)) end
    return n, rec, offset, #line
  end
end

-- records(path, decode) -> each()'s iterator over a file opened for it |
-- nil, msg, code
function M.records(path, decode)
  local f, msg, code = M.open(path)
  if not f then return nil, msg, code end
  local it = M.each(f, path, decode)
  return function()
    if not it then return nil end
    local n, rec, offset, len = it()
    if not n then
      f:close()
      it = nil
    end
    return n, rec, offset, len
  end
end

return M
