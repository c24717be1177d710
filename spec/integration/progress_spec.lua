-- The progress line (issue 18.5) through the real binary: an execute of
-- 1 GiB of writes, in a tmux pane, shows a line that moves (operations
-- done/total, bytes, a rate) and leaves nothing of it behind the final
-- summary; with stderr not a terminal, and with --json, nothing is drawn.
-- Also the line itself (shannot.progress): its delay, throttle, width and
-- inert paths.
local progress = require("shannot.progress")
local h = require("support.h")
local cap = require("support.cap")
local tmux_mod = require("support.tmux")

-- 256 files of 4 MiB (one random 4 MiB, copied: the session stores one
-- blob, execute writes 1 GiB)
local FILES, MIB_EACH = 256, 4
local WRITE = string.format("head -c %dM /dev/urandom > /tmp/seed && for i in $(seq %d); do " ..
  'cp /tmp/seed "f$i" || exit 1; done', MIB_EACH, FILES)

local function approved(e)
  local _, doc, s = e:run(WRITE, { timeout = 300 })
  assert(s, "nothing captured: " .. tostring(doc.stderr))
  assert.equal(FILES, #s.operations)
  local r = h.shannot({ "approve", s.id, "--yes" }, { home = e.home })
  assert.equal(0, r.code, r.stderr)
  return s
end

local function rollback(e, s)
  local r = h.shannot({ "rollback", s.id, "--json" }, { home = e.home, timeout = 300 })
  assert.equal(0, r.code, r.stderr)
end

-- the progress line's numbers on a screen: "applying: N/T ops, ..."
local function line_of(screen)
  return screen:match("applying: %d+/%d+ ops[^\n]*")
end

describe("the progress line", function()
  local t
  after_each(function()
    if t then t:kill() end
    t = nil
    h.cleanup()
    cap.cleanup()
  end)

  it("moves during a long execute on a terminal and leaves a clean summary; " ..
    "nothing without a terminal or with --json", function()
    if not tmux_mod.available() then return end
    local e = cap.env()
    -- three sessions of the same writes, each executed on the host as it
    -- was (the one before rolled back); the second captured with stderr
    -- a pipe and without --json: no progress there either
    local s1 = approved(e)
    local r = h.shannot({ "run", "--profile", e.profile, "-c", "H=" .. e.host .. '; cd "$H" && ' .. WRITE },
      { home = e.home, timeout = 300 })
    assert.equal(0, r.code, r.stderr)
    assert.falsy(r.stderr:find("\r", 1, true), r.stderr)
    assert.falsy(r.stderr:find("capturing", 1, true), r.stderr)
    local id2 = r.stderr:match("session (%d+%-%d+%-[%w-]+%-%x%x%x%x)")
    assert(id2, r.stderr)
    r = h.shannot({ "approve", id2, "--yes" }, { home = e.home })
    assert.equal(0, r.code, r.stderr)
    local s3 = approved(e)

    -- drawn from 0.2 s on (not 1 s): a fast disk writes 1 GiB in two
    t = tmux_mod.start(e.home, { "execute", s1.id }, { name = "progress", trim = true,
      env = { SHANNOT_TEST_PROGRESS_DELAY = "0.2" } })
    local first = line_of(t:wait(line_of, "a progress line"))
    tmux_mod.sleep(0.2)
    local second = line_of(t:wait(function(screen)
      local l = line_of(screen)
      return l and l ~= first
    end, "the progress line to move"))
    for _, l in ipairs({ first, second }) do
      assert.truthy(l:match("^applying: %d+/" .. FILES .. " ops, [%d.]+ [KMG]i?B/1%.0 GiB, [%d.]+ [KMG]i?B/s, ETA "), l)
      assert.truthy(#l < 80, l)
    end
    local final = t:wait("shannot-exit=", "the end of execute")
    assert.truthy(final:find("shannot-exit=0", 1, true), final)
    assert.truthy(final:find("session " .. s1.id .. " executed", 1, true), final)
    assert.falsy(final:find("applying:", 1, true), final)
    assert.falsy(final:find("/s, ETA", 1, true), final)
    -- the line just above the summary is the last operation's, whole
    -- (joined: a deep checkout's paths wrap in the 80-column pane)
    local joined = t:run({ "capture-pane", "-p", "-J", "-t", "main" }):gsub(" +\n", "\n")
    local before = joined:match("([^\n]*)\nsession " .. s1.id:gsub("%-", "%%-"))
    assert.truthy(before:match("^ *%d+  write +%S+/f%d+  ok$"), before)
    t:kill()
    t = nil
    if os.getenv("SHANNOT_SPEC_SHOW") then print("\n" .. first .. "\n" .. second .. "\n" .. final) end
    rollback(e, s1)

    -- stderr a pipe: no \r, no progress text
    r = h.shannot({ "execute", id2 }, { home = e.home, timeout = 300, env = { SHANNOT_TEST_PROGRESS_DELAY = "0" } })
    assert.equal(0, r.code, r.stderr)
    assert.falsy(r.stderr:find("\r", 1, true), r.stderr)
    assert.falsy(r.stderr:find("applying", 1, true), r.stderr)
    r = h.shannot({ "rollback", id2 }, { home = e.home, timeout = 300 })
    assert.equal(0, r.code, r.stderr)
    assert.falsy(r.stderr:find("\r", 1, true), r.stderr)

    -- --json on a terminal: the document and nothing drawn
    t = tmux_mod.start(e.home, { "execute", s3.id, "--json" }, { name = "progress", trim = true,
      env = { SHANNOT_TEST_PROGRESS_DELAY = "0.2" } })
    local seen = {}
    local screen3 = t:wait(function(sc)
      seen[#seen + 1] = sc
      return sc:find("shannot-exit=", 1, true) ~= nil
    end, "the end of execute --json")
    assert.truthy(screen3:find("shannot-exit=0", 1, true), screen3)
    for _, sc in ipairs(seen) do assert.falsy(sc:find("applying:", 1, true), sc) end
    t:kill()
    t = nil
    rollback(e, s3)
  end)
end)

describe("shannot.progress", function()
  local function fake(opts)
    local clock, out = 0, {}
    local p = progress.new({ write = function(s) out[#out + 1] = s end, width = function() return opts.width end,
      now = function() return clock end })
    return p, out, function(dt) clock = clock + dt end
  end

  it("draws nothing within the first second, then at most ten times a second, and clears at the end", function()
    local p, out, tick = fake({ width = 80 })
    p:start("applying", 100, 100 * 1024 * 1024)
    for _ = 1, 3 do
      tick(0.25)
      p:add(1, 1024 * 1024, "/etc/a")
    end
    assert.same({}, out)
    for _ = 1, 20 do  -- 1/16 s apart: exact, and a draw every other one
      tick(0.0625)
      p:add(1, 1024 * 1024, "/etc/a")
    end
    assert.equal(9, #out)
    assert.truthy(out[1]:match("^\rapplying: 7/100 ops, 7%.0 MiB/100%.0 MiB, 7%.0 MiB/s, ETA 13s  /etc/a\27%[K$"),
      out[1])
    p:finish()
    assert.equal("\r\27[K", out[#out])
    p:finish()
    assert.equal(10, #out)
  end)

  it("fits the terminal and makes a path inert, cut in the middle", function()
    local p, out, tick = fake({ width = 60 })
    p:start("capturing", nil, nil, "entries")
    tick(2)
    p:add(3, 0, "/etc/\27]0;pwned\7" .. string.rep("é", 80) .. "/end")
    local line = out[1]:match("^\r(.*)\27%[K$")
    assert.truthy(utf8.len(line) <= 59, line)
    assert.truthy(line:find("capturing: 3 entries  /etc/\\x1b]0;pwned", 1, true), line)
    assert.truthy(line:find("...", 1, true) and line:sub(-4) == "/end", line)
    assert.falsy(line:find("\27", 1, true))
    assert.truthy(utf8.len(line))
  end)

  it("shows a file under way until it is counted, and a stream by its bytes", function()
    local p, out, tick = fake({ width = 100 })
    p:start("applying", 2, 2048)
    tick(5)
    p:partial(512, "/big")
    assert.matches("applying: 0/2 ops, 512 B/2.0 KiB", out[#out], 1, true)
    tick(1)
    p:add(1, 1024, "/big")
    assert.matches("applying: 1/2 ops, 1.0 KiB/2.0 KiB", out[#out], 1, true)
    p:finish()
    p:start("receiving", nil, nil, "bytes")
    tick(1)
    p:add(0, 3 * 1024 * 1024)
    assert.matches("^\rreceiving: 3.0 MiB, 3.0 MiB/s", out[#out])
  end)

  it("holds after output that ended mid-line, and none does nothing", function()
    local p, out, tick = fake({ width = 80 })
    p:after_output({ "done\n", "half a line" })
    p:start("capturing")
    tick(5)
    p:add(1, 0)
    assert.same({}, out)
    for _, m in ipairs({ "start", "add", "partial", "finish", "clear", "hold", "after_output" }) do
      assert.is_nil(progress.none[m](progress.none))
    end
    do local _ <close> = progress.none end
    assert.equal("1.0 GiB", progress.size(1024 ^ 3))
    assert.equal("1m05s", progress.duration(65))
  end)
end)
