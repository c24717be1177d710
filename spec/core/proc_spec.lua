-- shannot.core.proc through its Lua wrapper: spawning, bounded capture,
-- input, timeouts that kill the whole process group, fd hygiene.
local core = require("shannot.core.proc")
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")

local function alive_with(marker)
  local found = {}
  for _, pid in ipairs(fs.readdir("/proc")) do
    if pid:match("^%d+$") then
      local cmd = fs.read_file("/proc/" .. pid .. "/cmdline")
      if cmd and cmd:find(marker, 1, true) then found[#found + 1] = pid end
    end
  end
  return found
end

describe("proc", function()
  it("runs a command and reports its exit code and output", function()
    local r = assert(proc.run({ "sh", "-c", "echo out; echo err >&2; exit 7" }))
    assert.equal(7, r.code)
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
    assert.is_false(r.stdout_truncated)
    assert.is_false(r.timed_out)
  end)

  it("join_cgroups: a child writes itself into each file, then exits; this process goes on", function()
    local r1, w1 = assert(fs.pipe())
    local r2, w2 = assert(fs.pipe())
    local child = assert(core.join_cgroups({ w1:fd(), w2:fd() }))
    w1:close(); w2:close()
    assert.equal("0", r1:read_all())
    assert.equal("0", r2:read_all())
    local function ended(p)  -- its end, polled for up to 5 s
      for _ = 1, 500 do
        local e = p:poll()
        if e then return e end
        require("shannot.core.sys").sleep(0.01)
      end
    end
    assert.same(0, (ended(child) or {}).code)
    -- a write that fails: exit 1, the files after it untouched
    local r3, w3 = assert(fs.pipe())
    local bad = assert(core.join_cgroups({ r3:fd(), w3:fd() }))  -- the read end refuses a write
    w3:close()
    assert.same(1, (ended(bad) or {}).code)
    assert.equal("", r3:read_all())
    r1:close(); r2:close(); r3:close(); child:close(); bad:close()
    assert.has_error(function() core.join_cgroups("x") end)
  end)

  it("reports a signal", function()
    local r = assert(proc.run({ "sh", "-c", "kill -9 $$" }))
    assert.is_nil(r.code)
    assert.equal(9, r.signal)
    assert.equal("KILL", r.signal_name)
  end)

  it("returns nil, msg, code for a missing program", function()
    local p, msg, code = core.spawn({ "/nonexistent/program" })
    assert.is_nil(p)
    assert.matches("/nonexistent/program", msg)
    assert.equal("ENOENT", code)
  end)

  it("returns nil, msg, code for a bad working directory", function()
    local p, msg, code = core.spawn({ "true" }, { cwd = "/nonexistent-dir" })
    assert.is_nil(p)
    assert.truthy(msg)
    assert.equal("ENOENT", code)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.spawn({}) end)
    assert.has_error(function() core.spawn({ "true" }, { stdout = "sideways" }) end)
    assert.has_error(function() core.spawn({ 1 }) end)
  end)

  it("feeds input to a piped stdin", function()
    local data = string.rep("abcdefgh", 100000)
    local r = assert(proc.run({ "wc", "-c" }, { input = data }))
    assert.equal(tostring(#data), r.stdout:match("%d+"))
  end)

  it("keeps the head and the tail within the bound and says what it dropped", function()
    local r = assert(proc.run({ "sh", "-c", "seq 1 200000" }, { max_capture = 1000 }))
    assert.equal(1000, #r.stdout)
    assert.is_true(r.stdout_truncated)
    assert.equal(500, r.stdout_dropped_at)
    assert.equal("1\n2\n3\n", r.stdout:sub(1, 6))
    assert.equal("199999\n200000\n", r.stdout:sub(-14))
    assert.equal(r.stdout_bytes - 1000, r.stdout_dropped)
  end)

  it("keeps everything when it fits, across many reads", function()
    local r = assert(proc.run({ "sh", "-c", "seq 1 100000" }, { max_capture = 10 * 1024 * 1024 }))
    assert.is_false(r.stdout_truncated)
    assert.equal(r.stdout_bytes, #r.stdout)
    assert.equal("100000\n", r.stdout:sub(-7))
  end)

  it("kills the whole process group at the timeout, SIGTERM ignored", function()
    local marker = "sleep 3" .. math.random(1000, 9999) .. ".5"
    local r = assert(proc.run({ "sh", "-c",
      "trap '' TERM; (trap '' TERM; " .. marker .. ") & " .. marker .. " & " .. marker .. "; wait" },
      { timeout = 0.5, kill_grace = 0.5 }))
    assert.is_true(r.timed_out)
    assert.is_true(r.duration < 30)
    assert.same({}, alive_with(marker))
  end)

  it("passes no fd but 0, 1, 2 and the ones asked for", function()
    local r1, w1 = fs.pipe()
    local leaked <close> = assert(fs.open("/etc/hostname"))
    local r = assert(proc.run({ "sh", "-c", "ls /proc/self/fd" }, { keep_fds = { w1:fd() } }))
    local fds = {}
    for fd in r.stdout:gmatch("%d+") do fds[#fds + 1] = tonumber(fd) end
    table.sort(fds)
    -- 0,1,2, the kept pipe and the fd ls opens to list the directory
    assert.equal(5, #fds)
    assert.is_truthy(r.stdout:find("\n" .. w1:fd() .. "\n", 1, true) or r.stdout:find("^" .. w1:fd() .. "\n"))
    assert.is_falsy(r.stdout:find("\n" .. leaked:fd() .. "\n", 1, true))
    r1:close()
    w1:close()
  end)

  it("kills and reaps a running child when the handle is closed", function()
    local marker = "sleep 4" .. math.random(1000, 9999) .. ".5"
    do
      local p <close> = assert(core.spawn({ "sh", "-c", marker }))
      assert.is_number(p:pid())
    end
    assert.same({}, alive_with(marker))
  end)

  it("tees output to an fd while capturing it", function()
    local r1, w1 = fs.pipe()
    local r = assert(proc.run({ "echo", "hello" }, { tee_stdout = w1:fd() }))
    w1:close()
    assert.equal("hello\n", r.stdout)
    assert.equal("hello\n", r1:read_all())
    r1:close()
  end)

  it("kill() reports a finished process", function()
    local p <close> = assert(core.spawn({ "true" }))
    p:communicate()
    local ok, _, code = p:kill("TERM")
    assert.is_nil(ok)
    assert.equal("ESRCH", code)
  end)

  it("calls wake's function once, when its fd first becomes readable", function()
    local r1, w1 = fs.pipe()
    local calls = 0
    -- the child writes to the pipe twice; the function runs once, while
    -- the child is still running (it waits for the file the function makes)
    local flag = os.tmpname()
    os.remove(flag)
    local to = " > /dev/fd/" .. w1:fd()
    local p <close> = assert(core.spawn({ "sh", "-c", "echo a" .. to .. "; echo b" .. to ..
      "; i=0; while [ ! -e " .. flag .. " ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; test -e " .. flag },
      { keep_fds = { w1:fd() } }))
    w1:close()
    local r = assert(p:communicate({ wake = { fd = r1:fd(), fn = function()
      calls = calls + 1
      assert(io.open(flag, "w")):close()
      return true
    end } }))
    os.remove(flag)
    r1:close()
    assert.equal(1, calls)
    assert.equal(0, r.code)
    assert.is_nil(r.wake_error)
  end)

  it("never calls wake's function for an fd that stays quiet", function()
    local r1, w1 = fs.pipe()
    local called = false
    local p <close> = assert(core.spawn({ "true" }))
    local r = assert(p:communicate({ wake = { fd = r1:fd(), fn = function() called = true; return true end } }))
    r1:close(); w1:close()
    assert.is_false(called)
    assert.equal(0, r.code)
  end)

  it("ends the run when wake's function fails, and says why", function()
    for _, fn in ipairs({ function() return nil, "no server" end, function() error("no server", 0) end }) do
      local r1, w1 = fs.pipe()
      local p <close> = assert(core.spawn({ "sh", "-c", "echo x > /dev/fd/" .. w1:fd() .. "; exec sleep 30" },
        { keep_fds = { w1:fd() } }))
      w1:close()
      local r = assert(p:communicate({ wake = { fd = r1:fd(), fn = fn }, kill_grace = 0.2 }))
      r1:close()
      assert.equal("no server", r.wake_error)
      assert.equal("TERM", r.signal_name)
      assert.is_true(r.duration < 10)
    end
  end)

  it("refuses a wake without fd or function", function()
    local p <close> = assert(core.spawn({ "true" }))
    assert.has_error(function() p:communicate({ wake = { fn = function() return true end } }) end)
    assert.has_error(function() p:communicate({ wake = { fd = 0 } }) end)
    p:communicate()
  end)

  it("refuses input without a piped stdin", function()
    local p <close> = assert(core.spawn({ "true" }, { stdin = "null" }))
    assert.has_error(function() p:communicate({ input = "x" }) end)
  end)
end)

describe("proc memory", function()
  it("captures 1 GiB of output with a bounded buffer", function()
    local r = assert(h.shannot({ "lua", "-" }, {
      input = [[
        local proc = require("shannot.proc")
        local r = assert(proc.run({"sh", "-c", "yes | head -c 1073741824"}))
        io.write(r.stdout_bytes, " ", #r.stdout, "\n")
      ]], peak_rss = true,
    }))
    assert.equal(0, r.code, r.stderr)
    local total, kept = r.stdout:match("(%d+) (%d+)")
    assert.equal(1073741824, tonumber(total))
    assert.equal(proc.DEFAULT_MAX_OUTPUT, tonumber(kept))
    -- ASan's shadow memory and quarantine alone take ~30 MiB
    local limit = os.getenv("ASAN_OPTIONS") and 64 * 1024 or 32 * 1024
    local kb = h.peak_rss_kb(r)
    assert.is_true(kb < limit, "peak RSS " .. kb .. " KiB")
  end)
end)
