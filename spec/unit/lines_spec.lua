-- shannot.core.term's line reader (what the MCP server reads stdin with):
-- lines split across reads, a line over the limit dropped whole and
-- counted once, nothing after its cut returned, an unfinished last line
-- dropped at the end of the stream.
local fs = require("shannot.fs")
local term = require("shannot.core.term")
local h = require("support.h")

local MiB = 1024 * 1024

-- read_all(data, max) -> the lines, the lines dropped, the end's code
local function read_all(data, max)
  local path = h.write(h.tmpdir() .. "/stream", data)
  local f = assert(fs.open(path))
  local reader <close> = term.lines(f:fd(), max)
  local lines, dropped = {}, 0
  while true do
    local got, n, code = reader:read(1000)
    if not got then
      f:close()
      return lines, dropped, code
    end
    for _, l in ipairs(got) do lines[#lines + 1] = l end
    dropped = dropped + n
  end
end

describe("the line reader", function()
  after_each(h.cleanup)

  it("returns each line without its newline and drops an unfinished last one", function()
    local lines, dropped, code = read_all("a\nbb\n\nccc", 10)
    assert.same({ "a", "bb", "" }, lines)
    assert.equal(0, dropped)
    assert.equal("EIO", code)
  end)

  it("keeps a line of exactly the limit and drops a longer one whole", function()
    local lines, dropped = read_all("0123456789\n0123456789A\nok\n", 10)
    assert.same({ "0123456789", "ok" }, lines)
    assert.equal(1, dropped)
  end)

  it("joins a line across reads", function()
    local long = string.rep("z", MiB + MiB // 2)
    local lines = read_all(long .. "\nx\n", 2 * MiB)
    assert.equal(2, #lines)
    assert.equal(long, lines[1])
    assert.equal("x", lines[2])
  end)

  it("never returns what follows the cut of a line over the limit", function()
    local data = string.rep("y", 3 * MiB) .. '{"smuggled":1}\n' .. "after\n"
    local lines, dropped = read_all(data, 2 * MiB)
    assert.same({ "after" }, lines)
    assert.equal(1, dropped)
  end)

  it("refuses a nonsense limit and a read after close", function()
    assert.has_error(function() term.lines(0, 0) end)
    local r = term.lines(0, 10)
    r:close()
    r:close()  -- idempotent
    assert.has_error(function() r:read(0) end)
  end)
end)
