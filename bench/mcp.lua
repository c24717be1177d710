-- bench/mcp ROUNDS: how the MCP server reads long lines (issue 17.2),
-- against lua-cjson alone decoding the same line, measured in one run:
--   1. a 4 MiB and a 16 MiB tools/call request (a run_script whose script
--      is that long, with an argument of the wrong type so no sandbox
--      starts: the server reads, decodes, checks and answers), from the
--      first byte written to the answer read;
--   2. a ping sent right behind the 16 MiB request, from its last byte
--      written to the ping's answer: what a client waits for a ping
--      while the server reads a long request (once minutes);
--   3. a line over the 16 MiB limit followed by a ping: the refusal and
--      the ping's answer.
-- Targets: each of 1 and 2 within 2x the decode of the same line.
-- Medians of ROUNDS rounds against one server started once.
package.path = "bench/?.lua;" .. package.path
local shannot = require("shannot")
local fs, proc = shannot.fs, shannot.proc
local sys = require("shannot.core.sys")
local cjson = require("cjson").new()
local lib = require("lib")

local ROUNDS = math.tointeger(tonumber(arg[1])) or 5
local BIN = assert(fs.realpath(arg[2] or "build/shannot"))

local MiB = 1024 * 1024

-- a script of about `size` bytes: shell lines, quotes and newlines to
-- escape, as a long generated deployment script has
local function script_of(size)
  local line = 'printf "%s\\n" "setting $KEY=\\"value\\" in /etc/app.conf" >> /etc/app.conf\n'
  return string.rep(line, size // #line + 1):sub(1, size)
end

-- request(id, size) -> a tools/call line of at most `size` bytes (the
-- script's escapes make the line longer than the script)
local function request(id, size)
  local function line(n)
    return cjson.encode({ jsonrpc = "2.0", id = id, method = "tools/call",
      params = { name = "run_script", arguments = { script = script_of(n), interpreter = 5 } } })
  end
  local l = line(size)
  return line(math.floor(size * size / #l) - 1024)
end

local function decode_time(line)
  local xs = {}
  for _ = 1, ROUNDS do
    local t0 = sys.monotonic()
    cjson.decode(line)
    xs[#xs + 1] = sys.monotonic() - t0
  end
  return lib.median(xs)
end

local dir = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/shannot-bench-mcp-"))
local ok, problem = pcall(function()
  for _, f in ipairs({ "in", "out" }) do lib.run({ "mkfifo", dir .. "/" .. f }) end
  local env = { "HOME=" .. dir, "XDG_CONFIG_HOME=" .. dir .. "/config", "XDG_DATA_HOME=" .. dir .. "/data",
    "PATH=" .. os.getenv("PATH") }
  local server = assert(proc.spawn({ "sh", "-c", 'exec "$1" mcp <"$2/in" >"$2/out"', "sh", BIN, dir },
    { env = env, stdin = "null", stdout = "null", stderr = "null" }))
  local to = assert(io.open(dir .. "/in", "w"))
  local from = assert(io.open(dir .. "/out", "r"))
  to:setvbuf("no")
  local function send(line) assert(to:write(line, "\n")) end
  local function answer() return cjson.decode((assert(from:read("l"), "the server hung up"))) end
  send('{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",' ..
    '"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}')
  answer()
  local lines = { request(1, 4 * MiB), request(2, 16 * MiB - 4096) }
  local served = { {}, {} }
  local pings, refusals = {}, {}
  local overlong = string.rep(" ", 16 * MiB + 1) .. '{"jsonrpc":"2.0","id":66,"method":"ping"}\n'
  for _ = 1, ROUNDS do
    for i, line in ipairs(lines) do
      local t0 = sys.monotonic()
      send(line)
      local a = answer()
      served[i][#served[i] + 1] = sys.monotonic() - t0
      assert(a.result and a.result.isError, "expected the tool argument error: " .. cjson.encode(a):sub(1, 300))
    end
    -- a ping right behind the long request
    to:write(lines[2], "\n")
    local t0 = sys.monotonic()
    send('{"jsonrpc":"2.0","id":9,"method":"ping"}')
    answer()
    local a = answer()
    pings[#pings + 1] = sys.monotonic() - t0
    assert(a.id == 9, "the ping was not answered")
    -- over the limit: refused once, the ping after it answered
    t0 = sys.monotonic()
    to:write(overlong)
    send('{"jsonrpc":"2.0","id":10,"method":"ping"}')
    local refused, pong = answer(), answer()
    refusals[#refusals + 1] = sys.monotonic() - t0
    assert(refused.error and refused.error.code == -32700 and pong.id == 10, "the overlong line was not skipped")
  end
  to:close()
  server:communicate({})
  from:close()
  local d4, d16 = decode_time(lines[1]), decode_time(lines[2])
  local s4, s16, p, r = lib.median(served[1]), lib.median(served[2]), lib.median(pings), lib.median(refusals)
  print(string.format("MCP framing, medians of %d rounds", ROUNDS))
  print(string.format("%-56s %8.1f ms", "lua-cjson decode of the 4 MiB line", d4 * 1000))
  print(string.format("%-56s %8.1f ms  ratio %.2f (target <= 2)", "server: 4 MiB request, written to answered",
    s4 * 1000, s4 / d4))
  print(string.format("%-56s %8.1f ms", "lua-cjson decode of the 16 MiB line", d16 * 1000))
  print(string.format("%-56s %8.1f ms  ratio %.2f (target <= 2)", "server: 16 MiB request, written to answered",
    s16 * 1000, s16 / d16))
  print(string.format("%-56s %8.1f ms  ratio %.2f (target <= 2)", "a ping behind the 16 MiB request: answered after",
    p * 1000, p / d16))
  print(string.format("%-56s %8.1f ms", "a line over 16 MiB refused and a ping answered", r * 1000))
end)
fs.rmtree(dir)
assert(ok, problem)
