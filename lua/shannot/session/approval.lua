-- What an approval binds: a digest over everything execute will use (the
-- target, and each operation's kind, path, decision, new and base state,
-- content hash, deferred command line), sealed into the session when it
-- becomes approved and checked again before anything is applied.  A
-- session.json edited after approval (a path redirected, a decision
-- flipped, an operation added, a content hash swapped) is refused,
-- naming the first difference.  The seal is an HMAC under a key of the
-- user's own (DATA/approval.key, 0600), so whoever can edit the session
-- store but not read that key cannot make a new seal to match an edit;
-- blobs are bound by their hash, which execute checks as it copies.
local err = require("shannot.err")
local fs = require("shannot.fs")
local paths = require("shannot.paths")
local store = require("shannot.store")

local M = {}

M.KEY_BYTES = 32

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local function xor_pad(key, byte)
  return (key:gsub(".", function(c) return string.char(c:byte() ~ byte) end)) ..
    string.rep(string.char(byte), 64 - #key)
end

-- hmac(key, message) -> HMAC-SHA256 hex (RFC 2104; key of at most 64 bytes)
function M.hmac(key, message)
  local inner = unhex(store.hash_string(xor_pad(key, 0x36) .. message))
  return store.hash_string(xor_pad(key, 0x5c) .. inner)
end

-- key() -> this user's approval key | nil, err (made on first use)
function M.key()
  local file = paths.data_dir() .. "/approval.key"
  local data = fs.read_file(file, 1024)
  if data and #data == M.KEY_BYTES then return data end
  local rnd = io.open("/dev/urandom", "rb")
  local fresh = rnd and rnd:read(M.KEY_BYTES)
  if rnd then rnd:close() end
  if not fresh or #fresh ~= M.KEY_BYTES then return nil, err.env("cannot read /dev/urandom") end
  local ok, msg = fs.mkdir_p(paths.data_dir(), 448)
  if ok then ok, msg = fs.write_new(file, fresh, 384) end
  if not ok then
    -- another shannot made it first: theirs it is
    data = fs.read_file(file, 1024)
    if data and #data == M.KEY_BYTES then return data end
    return nil, err.env("cannot keep the approval key: %s", tostring(msg))
  end
  return fresh
end

local OP_FIELDS = { "id", "kind", "path", "decision", "cwd" }
local STATE_FIELDS = { "exists", "type", "mode", "uid", "gid", "hash", "size", "link" }

-- A value as one unambiguous string: its type, its length, its text.
-- (name=t:N:text, the type by its first letter; built by concatenation,
-- not string.format: execute takes the digest of every operation)
local TYPE_LETTER = { string = "s", number = "n", boolean = "b", ["nil"] = "n", table = "t", ["function"] = "f",
  userdata = "u", thread = "t" }
local function put(out, name, v)
  local t = type(v)
  local s = (t == "string" or t == "number" or t == "boolean") and tostring(v) or "-"
  out[#out + 1] = name .. "=" .. TYPE_LETTER[t] .. ":" .. #s .. ":" .. s
end

-- "new.exists", "new.type", ...: the state fields' names under a prefix,
-- made once
local STATE_NAMES = setmetatable({}, { __index = function(t, prefix)
  local names = {}
  for i, f in ipairs(STATE_FIELDS) do names[i] = prefix .. "." .. f end
  t[prefix] = names
  return names
end })

local function put_state(out, prefix, st)
  if type(st) ~= "table" then return put(out, prefix, nil) end
  local names = STATE_NAMES[prefix]
  for i, f in ipairs(STATE_FIELDS) do put(out, names[i], st[f]) end
  -- bound too when there is one (sessions captured before had none, and
  -- their digests stay what they were)
  if st.hardlink ~= nil then put(out, prefix .. ".hardlink", st.hardlink) end
  if type(st.xattrs) == "table" then
    for _, name in ipairs(require("shannot.xattrs").names(st.xattrs)) do
      put(out, prefix .. ".xattrs." .. name, st.xattrs[name])
    end
  end
  if st.mtime_sec ~= nil then
    put(out, prefix .. ".mtime_sec", st.mtime_sec)
    put(out, prefix .. ".mtime_nsec", st.mtime_nsec)
  end
end

-- canonical(op) -> the operation as the string its digest is taken of
function M.canonical(op)
  local out = {}
  for _, f in ipairs(OP_FIELDS) do put(out, f, op[f]) end
  put_state(out, "new", op.new)
  put_state(out, "base", op.base)
  if op.from ~= nil then
    -- a rename: its source, and the tree it moves as the drift check knows it
    put(out, "from", op.from)
    put_state(out, "from_base", op.from_base)
    put(out, "from_base.digest", type(op.from_base) == "table" and op.from_base.digest or nil)
  end
  if type(op.answer) == "table" then
    -- a question: the answer execute must get again
    put(out, "answer.code", op.answer.code)
    put(out, "answer.sha256", op.answer.sha256)
  end
  local argv = type(op.argv) == "table" and op.argv or {}
  put(out, "argc", #argv)
  for i, a in ipairs(argv) do put(out, "argv" .. i, a) end
  return table.concat(out, "\n")
end

function M.op_digest(op)
  return store.hash_string(M.canonical(op))
end

-- The directory times execute sets, as one string ("" when none: the
-- digests of sessions without them stay what they were).
local function dir_times_text(s)
  local out = {}
  for _, t in ipairs(type(s.dir_times) == "table" and s.dir_times or {}) do
    put(out, "dir_time", string.format("%s\0%s\0%s\0%s\0%s", tostring(t.path), tostring(t.mtime_sec),
      tostring(t.mtime_nsec), tostring(t.base_sec), tostring(t.base_nsec)))
  end
  local w = type(s.where) == "table" and s.where
  if w then
    -- where it lives: execute goes there and nowhere else
    put(out, "where", string.format("%s\0%s\0%s\0%s\0%s", tostring(w.name), tostring(w.user), tostring(w.host),
      tostring(w.port), tostring(w.fingerprint)))
  end
  return #out > 0 and ("\n" .. table.concat(out, "\n")) or ""
end

-- A session sealed before its operations moved beside session.json holds
-- every digest in it (approval.operations) and is checked as it was.
local function legacy_digest(key, s, digests)
  return M.hmac(key, "target=" .. tostring(s.target) .. "\n" .. table.concat(digests, "\n") .. dir_times_text(s))
end

-- The digests folded as they come, in batches (one hash per batch, not
-- one string of them all): the seal of 100 000 operations costs no more
-- memory than that of one.
local BATCH = 512

local function folder()
  local acc, batch, n = "", {}, 0
  local f = {}
  function f.add(d)
    n = n + 1
    batch[#batch + 1] = d
    if #batch == BATCH then
      acc, batch = store.hash_string(acc .. "\n" .. table.concat(batch, "\n")), {}
    end
  end
  function f.result()
    if #batch > 0 then acc, batch = store.hash_string(acc .. "\n" .. table.concat(batch, "\n")), {} end
    return acc, n
  end
  return f
end

local function session_digest(key, s, fold, n)
  return M.hmac(key, string.format("target=%s\noperations=%d:%s%s", tostring(s.target), n, fold, dir_times_text(s)))
end

-- why a sealed session or checkpoint is refused
local function refuse(fmt, ...)
  return nil, err.refused(fmt, ...)
end

-- seal(s, lists [, batch]) -> true | nil, err: s.approval, for the
-- operations as they are now; their digests one per line in the session's
-- approval list (which names the first operation that differs later),
-- handed to batch (durable.lua's) when given, else durable on return.
function M.seal(s, lists, batch)
  local key, kerr = M.key()
  if not key then return nil, kerr end
  local w, werr = require("shannot.session.lines").writer(lists.file("approval"))
  if not w then return nil, werr end
  local fold = folder()
  local ok, e = err.try(function()
    for _, op in lists.each("operations") do
      local d = M.op_digest(op)
      fold.add(d)
      local added, msg = w:add_line('"' .. d .. '"')
      if not added then err.throw(err.env("%s", msg)) end
    end
  end)
  if ok == nil and e then
    w:abandon()
    return nil, e
  end
  local committed, cerr = w:commit(batch)
  if not committed then return nil, cerr end
  local acc, n = fold.result()
  s.approval = { digest = session_digest(key, s, acc, n), target = s.target, count = n }
  return true
end

local function describe(op)
  return string.format("%s %s", tostring(op.kind),
    require("shannot.text").inert(tostring(op.path or table.concat(op.argv or {}, " "))))
end

local function check_legacy(s, key)
  local a = s.approval
  local ops = s.operations or {}
  if #ops ~= #a.operations then
    return refuse("it now has %d operations, %d were approved", #ops, #a.operations)
  end
  local digests = {}
  for i, op in ipairs(ops) do
    digests[i] = M.op_digest(op)
    if digests[i] ~= a.operations[i] then
      return refuse("operation %d (%s) is not the one approved", i, describe(op))
    end
  end
  if legacy_digest(key, s, digests) ~= a.digest then
    return refuse("its seal does not match its operations and directory times (edited, or sealed without this " ..
      "user's approval key)")
  end
  return true
end

-- check(s, lists) -> true | nil, err: what differs from what was
-- approved.  lists: session.reader(s, f), f the operations' handle
-- (session.open_list) the caller reads them again from, so what was
-- checked is what it reads.
function M.check(s, lists)
  local a = s.approval
  if type(a) ~= "table" or type(a.digest) ~= "string" then
    return refuse("it carries no seal of its approval")
  end
  if s.target ~= a.target then
    return refuse('its target is now "%s", approved for "%s"', tostring(s.target), tostring(a.target))
  end
  local key, kerr = M.key()
  if not key then return nil, kerr end
  if math.type(a.count) ~= "integer" then
    if type(a.operations) ~= "table" then return refuse("it carries no seal of its approval") end
    return check_legacy(s, key)
  end
  return err.try(function()
    local approved = lists.each("approval")
    local fold, extra = folder(), 0
    for i, op in lists.each("operations") do
      local d = M.op_digest(op)
      local _, want = approved()
      if want == nil then
        extra = extra + 1
      elseif d ~= want then
        err.throw(err.refused("operation %d (%s) is not the one approved", i, describe(op)))
      end
      fold.add(d)
    end
    local more = 0
    while approved() do more = more + 1 end
    local acc, n = fold.result()
    if extra > 0 or more > 0 or n ~= a.count then
      err.throw(err.refused("it now has %d operations, %d were approved", n, a.count))
    end
    if session_digest(key, s, acc, n) ~= a.digest then
      err.throw(err.refused("its seal does not match its operations and directory times (edited, or sealed " ..
        "without this user's approval key)"))
    end
    return true
  end)
end

-- The checkpoint is sealed the same way when execute makes it: rollback
-- writes what an entry names where it names it, so an entry edited
-- afterwards (a path moved elsewhere, an owner, a mode, a content hash)
-- must be refused, not restored.  Bound to the session's id, so no other
-- session's checkpoint passes for it.
-- A checkpoint made since its entries moved beside session.json has a
-- count, and binds them by the hash of that file.
local function checkpoint_text(s, lists)
  local copy = {}
  for k, v in pairs(s.checkpoint) do
    if k ~= "seal" and not (k == "entries" and s.checkpoint.count) then copy[k] = v end
  end
  local ok, text = pcall(require("shannot.json").encode, copy)
  if not ok then return nil end
  if s.checkpoint.count then
    local hash = store.hash_file(lists.file("checkpoint"))
    if not hash then return nil end
    text = text .. "\nentries=" .. hash
  end
  -- and to the target: rollback restores on the host the session names
  return "checkpoint\nsession=" .. tostring(s.id) .. "\ntarget=" .. tostring(s.target) .. "\n" .. text
end

-- seal_checkpoint(s, lists) -> true | nil, err: s.checkpoint.seal
function M.seal_checkpoint(s, lists)
  local key, kerr = M.key()
  if not key then return nil, kerr end
  local text = checkpoint_text(s, lists)
  if not text then return nil, err.env("cannot read the checkpoint's entries") end
  s.checkpoint.seal = M.hmac(key, text)
  return true
end

-- check_checkpoint(s, lists) -> true | nil, err: why it is not the one
-- execute made
function M.check_checkpoint(s, lists)
  local seal = s.checkpoint.seal
  if type(seal) ~= "string" then return refuse("its checkpoint carries no seal") end
  local key, kerr = M.key()
  if not key then return nil, kerr end
  local text = checkpoint_text(s, lists)
  if not text or M.hmac(key, text) ~= seal then
    return refuse("its checkpoint is not the one execute made (edited, or sealed without this user's approval key)")
  end
  return true
end

return M
