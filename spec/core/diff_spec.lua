-- shannot.core.diff through shannot.diff: unified output byte for byte as
-- GNU `diff -u --minimal` prints it, its limits, and describe().
local diff = require("shannot.diff")
local h = require("support.h")

-- gnu(a, b, context) -> what `diff -a -u --minimal` prints, labels "a"/"b"
local function gnu(dir, a, b, context)
  h.write(dir .. "/old", a)
  h.write(dir .. "/new", b)
  local p = assert(io.popen(string.format(
    "diff -a --minimal -U%d --label a --label b '%s/old' '%s/new'", context or 3, dir, dir)))
  local out = p:read("a")
  p:close()
  return out
end

-- lines(s) -> the lines of s, each with its "\n" if it has one
local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]*\n?") do
    if l ~= "" then t[#t + 1] = l end
  end
  return t
end

-- apply(a, text) -> a with the unified diff `text` applied, checking that
-- every context and removed line is the one a has there
local function apply(a, text)
  local src, out, at, added = lines(a), {}, 1, nil
  for l in text:gmatch("[^\n]*\n") do
    local tag, body = l:sub(1, 1), l:sub(2)
    local first = l:match("^@@ %-(%d+)")
    if first then
      local start = tonumber(first) + (l:match("^@@ %-%d+,0 ") and 1 or 0)
      while at < start do out[#out + 1] = src[at]; at = at + 1 end
    elseif tag == "\\" and added then
      out[added] = out[added]:sub(1, -2)  -- that line has no newline
    elseif (tag == " " or tag == "-") and not l:match("^%-%-%- ") then
      assert.equal((src[at]:gsub("\n$", "")), (body:gsub("\n$", "")))
      if tag == " " then out[#out + 1] = src[at] end
      at = at + 1
    elseif tag == "+" and not l:match("^%+%+%+ ") then
      out[#out + 1] = body
    end
    added = tag == "+" and #out or nil
  end
  while at <= #src do out[#out + 1] = src[at]; at = at + 1 end
  return table.concat(out)
end

local function numbered(from, to, extra)
  local t = {}
  for i = from, to do t[#t + 1] = "line " .. i .. "\n" end
  return table.concat(t) .. (extra or "")
end

describe("diff", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(h.cleanup)

  local function same_as_gnu(a, b, context)
    local text, added, removed = diff.unified(a, b, { context = context })
    assert.equal(gnu(dir, a, b, context), text)
    assert.equal(b, apply(a, text))
    if text == "" then return assert.same({ 0, 0, a }, { added, removed, b }) end
    local plus, minus = 0, 0
    for tag in text:gmatch("\n([+-])") do
      if tag == "+" then plus = plus + 1 else minus = minus + 1 end
    end
    assert.equal(plus - 1, added)  -- less the "+++" line ("---" is first)
    assert.equal(minus, removed)
  end

  it("matches diff -u for edits at the start, middle and end", function()
    local base = numbered(1, 20)
    local cases = {
      "inserted\n" .. base, numbered(2, 20), "changed\n" .. numbered(2, 20),
      numbered(1, 10, "inserted\n") .. numbered(11, 20),
      numbered(1, 9) .. numbered(11, 20),
      numbered(1, 9, "changed\nchanged too\n") .. numbered(12, 20),
      base .. "appended\n", numbered(1, 19), numbered(1, 19, "changed\n"),
    }
    for _, b in ipairs(cases) do
      same_as_gnu(base, b)
      same_as_gnu(b, base)
    end
  end)

  it("marks a missing final newline on either side or both", function()
    local base = numbered(1, 8)
    same_as_gnu(base, base:sub(1, -2))
    same_as_gnu(base:sub(1, -2), base)
    same_as_gnu(base:sub(1, -2), numbered(1, 7, "other"))
    same_as_gnu(base:sub(1, -2), numbered(1, 3, "x\n") .. numbered(5, 8):sub(1, -2))
    same_as_gnu("only", "")
    same_as_gnu("", "only")
    same_as_gnu("a", "b")
    local text = diff.unified("x\ny", "x\ny\n", { context = 0 })
    assert.equal("--- a\n+++ b\n@@ -2 +2 @@\n-y\n\\ No newline at end of file\n+y\n", text)
  end)

  it("diffs against an empty old or new file", function()
    same_as_gnu("", numbered(1, 5))
    same_as_gnu(numbered(1, 5), "")
    same_as_gnu("", "\n")
    assert.equal("--- a\n+++ b\n@@ -0,0 +1,2 @@\n+line 1\n+line 2\n", diff.unified("", numbered(1, 2)))
  end)

  it("honours context 0 and 5, merging hunks whose context overlaps", function()
    local base = numbered(1, 60)
    local t = lines(base)
    t[3], t[20], t[30], t[42], t[53] = "c3\n", "c20\n", "c30\n", "c42\n", "c53\n"
    table.remove(t, 31)
    local b = table.concat(t):gsub("line 45\n", "line 45\nnew\nnew\n")
    for _, context in ipairs({ 0, 1, 3, 5, 12 }) do
      same_as_gnu(base, b, context)
    end
    -- 10 equal lines between two changes: one hunk with context 5, two with 4
    local c = numbered(1, 10, "X\n") .. numbered(12, 21, "Y\n") .. numbered(23, 30)
    local _, n5 = diff.unified(numbered(1, 30), c, { context = 5 }):gsub("\n@@", "")
    local _, n4 = diff.unified(numbered(1, 30), c, { context = 4 }):gsub("\n@@", "")
    assert.same({ 1, 2 }, { n5, n4 })
  end)

  it("gives many separate hunks", function()
    local t = lines(numbered(1, 200))
    for i = 5, 200, 15 do t[i] = "changed " .. i .. "\n" end
    local text = diff.unified(numbered(1, 200), table.concat(t))
    assert.equal(gnu(dir, numbered(1, 200), table.concat(t)), text)
    local _, hunks = text:gsub("\n@@", "")
    assert.equal(14, hunks)
  end)

  it("matches diff -u --minimal on 200 random pairs", function()
    math.randomseed(20240601)
    local pool = { "a\n", "b\n", "c\n", "\n", "d\n", "a\n", "{\n", "}\n" }
    local function text(n, k)
      local t = {}
      for i = 1, math.random(0, n) do t[i] = pool[math.random(1, k)] end
      local s = table.concat(t)
      if s ~= "" and math.random() < 0.2 then s = s:sub(1, -2) end
      return s
    end
    for _ = 1, 200 do
      local k, n = math.random(2, #pool), math.random(1, 25)
      local a, b = text(n, k), text(n, k)
      if math.random() < 0.4 then  -- a few edits of a, rather than a new text
        local t = {}
        for _, l in ipairs(lines(a)) do
          if math.random() < 0.85 then t[#t + 1] = l end
          if math.random() < 0.15 then t[#t + 1] = pool[math.random(1, k)] end
        end
        b = table.concat(t)
      end
      same_as_gnu(a, b, math.random(0, 4))
    end
  end)

  it("passes NUL bytes and invalid UTF-8 through", function()
    local a = "one\0zero\n\255\254 bad\nsame\n"
    local b = "one\0zero\n\255\253 bad\nsame\n\0"
    same_as_gnu(a, b)
    assert.matches("-\255\254 bad\n+\255\253 bad\n", diff.unified(a, b), 1, true)
  end)

  it("returns empty for equal inputs and uses the labels", function()
    assert.same({ "", 0, 0 }, { diff.unified("x\ny\n", "x\ny\n") })
    assert.same({ "", 0, 0 }, { diff.unified("", "") })
    local text = diff.unified("x\n", "y\n", { a_label = "etc/hosts (now)", b_label = "etc/hosts (after)" })
    assert.equal("--- etc/hosts (now)\n+++ etc/hosts (after)\n@@ -1 +1 @@\n-x\n+y\n", text)
  end)

  it("diffs two 100 000-line files with a few changes quickly", function()
    local t = {}
    for i = 1, 100000 do t[i] = "line " .. i .. " of a long configuration file\n" end
    local a = table.concat(t)
    t[7], t[50000] = "changed\n", "changed too\n"
    table.insert(t, 70000, "inserted\n")
    table.remove(t, 99990)
    local b = table.concat(t)
    local start = os.clock()
    local text, added, removed = diff.unified(a, b)
    local took = os.clock() - start
    assert.equal(3, added)
    assert.equal(3, removed)
    assert.equal(gnu(dir, a, b), text)
    assert.is_true(took < 0.5, "took " .. took .. " s")
  end)

  it("gives up with E2BIG past max_cost", function()
    local a, b = string.rep("a\n", 3000), string.rep("b\n", 3000)
    local start = os.clock()
    local text, msg, code = diff.unified(a, b, { max_cost = 5999 })
    assert.is_nil(text)
    assert.equal("too many differences", msg)
    assert.equal("E2BIG", code)
    assert.is_true(os.clock() - start < 0.5)
    local _, added, removed = diff.unified(a, b, { max_cost = 6000 })
    assert.equal(6000, added + removed)
    assert.is_nil(diff.unified("x\n", "", { max_cost = 0 }))
    assert.equal(1, select(3, diff.unified("x\n", "", { max_cost = 1 })))
    assert.is_nil(diff.unified("a\nb\n", "a\nc\n", { max_cost = 1 }))
  end)

  it("raises on misuse", function()
    assert.has_error(function() diff.unified(nil, "") end)
    assert.has_error(function() diff.unified("", 12) end)
    assert.has_error(function() diff.unified("", "", "context") end)
    assert.has_error(function() diff.unified("a", "b", { context = -1 }) end,
      "bad argument #3 to 'unified' ('context' must be a non-negative integer)")
    assert.has_error(function() diff.unified("a", "b", { context = 1.5 }) end)
    assert.has_error(function() diff.unified("a", "b", { context = "3" }) end)
    assert.has_error(function() diff.unified("a", "b", { max_cost = -2 }) end)
    assert.has_error(function() diff.unified("a", "b", { a_label = 7 }) end,
      "bad argument #3 to 'unified' ('a_label' must be a string)")
  end)

  describe("describe", function()
    it("summarises a text change", function()
      local d = diff.describe(numbered(1, 20), numbered(1, 10, "x\ny\n") .. numbered(13, 22), { a_label = "f" })
      assert.equal("text", d.kind)
      assert.equal(4, d.added)
      assert.equal(2, d.removed)
      assert.equal("4 lines added, 2 removed", d.summary)
      assert.matches("^%-%-%- f\n", d.text)
    end)

    it("handles files that are created or deleted", function()
      local d = diff.describe(nil, "one\n")
      assert.same({ "text", 1, 0, "new file, 1 line added, 0 removed" }, { d.kind, d.added, d.removed, d.summary })
      assert.equal("--- a\n+++ b\n@@ -0,0 +1 @@\n+one\n", d.text)
      d = diff.describe("one\ntwo\n", nil)
      assert.equal("deleted file, 0 lines added, 2 removed", d.summary)
      assert.equal("new empty file", diff.describe(nil, "").summary)
      assert.equal("deleted empty file", diff.describe("", nil).summary)
    end)

    it("reports identical contents as same", function()
      local d = diff.describe("x\n", "x\n")
      assert.same({ "same", "", 0, 0, "no changes" }, { d.kind, d.text, d.added, d.removed, d.summary })
      assert.equal("same", diff.describe(nil, nil).kind)
    end)

    it("does not diff binary files, but does diff a text with a stray NUL", function()
      local d = diff.describe("\127ELF" .. string.rep("x", 1224), string.rep("y", 3482))
      assert.same({ kind = "binary", summary = "binary file, 1.2 KiB -> 3.4 KiB" }, d)
      assert.equal("new binary file, 8 B", diff.describe(nil, "a\0b\1c\2d\3").summary)
      local t = diff.describe("hello world\n", "hello\0world\n")
      assert.equal("text", t.kind)
      assert.matches("%+hello%zworld", t.text)
      for _, magic in ipairs({ "\127ELF", "\31\139", "PK\3\4", "\137PNG", "!<arch>\n" }) do
        assert.is_true(diff.is_binary(magic .. "rest of it"), magic)
      end
      assert.is_false(diff.is_binary("\0"))
      assert.is_false(diff.is_binary("text\0with\0two NULs and escapes \27[1m"))
      assert.is_true(diff.is_binary(string.rep("\0\1\2 x", 100)))
      assert.is_false(diff.is_binary(string.rep("x", 8192) .. string.rep("\0", 100)))
      assert.is_false(diff.is_binary("plain \255 text"))
    end)

    it("previews what cannot be diffed: hex ends of a binary, first and last lines of a text", function()
      local bin = "\127ELF" .. string.rep("\0\1", 1000)
      local kind, text = diff.preview(bin:sub(1, 4096), "", #bin)
      assert.equal("binary", kind)
      assert.matches("^00000000  7f 45 4c 46 00 01 00 01  00 01 00 01 00 01 00 01  |%.ELF" ..
        string.rep("%.", 12) .. "|\n", text)
      assert.matches("%.%.%. 1492 bytes not shown %.%.%.\n", text)
      assert.matches("\n000006d4  00 01 ", text)
      local numbers = {}
      for i = 1, 100000 do numbers[i] = tostring(i) end
      local big = table.concat(numbers, "\n") .. "\n"
      kind, text = diff.preview(big:sub(1, 4096), big:sub(-4096), #big)
      assert.equal("text", kind)
      assert.matches("^1\n2\n3\n", text)
      assert.matches("\n99999\n100000\n$", text)
      assert.matches("\n%.%.%. [%d.]+ KiB not shown %.%.%.\n", text)
    end)

    it("gives sizes only for huge inputs", function()
      local big = string.rep("line\n", 1000)
      local d = diff.describe(big, big .. "more\n", { max_bytes = 4000 })
      assert.same({ kind = "huge", summary = "file too large to diff, 4.9 KiB -> 4.9 KiB" }, d)
      d = diff.describe(string.rep("a\n", 600), string.rep("b\n", 600), { max_cost = 1000 })
      assert.same({ kind = "huge", summary = "file too large to diff, 1.2 KiB -> 1.2 KiB" }, d)
      assert.equal("new file too large to diff, 5.0 MiB",
        diff.describe(nil, string.rep("x", 5 * 1024 * 1024)).summary)
      assert.equal("text", diff.describe(string.rep("a\n", 600), string.rep("b\n", 600)).kind)
    end)
  end)
end)
