-- The text an operation's approval digest is taken of must never change:
-- a session approved by one build is executed by the next.  approval's
-- canonical() (its lines built in C by shannot.core.data.tagged) against
-- the rule as first written in Lua, over hand-picked odd values and
-- thousands of random operations.
local approval = require("shannot.session.approval")
local data = require("shannot.core.data")

-- The rule as it was, field by field.
local TYPE_LETTER = { string = "s", number = "n", boolean = "b", ["nil"] = "n", table = "t", ["function"] = "f",
  userdata = "u", thread = "t" }
local function put(out, name, v)
  local t = type(v)
  local s = (t == "string" or t == "number" or t == "boolean") and tostring(v) or "-"
  out[#out + 1] = string.format("%s=%s:%d:%s", name, TYPE_LETTER[t], #s, s)
end
local STATE_FIELDS = { "exists", "type", "mode", "uid", "gid", "hash", "size", "link" }
local function put_state(out, prefix, st)
  if type(st) ~= "table" then return put(out, prefix, nil) end
  for _, f in ipairs(STATE_FIELDS) do put(out, prefix .. "." .. f, st[f]) end
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
local function reference(op)
  local out = {}
  for _, f in ipairs({ "id", "kind", "path", "decision", "cwd" }) do put(out, f, op[f]) end
  put_state(out, "new", op.new)
  put_state(out, "base", op.base)
  if op.from ~= nil then
    put(out, "from", op.from)
    put_state(out, "from_base", op.from_base)
    put(out, "from_base.digest", type(op.from_base) == "table" and op.from_base.digest or nil)
  end
  if type(op.answer) == "table" then
    put(out, "answer.code", op.answer.code)
    put(out, "answer.sha256", op.answer.sha256)
  end
  local argv = type(op.argv) == "table" and op.argv or {}
  put(out, "argc", #argv)
  for i, a in ipairs(argv) do put(out, "argv" .. i, a) end
  return table.concat(out, "\n")
end

local ODD = { 0, -1, 420, 2^53, 0.5, -0.0, 1e300, 3.0, math.maxinteger, math.mininteger, true, false, "",
  "é\0x\n=:", string.rep("a", 300), {}, print, coroutine.create(function() end), io.stdout }

local function pick(rng)
  local r = rng(1, 4)
  if r == 1 then return nil end
  return ODD[rng(1, #ODD)]
end

local function random_state(rng)
  if rng(1, 5) == 1 then return pick(rng) end
  local st = {}
  for _, f in ipairs(STATE_FIELDS) do st[f] = pick(rng) end
  if rng(1, 3) == 1 then st.hardlink = pick(rng) end
  if rng(1, 3) == 1 then st.xattrs = { ["user.b"] = "6869", ["user.a"] = pick(rng), ["trusted.x"] = "" } end
  if rng(1, 2) == 1 then st.mtime_sec, st.mtime_nsec = pick(rng) or 1, pick(rng) end
  st.digest = pick(rng)
  return st
end

describe("approval.canonical", function()
  it("is byte for byte the rule it was, for odd values and random operations", function()
    local seed = os.time()
    math.randomseed(seed)
    local rng = math.random
    for _ = 1, 3000 do
      local op = { id = pick(rng), kind = pick(rng), path = pick(rng), decision = pick(rng), cwd = pick(rng),
        new = random_state(rng), base = random_state(rng) }
      if rng(1, 3) == 1 then op.from, op.from_base = pick(rng) or "/x", random_state(rng) end
      if rng(1, 3) == 1 then op.answer = { code = pick(rng), sha256 = pick(rng) } end
      if rng(1, 3) == 1 then op.argv = { "systemctl", pick(rng) or "", "x" } end
      local want, got = reference(op), approval.canonical(op)
      if want ~= got then
        error(string.format("seed %d: differs\nwant %q\ngot  %q", seed, want, got))
      end
    end
  end)

  it("tagged refuses keys or labels that are not strings", function()
    assert.has_error(function() data.tagged({}, { 1 }) end)
    assert.has_error(function() data.tagged({}, { "a" }, { {} }) end)
    assert.equal("", data.tagged({}, {}))
    assert.equal("a=s:1:x\nL=n:1:-", data.tagged({ a = "x" }, { "a", "b" }, { "a", "L" }))
  end)
end)
