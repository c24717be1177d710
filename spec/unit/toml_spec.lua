local toml = require("shannot.toml")

local SUITE = os.getenv("SHANNOT_TOML_TEST_DIR") or "../shared/toml-test"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

---------------------------------------------------------------------------
-- A tiny JSON reader: cjson cannot tell [] from {}, and the expected files
-- need that distinction. Arrays get JSON_ARRAY as metatable.
---------------------------------------------------------------------------

local JSON_ARRAY = {}
local JSON_ESCAPES = {b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/"}

local function json_decode(text)
  local pos = 1
  local value

  local function err(msg)
    error(string.format("JSON error at byte %d: %s", pos, msg), 0)
  end

  local function ws()
    pos = select(2, text:find("^[ \t\r\n]*", pos)) + 1
  end

  local function str()
    pos = pos + 1
    local buf = {}
    while true do
      local s, e, chunk = text:find('^([^"\\]*)', pos)
      buf[#buf + 1] = chunk
      pos = e + 1
      local c = text:sub(pos, pos)
      if c == '"' then
        pos = pos + 1
        return table.concat(buf)
      elseif c == "\\" then
        local esc = text:sub(pos + 1, pos + 1)
        local simple = JSON_ESCAPES[esc]
        if simple then
          buf[#buf + 1] = simple
          pos = pos + 2
        elseif esc == "u" then
          local cp = tonumber(text:sub(pos + 2, pos + 5), 16) or err("bad \\u escape")
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local lo = tonumber(text:sub(pos + 2, pos + 5), 16) or err("bad \\u escape")
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            pos = pos + 6
          end
          buf[#buf + 1] = utf8.char(cp)
        else
          err("bad escape")
        end
      else
        err("unterminated string")
      end
      assert(s)
    end
  end

  local function container(close, item)
    pos = pos + 1
    ws()
    if text:sub(pos, pos) == close then
      pos = pos + 1
      return
    end
    while true do
      item()
      ws()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == close then return end
      if c ~= "," then err("expected ',' or '" .. close .. "'") end
    end
  end

  value = function()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj = {}
      container("}", function()
        ws()
        if text:sub(pos, pos) ~= '"' then err("expected key") end
        local k = str()
        ws()
        if text:sub(pos, pos) ~= ":" then err("expected ':'") end
        pos = pos + 1
        obj[k] = value()
      end)
      return obj
    elseif c == "[" then
      local arr = setmetatable({}, JSON_ARRAY)
      container("]", function() arr[#arr + 1] = value() end)
      return arr
    elseif c == '"' then
      return str()
    end
    for word, v in pairs({["true"] = true, ["false"] = false}) do
      if text:sub(pos, pos + #word - 1) == word then
        pos = pos + #word
        return v
      end
    end
    local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos) or err("unexpected " .. c)
    pos = pos + #num
    return tonumber(num)
  end

  local v = value()
  ws()
  if pos <= #text then err("trailing data") end
  return v
end

---------------------------------------------------------------------------
-- Comparison of tagged values with toml-test's expected JSON
---------------------------------------------------------------------------

local SPECIAL = {inf = math.huge, ["+inf"] = math.huge, ["-inf"] = -math.huge}

local function float_of(s)
  if s == "nan" or s == "+nan" or s == "-nan" then return 0 / 0 end
  return SPECIAL[s] or tonumber(s)
end

-- Same normalisation as toml-test: both sides are compared as instants.
local function norm_datetime(s)
  s = s:gsub("^(%d%d%d%d%-%d%d%-%d%d)[Tt ]", "%1T"):gsub("z$", "Z"):gsub("[%+%-]00:00$", "Z")
  return (s:gsub("%.(%d+)", function(frac)
    frac = frac:gsub("0+$", "")
    return frac == "" and "" or "." .. frac
  end))
end

local function scalar_equal(typ, want, got)
  if typ == "float" then
    local a, b = float_of(want), float_of(got)
    if a ~= a then return b ~= b end
    return a == b
  elseif typ == "integer" then
    return math.tointeger(tonumber(want)) == math.tointeger(tonumber(got))
  elseif typ == "datetime" or typ == "datetime-local" or typ == "date-local" or typ == "time-local" then
    return norm_datetime(want) == norm_datetime(got)
  end
  return want == got
end

local function is_scalar_tag(t)
  return getmetatable(t) ~= JSON_ARRAY and type(t.type) == "string" and type(t.value) == "string"
end

local compare

local function compare_keys(want, got, path)
  for k, v in pairs(want) do
    if got[k] == nil then return path .. "." .. k .. ": missing" end
    local e = compare(v, got[k], path .. "." .. k)
    if e then return e end
  end
  for k in pairs(got) do
    if want[k] == nil then return path .. "." .. tostring(k) .. ": unexpected key" end
  end
end

compare = function(want, got, path)
  if type(got) ~= "table" then return path .. ": expected a table, got " .. type(got) end
  if getmetatable(want) == JSON_ARRAY then
    if getmetatable(got) ~= toml.array_mt then return path .. ": expected an array" end
    if #want ~= #got then return string.format("%s: expected %d elements, got %d", path, #want, #got) end
    for i = 1, #want do
      local e = compare(want[i], got[i], path .. "[" .. i .. "]")
      if e then return e end
    end
    return nil
  end
  if getmetatable(got) == toml.array_mt then return path .. ": expected a table, got an array" end
  if is_scalar_tag(want) then
    if got.type ~= want.type or not scalar_equal(want.type, want.value, got.value) then
      return string.format("%s: expected %s %q, got %s %q", path, want.type, want.value,
        tostring(got.type), tostring(got.value))
    end
    return nil
  end
  return compare_keys(want, got, path)
end

---------------------------------------------------------------------------
-- Suite runner
---------------------------------------------------------------------------

local function list_files()
  local list = read_file(SUITE .. "/files-toml-1.0.0")
  if not list then return nil end
  local valid, invalid = {}, {}
  for line in list:gmatch("[^\r\n]+") do
    if line:match("^valid/.*%.toml$") then
      valid[#valid + 1] = line
    elseif line:match("^invalid/.*%.toml$") then
      invalid[#invalid + 1] = line
    end
  end
  return valid, invalid
end

local function check_valid(file)
  local src = read_file(SUITE .. "/" .. file)
  if not src then return "cannot read file" end
  local json = read_file(SUITE .. "/" .. file:gsub("%.toml$", ".json"))
  if not json then return "cannot read expected .json" end
  local ok, value, err = pcall(toml.parse, src, file)
  if not ok then return "parser raised: " .. tostring(value) end
  if value == nil then return "rejected: " .. tostring(err) end
  local jok, want = pcall(json_decode, json)
  if not jok then return "bad expected json: " .. want end
  return compare(want, toml.tagged(value), "$")
end

local function check_invalid(file)
  local src = read_file(SUITE .. "/" .. file)
  if not src then return "cannot read file" end
  local ok, value, err = pcall(toml.parse, src, file)
  if not ok then return "parser raised instead of returning an error: " .. tostring(value) end
  if value ~= nil then return "accepted" end
  if getmetatable(err) == nil or not tostring(err):find(file, 1, true) then
    return "error has no file:line:col prefix: " .. tostring(err)
  end
  return nil
end

local suite_result

local function run_suite()
  if suite_result then return suite_result end
  local valid, invalid = list_files()
  local r = {valid_total = #valid, invalid_total = #invalid, valid_fail = {}, invalid_fail = {}}
  for _, file in ipairs(valid) do
    local e = check_valid(file)
    if e then r.valid_fail[#r.valid_fail + 1] = file .. ": " .. e end
  end
  for _, file in ipairs(invalid) do
    local e = check_invalid(file)
    if e then r.invalid_fail[#r.invalid_fail + 1] = file .. ": " .. e end
  end
  io.stderr:write(string.format("toml-test: %d/%d valid, %d/%d invalid\n",
    r.valid_total - #r.valid_fail, r.valid_total, r.invalid_total - #r.invalid_fail, r.invalid_total))
  suite_result = r
  return r
end

describe("toml-test conformance (TOML 1.0.0)", function()
  if not read_file(SUITE .. "/files-toml-1.0.0") then
    if os.getenv("CI") == "true" then
      it("finds the suite", function()
        error("toml-test suite not found at " .. SUITE .. " (set SHANNOT_TOML_TEST_DIR)")
      end)
    else
      pending("toml-test suite not found at " .. SUITE .. " (set SHANNOT_TOML_TEST_DIR)")
    end
    return
  end

  it("decodes every valid file to the expected value", function()
    local r = run_suite()
    assert.is_true(r.valid_total > 0, "no valid files listed")
    if #r.valid_fail > 0 then
      error(#r.valid_fail .. " valid file(s) failed:\n  " .. table.concat(r.valid_fail, "\n  "), 0)
    end
  end)

  it("rejects every invalid file", function()
    local r = run_suite()
    assert.is_true(r.invalid_total > 0, "no invalid files listed")
    if #r.invalid_fail > 0 then
      error(#r.invalid_fail .. " invalid file(s) not rejected:\n  " .. table.concat(r.invalid_fail, "\n  "), 0)
    end
  end)
end)

---------------------------------------------------------------------------
-- Unit specs
---------------------------------------------------------------------------

local function parse_error(text, file)
  local v, err = toml.parse(text, file or "config.toml")
  assert.is_nil(v)
  assert.is_table(err)
  return err
end

local function assert_error_at(text, line, col, msg)
  local err = parse_error(text)
  assert.are.equal(line, err.line)
  assert.are.equal(col, err.col)
  if msg then assert.are.equal(msg, err.msg) end
  assert.are.equal(string.format("config.toml:%d:%d: %s", line, col, err.msg), tostring(err))
  return err
end

describe("toml.parse errors", function()
  it("report file:line:col of a duplicate key", function()
    local err = assert_error_at('[server]\nhost = "x"\nport = 1\n  port = 2\n', 4, 3, 'duplicate key "port"')
    assert.are.equal('config.toml:4:3: duplicate key "port"', tostring(err))
    assert.are.equal("config.toml", err.file)
  end)

  it("point at the offending character", function()
    assert_error_at('s = "abc\n', 1, 9, "unterminated string: end of line before the closing quote")
    assert_error_at("a = 1\nb = 2 3\n", 2, 7, "expected end of line after value, found '3'")
    assert_error_at("a = [1,,2]\n", 1, 8, "expected a value, found ','")
    assert_error_at("[a]\nx = 1\n[a]\n", 3, 2)
    assert_error_at("t = {a = 1,}\n", 1, 12, "trailing comma is not allowed in an inline table")
  end)

  it("count columns in characters, not bytes", function()
    assert_error_at('k = "é" x\n', 1, 9, "expected end of line after value, found 'x'")
  end)

  it("reject invalid UTF-8 and control characters", function()
    assert_error_at('a = "\255"\n', 1, 6, "invalid UTF-8 byte sequence")
    assert_error_at("a = 1 # \1\n", 1, 9)
    assert_error_at('a = "x\127"\n', 1, 7)
    assert_error_at("a = 1\r\n b = 2\r", 2, 7, "carriage return must be followed by a line feed")
  end)

  it("work without a file name", function()
    local _, err = toml.parse("= 1")
    assert.are.equal("<toml>:1:1: expected a key, found '='", tostring(err))
  end)

  it("raise only on misuse", function()
    assert.has_error(function() toml.parse(nil) end)
    assert.has_error(function() toml.parse({}) end)
  end)
end)

describe("toml.parse semantics", function()
  it("rejects duplicate keys, including dotted and inline ones", function()
    parse_error("a = 1\na = 2\n")
    parse_error("a.b = 1\na.b = 2\n")
    parse_error("a = {b = 1, b = 2}\n")
    parse_error('"a" = 1\na = 2\n')
  end)

  it("rejects redefined tables", function()
    parse_error("[a]\n[a]\n")
    parse_error("[a.b]\n[a]\n[a]\n")
    parse_error("[a]\nb.c = 1\n[a.b]\n")
    parse_error("a = {}\n[a]\n")
    parse_error("[[a]]\n[a]\n")
    parse_error("[a]\n[[a]]\n")
    local err = parse_error("[a]\nx = 1\n\n[a]\n")
    assert.are.equal("table [a] is defined twice (first at line 1)", err.msg)
    assert.are.equal(4, err.line)
    assert.are.equal(2, err.col)
  end)

  it("allows implicit tables to be defined later", function()
    local v = assert(toml.parse("[a.b.c]\nx = 1\n[a]\ny = 2\n"))
    assert.are.equal(1, v.a.b.c.x)
    assert.are.equal(2, v.a.y)
  end)

  it("checks the 64-bit integer range", function()
    local v = assert(toml.parse("max = 9223372036854775807\nmin = -9223372036854775808\nh = 0x7FFFFFFFFFFFFFFF\n"))
    assert.are.equal(math.maxinteger, v.max)
    assert.are.equal(math.mininteger, v.min)
    assert.are.equal(math.maxinteger, v.h)
    assert.are.equal("integer", math.type(v.min))
    assert.matches("does not fit in 64 bits", parse_error("x = 9223372036854775808\n").msg)
    parse_error("x = -9223372036854775809\n")
    parse_error("x = 0x8000000000000000\n")
    parse_error("x = 0o1000000000000000000000\n")
    parse_error("x = 0b" .. ("1"):rep(64) .. "\n")
  end)

  it("represents values as documented", function()
    local v = assert(toml.parse([[
a = []
t = {}
f = 1.5
i = 3
n = nan
m = -inf
s = 'x'
b = true
odt = 1979-05-27T07:32:00.5-07:30
ld = 2024-02-29
lt = 07:32:00
]]))
    assert.are.equal(toml.array_mt, getmetatable(v.a))
    assert.is_nil(getmetatable(v.t))
    assert.are.equal("float", math.type(v.f))
    assert.are.equal("integer", math.type(v.i))
    assert.is_true(v.n ~= v.n)
    assert.are.equal(-math.huge, v.m)
    assert.are.equal(toml.datetime_mt, getmetatable(v.odt))
    assert.are.same({kind = "offset-datetime", text = "1979-05-27T07:32:00.500-07:30", year = 1979, month = 5,
      day = 27, hour = 7, min = 32, sec = 0, frac = "5", offset = -450}, setmetatable(v.odt, nil))
    assert.are.same({kind = "local-date", text = "2024-02-29", year = 2024, month = 2, day = 29},
      setmetatable(v.ld, nil))
    assert.are.same({kind = "local-time", text = "07:32:00", hour = 7, min = 32, sec = 0}, setmetatable(v.lt, nil))
  end)

  it("validates dates and times", function()
    parse_error("d = 2023-02-29\n")
    parse_error("d = 1900-02-29\n")
    parse_error("d = 2023-13-01\n")
    parse_error("d = 2023-04-31\n")
    parse_error("t = 24:00:00\n")
    parse_error("t = 12:60:00\n")
    parse_error("t = 12:00:61\n")
    assert(toml.parse("d = 2000-02-29\nt = 23:59:60\n"))
  end)

  it("converts to the tagged form", function()
    local v = assert(toml.parse("a = [1, 'x', 1.0, false, 2001-02-03]\nb = {}\n"))
    local t = toml.tagged(v)
    assert.are.equal(toml.array_mt, getmetatable(t.a))
    assert.are.same({type = "integer", value = "1"}, t.a[1])
    assert.are.same({type = "string", value = "x"}, t.a[2])
    assert.are.same({type = "float", value = "1"}, t.a[3])
    assert.are.same({type = "bool", value = "false"}, t.a[4])
    assert.are.same({type = "date-local", value = "2001-02-03"}, t.a[5])
    assert.are.same({}, t.b)
  end)

  it("parses a 100 KB config quickly", function()
    local parts = {}
    for i = 1, 1200 do
      parts[#parts + 1] = string.format('[remotes.r%d]\n# remote %d\nurl = "ssh://host%d.example/path"\n'
        .. 'port = %d\ntags = ["a", "b", \'c\']\nenabled = true\n\n', i, i, i, i)
    end
    local text = table.concat(parts)
    assert.is_true(#text > 100000)
    local t0 = os.clock()
    local v = assert(toml.parse(text))
    local elapsed = os.clock() - t0
    assert.are.equal(1200, v.remotes.r1200.port)
    -- generous bound to stay stable on slow CI machines
    assert.is_true(elapsed < 0.5, "parsing took " .. elapsed .. "s")
  end)
end)

describe("toml editor", function()
  local CONFIG = table.concat({
    "# shannot configuration",
    "",
    "[core]",
    "editor = \"vi\"  # keep",
    "",
    "# production",
    "[remotes.prod]",
    "url = \"ssh://prod\"",
    "# old port",
    "port = 22",
    "",
    "# staging box",
    "[remotes.staging]",
    "url = \"ssh://staging\"",
    "",
  }, "\n")

  it("replaces an existing table and keeps everything else", function()
    local out = assert(toml.set_table(CONFIG, {"remotes", "prod"}, {{"url", "ssh://new"}, {"port", 2222}}))
    assert.are.equal(CONFIG:gsub('url = "ssh://prod"\n# old port\nport = 22',
      'url = "ssh://new"\nport = 2222'), out)
    local v = assert(toml.parse(out))
    assert.are.equal("ssh://new", v.remotes.prod.url)
    assert.are.equal(2222, v.remotes.prod.port)
  end)

  it("appends a new table", function()
    local out = assert(toml.set_table(CONFIG, {"remotes", "dev box"},
      {{"url", 'ssh://dev "quoted"\n'}, {"tags", {"a", "b\\c"}}, {"on", false}, {"key.with.dots", 1}}))
    assert.are.equal(CONFIG .. '\n[remotes."dev box"]\nurl = "ssh://dev \\"quoted\\"\\n"\n'
      .. 'tags = ["a", "b\\\\c"]\non = false\n"key.with.dots" = 1\n', out)
    local v = assert(toml.parse(out))
    local t = v.remotes["dev box"]
    assert.are.equal('ssh://dev "quoted"\n', t.url)
    assert.are.same({"a", "b\\c"}, t.tags)
    assert.are.equal(false, t.on)
    assert.are.equal(1, t["key.with.dots"])
  end)

  it("removes a table, keeping the comment of the next one", function()
    local out = assert(toml.remove_table(CONFIG, {"remotes", "prod"}))
    assert.are.equal(CONFIG:gsub('%[remotes%.prod%]\nurl = "ssh://prod"\n# old port\nport = 22\n\n', ""), out)
    local v = assert(toml.parse(out))
    assert.is_nil(v.remotes.prod)
    assert.are.equal("ssh://staging", v.remotes.staging.url)
  end)

  it("removes the last table", function()
    local out = assert(toml.remove_table(CONFIG, {"remotes", "staging"}))
    assert.are.equal(CONFIG:gsub('%[remotes%.staging%]\nurl = "ssh://staging"\n', ""), out)
  end)

  it("keeps CRLF line endings", function()
    local crlf = CONFIG:gsub("\n", "\r\n")
    local out = assert(toml.set_table(crlf, {"remotes", "prod"}, {{"url", "x"}}))
    assert.are.equal(crlf:gsub('url = "ssh://prod"\r\n# old port\r\nport = 22', 'url = "x"'), out)
    out = assert(toml.set_table(crlf, {"remotes", "new"}, {{"url", "y"}}))
    assert.are.equal(crlf .. '\r\n[remotes.new]\r\nurl = "y"\r\n', out)
    out = assert(toml.remove_table(crlf, {"core"}))
    assert.are.equal(crlf:gsub('%[core%]\r\neditor = "vi"  # keep\r\n\r\n', ""), out)
  end)

  it("handles a file without a trailing newline", function()
    local text = "# c\n[a]\nx = 1"
    assert.are.equal("# c\n[a]\ny = 2", assert(toml.set_table(text, {"a"}, {{"y", 2}})))
    assert.are.equal("# c\n[a]\nx = 1\n\n[b]\nz = true\n", assert(toml.set_table(text, {"b"}, {{"z", true}})))
    assert.are.equal("# c\n", assert(toml.remove_table(text, {"a"})))
  end)

  it("appends to an empty file and defines an implicit table", function()
    assert.are.equal("[a]\nx = 1\n", assert(toml.set_table("", {"a"}, {{"x", 1}})))
    local text = "[a.b]\nx = 1\n"
    local out = assert(toml.set_table(text, {"a"}, {{"y", 2}}))
    assert.are.equal(text .. "\n[a]\ny = 2\n", out)
  end)

  it("refuses to edit text that does not parse", function()
    local out, err = toml.set_table("a = \n", {"a"}, {}, "config.toml")
    assert.is_nil(out)
    assert.are.equal("config.toml:1:5: expected a value, found end of line", tostring(err))
    out, err = toml.remove_table("[a\n", {"a"})
    assert.is_nil(out)
    assert.is_table(err)
  end)

  it("refuses tables defined inline or by dotted keys", function()
    local out, err = toml.set_table("remotes = {prod = {url = 'x'}}\n", {"remotes", "prod"}, {{"url", "y"}})
    assert.is_nil(out)
    assert.matches("inline table", err.msg)
    out, err = toml.remove_table("[remotes]\nprod.url = 'x'\n", {"remotes", "prod"}, "c.toml")
    assert.is_nil(out)
    assert.matches("dotted keys", err.msg)
    assert.are.equal(2, err.line)
    out, err = toml.set_table("[[remotes]]\nurl = 'x'\n", {"remotes", "prod"}, {})
    assert.is_nil(out)
    assert.matches("array of tables", err.msg)
  end)

  it("reports a missing table on remove", function()
    local out, err = toml.remove_table("[a]\n", {"b"})
    assert.is_nil(out)
    assert.matches("no table %[b%]", tostring(err))
  end)

  it("refuses an edit that would produce invalid TOML", function()
    local out, err = toml.set_table("[a]\nx = 1\n", {"a"}, {{"x", 1}, {"x", 2}})
    assert.is_nil(out)
    assert.matches("invalid TOML", err.msg)
  end)

  it("update_table sets keys in place, keeping the table's other keys and comments", function()
    local args = setmetatable({"a", "b"}, toml.array_mt)
    local out = assert(toml.update_table(CONFIG, {"remotes", "prod"}, {{"port", 2222}, {"args", args}}))
    assert.are.equal((CONFIG:gsub("port = 22\n", 'port = 2222\nargs = ["a", "b"]\n')), out)
    local text = "[a]  # h\nx = [\n  1, # one\n  2\n]  # end\ny = 'k'"
    assert.are.equal("[a]  # h\nx = [3]  # end\ny = 'k'\nz = true",
      assert(toml.update_table(text, {"a"}, {{"x", {3}}, {"z", true}})))
    assert.are.equal(text, assert(toml.update_table(text, {"a"}, {})))
  end)

  it("update_table adds a table that has no header, and refuses what it cannot edit", function()
    assert.are.equal("[a.b]\nx = 1\n\n[a]\ny = 2\n", assert(toml.update_table("[a.b]\nx = 1\n", {"a"}, {{"y", 2}})))
    local out, err = toml.update_table("a = {x = 1}\n", {"a"}, {{"y", 2}}, "f.toml")
    assert.is_nil(out)
    assert.are.equal("f.toml:1:1: cannot edit table [a]: a is an inline table; edit the file by hand", tostring(err))
    out, err = toml.update_table("[a]\nx.y = 1\n", {"a"}, {{"x", 2}}, "f.toml")
    assert.is_nil(out)
    assert.matches("invalid TOML", err.msg)
  end)
end)
