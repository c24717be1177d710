-- The review UI (`shannot approve` on a terminal), driven through tmux
-- against the real binary: review, deny one write, execute, results;
-- escape sequences from a script stay inert; a resize redraws; without a
-- terminal the command says so.  Also the pieces under it: key decoding,
-- clean(), and shannot.core.term's failures.
local fs = require("shannot.fs")
local term = require("shannot.term")
local tui = require("shannot.ui.review")
local h = require("support.h")
local cap = require("support.cap")

local ESC_NAME = "a\27]0;pwned\7\27[2Jb"
local ESC_SHOWN = [[a\x1b]0;pwned\x07\x1b[2Jb]]

local tmux_mod = require("support.tmux")
local have_tmux = tmux_mod.available

local function tmux(e, args)
  local t = tmux_mod.start(e.home, args, { name = "tui", ignore_int = false, trim = false })
  return t
end

local function lines(screen)
  local out = {}
  for line in screen:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local function capture(e, code)
  local _, doc, s = e:run(code)
  assert(s, "nothing captured: " .. tostring(doc.stderr))
  return s
end

local function index_of(s, suffix)
  for i, op in ipairs(s.operations) do
    if op.path and op.path:sub(-#suffix) == suffix then return i end
  end
  error("no operation on " .. suffix)
end

describe("the review UI", function()
  local t
  after_each(function()
    if t then t:kill() end
    t = nil
    h.cleanup()
    cap.cleanup()
  end)

  it("lists pending sessions, denies one write, executes the rest and shows the results", function()
    if not have_tmux() then return end
    local e = cap.env()
    e:sh('echo old > "$1/a"')
    local s = capture(e, "echo new >> a && echo b > b && echo c > c")
    t = tmux(e, { "approve" })
    t:wait("pending sessions: 1")
    t:wait(s.id)
    t:keys("Enter")
    t:wait("3 to review")
    t:keys("a")
    t:wait("3 approve, 0 deny")
    t:keys("g")
    for _ = 2, index_of(s, "/b") do t:keys("j") end
    t:keys("Space")
    local screen = t:wait("2 approve, 1 deny")
    assert.matches("deny +%a+ +write +[^\n]*/b\n", screen)
    t:keys("x")
    t:wait("[y/N]")
    t:keys("y")
    screen = t:wait("executed; undo with")
    assert.matches("ok +%d+ write +[^\n]*/a\n", screen)
    assert.matches("ok +%d+ write +[^\n]*/c\n", screen)
    assert.is_nil(screen:find("/b\n", 1, true))
    t:keys("q")
    t:wait("pending sessions: 0")
    t:keys("q")
    t:wait("shannot-exit=0")
    assert.equal("old\nnew\n", fs.read_file(e.host .. "/a"))
    assert.is_nil(fs.lstat(e.host .. "/b"), "the denied write reached the host")
    assert.equal("c\n", fs.read_file(e.host .. "/c"))
    local after = e:show(s.id)
    assert.equal("executed", after.status)
    local b = after.operations[index_of(s, "/b")]
    assert.equal("deny", b.decision)
    assert.matches("in the review", b.reason)
    -- one event per change, the review's own named as such
    local log = require("shannot.json").decode(h.shannot({ "audit", "--json", "--session", s.id },
      { home = e.home }).stdout)
    local who = {}
    for _, ev in ipairs(log) do who[#who + 1] = ev.event_type .. ":" .. ev.actor end
    assert.same({ "session_created:cli", "session_approved:ui", "session_executed:ui" }, who)
    assert.equal(0, h.shannot({ "audit", "--verify" }, { home = e.home }).code)
  end)

  it("marks a session whose run failed in the list, the header and the execute question (issue 14.8)", function()
    if not have_tmux() then return end
    local e = cap.env()
    local _, _, s = e:run("echo x > f; exit 3")
    t = tmux(e, { "approve" })
    local screen = t:wait("pending sessions: 1")
    assert.matches("FAILED RUN", screen)
    t:keys("Enter")
    t:wait("FAILED RUN: exited with code 3")
    t:keys("a")
    t:keys("x")
    t:wait("the run exited with code 3 and may have captured only part of its work")
    t:keys("n")
    t:keys("q")
    t:wait("pending sessions: 1")
    t:keys("q")
    t:wait("shannot-exit=0")
    assert.equal("pending", e:show(s.id).status)
  end)

  it("shows escape sequences from a script inert: no cursor move, no title change", function()
    if not have_tmux() then return end
    local e = cap.env(nil, { short = true })
    local s = capture(e, [[echo x > "$(printf 'a\033]0;pwned\007\033[2Jb')" && ]] ..
      [[printf 'line\033]2;pwned2\007\033[H\033[2J\233Jend\n' > content]])
    t = tmux(e, { "approve", s.id })
    t:wait("2 to review")
    local title = t:title()
    local screen = t:wait("host/" .. ESC_SHOWN:sub(1, 5))  -- the rest is past column 80
    assert.equal(title, t:title())
    assert.is_nil(title:find("pwned"))
    assert.equal(24, #lines(screen))
    assert.equal(s.id, screen:sub(1, #s.id))  -- nothing cleared or moved the header
    t:keys("g")
    for _ = 2, index_of(s, "/content") do t:keys("j") end
    t:keys("Enter")
    screen = t:wait([[+line\x1b]2;pwned2\x07\x1b[H\x1b[2J\x9bJend]])
    assert.matches("^op %d+ of 2", screen)
    assert.equal(title, t:title())
    t:keys("q")
    t:keys("g")
    for _ = 2, index_of(s, ESC_NAME) do t:keys("j") end
    t:keys("Enter")
    t:wait("+++ b" .. e.host .. "/" .. ESC_SHOWN)
    assert.equal(title, t:title())
    t:keys("q", "q")
    t:wait("shannot-exit=0")
    assert.equal("pending", e:show(s.id).status)
  end)

  it("redraws to the new size when the terminal is resized", function()
    if not have_tmux() then return end
    local e = cap.env()
    local s = capture(e, "echo b > b")
    t = tmux(e, { "approve", s.id })
    local screen = t:wait("1 to review")
    local rows = lines(screen)
    assert.equal(24, #rows)
    assert.matches("^Space approve/deny", rows[24])
    assert.is_nil(rows[24]:find("? keys", 1, true))  -- cut at 80 columns
    t:run({ "resize-window", "-t", "main", "-x", "100", "-y", "30" })
    screen = t:wait(function(sc)
      local r = lines(sc)
      return #r == 30 and r[30]:find("? keys", 1, true) ~= nil
    end, "a 100x30 redraw")
    rows = lines(screen)
    assert.matches("^Space approve/deny", rows[30])
    assert.equal(s.id, rows[1]:sub(1, #s.id))
    t:keys("q")
    t:wait("shannot-exit=0")
  end)
end)

describe("approve without a terminal", function()
  after_each(h.cleanup)

  it("refuses to ask when stdout is not a terminal and --yes is missing", function()
    local e = cap.env()
    local s = capture(e, "echo b > b")
    local r = h.shannot({ "approve", s.id }, { home = e.home })
    assert.equal(2, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("not a terminal", r.stderr)
    r = h.shannot({ "approve" }, { home = e.home })
    assert.equal(2, r.code)
    assert.matches("give one session id", r.stderr)
    assert.equal("pending", e:show(s.id).status)
  end)
end)

describe("shannot.term", function()
  it("decodes keys and escape sequences", function()
    local keys, rest = term.decode("jk\r \27[A\27[B\27OC\27[5~\27[1;5D?\127\3é\27[99x\27")
    assert.same({ "j", "k", "enter", "space", "up", "down", "right", "pgup", "ctrl-left", "?", "backspace",
      "ctrl-c", "é", "unknown" }, keys)
    assert.equal("\27", rest)
    assert.same({ {}, "\27[1;" }, { term.decode("\27[1;") })
    -- Alt (ESC, then the key), modified arrows, the editing controls
    assert.same({ "alt-b", "alt-f", "alt-backspace", "alt-right", "ctrl-right", "left", "ctrl-r", "ctrl-g",
      "ctrl-y" }, (term.decode("\27b\27f\27\127\27[1;3C\27[1;5C\27[1;2D\18\7\25")))
    -- bytes that are not UTF-8 are keys of their own; a character cut
    -- short at the end waits for its rest
    assert.same({ { "\255", "a", "\226", "b", "日" }, "" }, { term.decode("\255a\226b日") })
    assert.same({ { "x" }, "\230\151" }, { term.decode("x\230\151") })
  end)

  it("fails as nil, msg, code where there is no terminal", function()
    local r, w = assert(fs.pipe())
    local cols, msg, code = term.size(r:fd())
    assert.is_nil(cols)
    assert.equal("ENOTTY", code, msg)
    local raw, rmsg, rcode = term.raw(r:fd())
    assert.is_nil(raw)
    assert.equal("ENOTTY", rcode, rmsg)
    assert.is_false(term.isatty(r:fd()))
    assert.equal("", term.read_key(r:fd(), 10))
    assert.is_true(term.write(w:fd(), "xy"))
    assert.equal("xy", term.read_key(r:fd(), 10))
    term.write(w:fd(), "q\27[B")
    assert.same({ "q", "down" }, term.read_keys(r:fd(), 10))
    term.write(w:fd(), "q\230\151")  -- a character that never completes: its bytes
    assert.same({ "q", "\230", "\151" }, term.read_keys(r:fd(), 10))
    w:close()
    local data, emsg, ecode = term.read_key(r:fd(), 10)
    assert.is_nil(data)
    assert.equal("EIO", ecode, emsg)
    local fd = r:fd()
    r:close()
    local ok, wmsg, wcode = term.write(fd, "x")
    assert.is_nil(ok)
    assert.equal("EBADF", wcode, wmsg)
  end)
end)

describe("tui.clean", function()
  it("shows every control, C1 and invisible character visibly and keeps the rest", function()
    assert.equal([[a\x1b[2Jb\x07\n\t\x7f]], tui.clean("a\27[2Jb\7\n\t\127"))
    assert.equal([[\u{9b}31m \x9b \u{202e}x \xff]], tui.clean("\194\15531m \155 \226\128\174x \255"))
    assert.equal("héllo 日本 ok", tui.clean("héllo 日本 ok"))
    assert.equal(4, tui.width("日本"))
    local line = tui.paint({ { "日本語のファイル名" } }, 5)
    assert.is_nil(line:find("語", 1, true))
    assert.is_nil(tui.paint({ { "\27]0;x\7" } }, 80):find("\7", 1, true))
  end)
end)
