-- `shannot repl`, driven through tmux against the real binary: results,
-- multi-line input, tables (nested, with a cycle, escape sequences inert),
-- history (Up, and kept across two runs), Tab completion, Ctrl-C on a
-- half-typed line and on a running loop, Ctrl-D; the line editor (Ctrl-R
-- search, the cursor over wide characters, emoji, combining marks and
-- bytes that are not UTF-8, a line wider than the pane, word motions,
-- kill and yank; cursor columns read from tmux); then plain lines without
-- a terminal, --target (one SSH connection for every command), and the
-- pieces under it (pretty, compile, complete, decode).
local fs = require("shannot.fs")
local repl = require("shannot.ui.repl")
local h = require("support.h")

local READY = "Ctrl-D leaves\n>\n"

local tmux_mod = require("support.tmux")
local have_tmux, sleep = tmux_mod.available, tmux_mod.sleep

local function tmux(home, args)
  local t = tmux_mod.start(home, args, { name = "repl", ignore_int = true, trim = true })
  -- line(s): s typed and entered
  function t.line(self, s)
    self:type(s)
    self:keys("Enter")
  end
  return t
end

-- The screen ends with an empty prompt: what was entered has been handled.
local function prompt_after(text)
  return function(screen)
    return screen:find(text .. ">\n", 1, true) ~= nil
  end
end

describe("shannot repl on a terminal", function()
  local t
  after_each(function()
    if t then t:kill() end
    t = nil
    h.cleanup()
  end)

  it("prints expressions, runs a multi-line definition and shows a nested table with a cycle", function()
    if not have_tmux() then return end
    t = tmux(h.home(), { "repl" })
    t:wait(READY)
    local title = t:title()
    t:line("1 + 2")
    t:wait(prompt_after("> 1 + 2\n3\n"))
    t:line("function f(x)")
    t:wait("> function f(x)\n..>\n")
    t:line("  return x * 2")
    t:wait("..>   return x * 2\n..>\n")
    t:line("end")
    t:wait(prompt_after("..> end\n"))
    t:line("f(21)")
    t:wait(prompt_after("> f(21)\n42\n"))
    t:line([[t = { name = "a\27]0;pwned\7b", list = { 1, 2, { deep = { true } } }, n = 3.5 }; t.self = t]])
    t:wait(prompt_after("t.self = t\n"))
    t:line("t")
    local screen = t:wait(prompt_after("}\n"))
    assert.truthy(screen:find(table.concat({
      "> t",
      "{",
      "  list = { 1, 2, { deep = { true } } },",
      "  n = 3.5,",
      [[  name = "a\x1b]0;pwned\x07b",]],
      "  self = <cycle>",
      "}",
    }, "\n"), 1, true), screen)
    assert.equal(title, t:title())
    t:line("=nil, 'x'")
    t:wait(function(sc) return sc:find('\nnil +"x"\n>\n') end, "nil, \"x\"")
    t:line("error('boom')")
    t:wait(prompt_after("stdin:1: boom\n"))
    t:line("1 +* 2")
    t:wait(prompt_after("stdin:1: unexpected symbol near '1'\n"))
  end)

  it("recalls lines with Up and keeps them for the next run; Ctrl-D exits 0", function()
    if not have_tmux() then return end
    local home = h.home()
    t = tmux(home, { "repl" })
    t:wait(READY)
    t:line("40 + 2")
    t:wait(prompt_after("42\n"))
    t:line("'second'")
    t:wait(prompt_after('"second"\n'))
    t:keys("Up", "Up")
    t:wait("> 40 + 2\n")
    t:keys("Down")
    t:wait("> 'second'\n")
    t:keys("Up", "Enter")
    t:wait(prompt_after("> 40 + 2\n42\n"))
    -- editing keys: Ctrl-A, Ctrl-E, Left, Backspace, Ctrl-W, Ctrl-K, Ctrl-U
    t:type("abc")
    t:keys("C-a")
    t:type("'x")
    t:keys("C-e")
    t:type("yz'")
    t:keys("Left", "BSpace", "Enter")
    t:wait(prompt_after('"xabcy"\n'))
    t:type("1 + 2 + 99")
    t:keys("C-w", "BSpace", "BSpace", "Left", "Left", "C-k")
    t:type("3")
    t:keys("Enter")
    t:wait(prompt_after("> 1 + 3\n4\n"))
    t:type("junk")
    t:keys("C-u")
    t:type("7")
    t:keys("Enter")
    t:wait(prompt_after("> 7\n7\n"))
    t:keys("C-d")
    t:wait("shannot-exit=0")
    local saved = assert(fs.read_file(home .. "/data/shannot/repl_history"))
    assert.equal("40 + 2\n'second'\n40 + 2\n'xabcy'\n1 + 3\n7\n", saved)
    assert.equal(384, assert(fs.stat(home .. "/data/shannot/repl_history")).mode & 511)
    t:kill()

    t = tmux(home, { "repl" })
    t:wait(READY)
    t:keys("Up", "Up", "Up")
    t:wait("> 'xabcy'\n")
    t:keys("Enter")
    t:wait(prompt_after('"xabcy"\n'))
    t:keys("C-d")
    t:wait("shannot-exit=0")
  end)

  it("completes shannot.ses to shannot.session and lists shannot.session.l", function()
    if not have_tmux() then return end
    t = tmux(h.home(), { "repl" })
    t:wait(READY)
    t:type("shannot.ses")
    t:keys("Tab")
    t:wait("> shannot.session\n")
    t:type(".l")
    t:keys("Tab")
    t:wait("> shannot.session.l\nlist  load  lock\n> shannot.session.l\n")
    t:type("ist")
    t:keys("Enter")
    t:wait(function(screen) return screen:find("\nfunction: 0x%x+\n>\n") end, "a function")
    t:type("pri")
    t:keys("Tab")
    t:wait("> print\n")
    t:keys("C-u")
    t:type("s = 'x'")
    t:keys("Enter")
    t:wait(prompt_after("> s = 'x'\n"))
    t:type("s:up")
    t:keys("Tab")
    t:type("()")
    t:keys("Enter")
    t:wait(prompt_after('> s:upper()\n"X"\n'))
  end)

  it("cancels a half-typed line and stops a running loop on Ctrl-C, and stays", function()
    if not have_tmux() then return end
    t = tmux(h.home(), { "repl" })
    t:wait(READY)
    t:type("1 +")
    t:wait("> 1 +")  -- Ctrl-C is a signal: it would overtake keys not yet read
    t:keys("C-c")
    t:wait("> 1 +^C\n>\n")
    t:line("5 * 5")
    t:wait(prompt_after("> 5 * 5\n25\n"))
    t:line("function g()")
    t:wait("..>\n")
    t:keys("C-c")
    t:wait("..> ^C\n>\n")
    t:line("while true do end")
    t:wait("> while true do end\n")
    sleep(0.3)
    t:keys("C-c")
    t:wait(prompt_after("interrupted\n"))
    t:line("6 * 7")
    t:wait(prompt_after("> 6 * 7\n42\n"))
  end)

  it("exits 0 on Ctrl-D after a Ctrl-C", function()
    if not have_tmux() then return end
    t = tmux(h.home(), { "repl" })
    t:wait(READY)
    t:type("1 +")
    t:wait("> 1 +")
    t:keys("C-c")
    t:wait("> 1 +^C\n>\n")
    t:keys("C-d")
    t:wait("shannot-exit=0")
  end)
end)

describe("shannot repl's line editor on a terminal", function()
  local t
  after_each(function()
    if t then t:kill() end
    t = nil
    h.cleanup()
  end)

  local function start()
    t = tmux(h.home(), { "repl" })
    t:wait(READY)
  end

  it("searches history backwards with Ctrl-R: refine, next older, Backspace, Enter runs, Escape cancels", function()
    if not have_tmux() then return end
    start()
    t:line("10 + 1")
    t:wait(prompt_after("11\n"))
    t:line("'beta'")
    t:wait(prompt_after('"beta"\n'))
    t:line("10 + 2")
    t:wait(prompt_after("12\n"))
    t:keys("C-r")
    t:wait("(reverse-i-search)'':\n")
    t:type("10 +")
    t:wait("(reverse-i-search)'10 +': 10 + 2\n")
    t:wait_cursor(#"(reverse-i-search)'10 +': ")  -- at the match
    t:keys("Enter")
    t:wait(prompt_after("> 10 + 2\n12\n"))
    -- Ctrl-R again: the next older match (the same line twice counts once)
    t:keys("C-r")
    t:type("10")
    t:wait("(reverse-i-search)'10': 10 + 2\n")
    t:keys("C-r")
    t:wait("(reverse-i-search)'10': 10 + 1\n")
    t:keys("C-r")  -- nothing older
    t:wait("(failed reverse-i-search)'10': 10 + 1\n")
    t:keys("Enter")
    t:wait(prompt_after("> 10 + 1\n11\n"))
    -- Backspace shortens the query; a key that edits accepts the match
    t:keys("C-r")
    t:type("bex")
    t:wait("(failed reverse-i-search)'bex': 'beta'\n")  -- the last match stays
    t:keys("BSpace")
    t:wait("(reverse-i-search)'be': 'beta'\n")
    t:keys("C-e")
    t:type(" .. 'x'")
    t:wait("> 'beta' .. 'x'\n")
    t:keys("Enter")
    t:wait(prompt_after('"betax"\n'))
    -- Escape and Ctrl-G cancel: the line as it was
    t:type("x = 5")
    t:keys("C-r")
    t:type("beta")
    t:wait("(reverse-i-search)'beta': 'beta' .. 'x'\n")
    t:keys("Escape")
    t:wait("> x = 5\n")
    t:wait_cursor(7)
    t:keys("C-r")
    t:type("10")
    t:wait("(reverse-i-search)'10': 10 + 1\n")
    t:keys("C-g")
    t:wait("> x = 5\n")
    t:keys("Enter")
    t:wait(prompt_after("> x = 5\n"))
    t:line("x")
    t:wait(prompt_after("> x\n5\n"))
  end)

  it("moves over wide characters by character, and the cursor is where the character is", function()
    if not have_tmux() then return end
    start()
    t:type('s = "日本語"')
    t:wait_cursor(2 + 5 + 6 + 1)
    t:keys("Left", "Left")
    t:wait_cursor(2 + 5 + 4)  -- before 語
    t:type("X")
    t:wait('> s = "日本X語"\n')
    t:wait_cursor(2 + 5 + 4 + 1)
    t:keys("Enter")
    t:wait(prompt_after('> s = "日本X語"\n'))
    t:line("s")
    t:wait(prompt_after('> s\n"日本X語"\n'))
    -- Backspace and Delete take an emoji whole
    t:type("'a😀b😀'")
    t:wait_cursor(2 + 8)
    t:keys("Left", "BSpace")
    t:wait("> 'a😀b'\n")
    t:wait_cursor(2 + 5)
    t:keys("Home", "Right", "Right", "Delete")
    t:wait("> 'ab'\n")
    t:wait_cursor(2 + 2)
    t:keys("Enter")
    t:wait(prompt_after('"ab"\n'))
    -- a byte that is not UTF-8 shows as \xff, four columns, one character
    t:run({ "send-keys", "-t", "main", "-H", "27", "61", "ff", "62", "27" })
    t:wait("> 'a\\xffb'\n")
    t:wait_cursor(2 + 8)
    t:keys("Left", "Left")
    t:wait_cursor(2 + 6)
    t:keys("Left")
    t:wait_cursor(2 + 2)
    t:type("c")
    t:keys("Enter")
    t:wait(prompt_after('"ac\\xffb"\n'))
  end)

  it("keeps a combining mark with its character, and scrolls a line wider than the terminal", function()
    if not have_tmux() then return end
    start()
    t:type("'e\u{301}x'")  -- e and a combining acute: one column, one character
    t:wait_cursor(2 + 4)
    t:keys("Left", "Left")
    t:wait_cursor(2 + 2)
    t:type("Y")
    t:wait_cursor(2 + 3)
    t:keys("Left", "Left")
    t:wait_cursor(2 + 1)  -- before e and its mark
    t:keys("Right", "BSpace")  -- the mark goes with its e
    t:wait("> 'Yx'\n")
    t:keys("C-y")  -- (nothing was killed: nothing comes)
    t:type("e\u{301}")
    t:keys("Enter")
    t:wait(prompt_after("> 'e\u{301}Yx'\n\"e\\u{301}Yx\"\n"))  -- (results show marks escaped)
    -- 45 wide characters in quotes (92 columns) in an 80-column pane: the
    -- line scrolls, the cursor stays on it and where the character is
    local long = "'" .. string.rep("日", 45) .. "'"
    t:type(long)
    local screen = t:wait_cursor(77)
    assert.truthy(screen:find("\n> " .. string.rep("日", 37) .. "'\n", 1, true), screen)
    t:keys("Home")
    screen = t:wait_cursor(2)
    assert.truthy(screen:find("\n> '" .. string.rep("日", 38) .. "\n", 1, true), screen)
    t:keys("Enter")
    t:line("#" .. long)
    t:wait(prompt_after("\n135\n"))
  end)

  it("moves by words with Alt-B/Alt-F and Ctrl-Left/Ctrl-Right, kills with Alt-D, Ctrl-W and yanks", function()
    if not have_tmux() then return end
    start()
    t:type("'alpha beta gamma'")
    t:keys("M-b")
    t:type("X")  -- before gamma
    t:keys("C-a", "M-f", "M-f")
    t:type("Y")  -- after beta
    t:wait("> 'alpha betaY Xgamma'\n")
    t:wait_cursor(2 + 12)
    t:keys("Enter")
    t:wait(prompt_after('"alpha betaY Xgamma"\n'))
    t:type("'héllo wörld 日本 go'")
    t:keys("C-Left", "C-Left")
    t:type("1")  -- before 日本
    t:wait_cursor(2 + 14)
    t:keys("C-a", "C-Right", "C-Right")
    t:type("2")  -- after wörld
    t:wait("> 'héllo wörld2 1日本 go'\n")
    t:keys("Enter")
    t:wait(prompt_after('"héllo wörld2 1日本 go"\n'))
    -- Alt-D kills the word after, Ctrl-Y puts it back elsewhere
    t:type("'one two three'")
    t:keys("C-a", "M-f", "M-d", "C-e", "Left", "C-y")
    t:wait("> 'one three two'\n")
    t:keys("Enter")
    t:wait(prompt_after('"one three two"\n'))
    -- Ctrl-W kills back to a blank, Alt-Backspace back to a word start
    t:type("x.y = 1 + foo.bar")
    t:keys("C-w")
    t:wait("> x.y = 1 +\n")
    t:keys("C-u")
    t:type("foo.bar")
    t:keys("M-BSpace")
    t:wait("> foo.\n")
    t:keys("C-u")
    t:line("'ok'")
    t:wait(prompt_after('"ok"\n'))
  end)
end)

describe("shannot repl without a terminal", function()
  after_each(h.cleanup)

  it("reads plain lines and prints each result", function()
    local r = h.shannot({ "repl" }, { input = "1+1\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("2\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("takes multi-line input, says errors in one line, and exits 1 after one", function()
    local r = h.shannot({ "repl" }, {
      input = "function g(a)\n  return a .. '!'\nend\ng('hi')\nerror('bad')\n{ 1, x = { 2 } }\n",
    })
    assert.equal(1, r.code)
    assert.equal('"hi!"\n{ 1, x = { 2 } }\n', r.stdout)
    assert.equal("stdin:1: bad\n", r.stderr)
    r = h.shannot({ "repl" }, { input = "for i = 1, 2 do\n" })
    assert.equal(1, r.code)
    assert.matches("'end' expected near <eof>", r.stderr)
  end)

  it("has shannot, config and p", function()
    local r = h.shannot({ "repl" }, {
      input = "shannot.version\nshannot.session.valid_id('x')\ntype(config.values)\np({ b = 1, a = 'x' })\n",
    })
    assert.equal(0, r.code, r.stderr)
    assert.equal('"0.1.0"\nfalse\n"table"\n{ a = "x", b = 1 }\n', r.stdout)
  end)

  it("refuses an unknown --target in one line", function()
    local r = h.shannot({ "repl", "--target", "bad host" })
    assert.equal(2, r.code)
    assert.truthy(h.one_line_error(r), r.stderr)
    assert.matches("unknown target", r.stderr)
  end)
end)

describe("shannot repl --target", function()
  after_each(h.cleanup)

  it("connects once and runs every command over that connection", function()
    local sshd = require("support.sshd")
    if not h.need(sshd.available(), "sshd and ssh-keygen") then return end
    local server = sshd.start()
    finally(server.stop)
    local home = h.home()
    assert(fs.mkdir_p(home .. "/.ssh"))
    local add = h.shannot({ "remote", "add", "box", server.user .. "@127.0.0.1:" .. server.port, "--key", server.key },
      { home = home })
    assert.equal(0, add.code, add.stderr)
    local r = h.shannot({ "repl", "--target", "box", "--accept-new" }, {
      home = home, input = 'target:exec("echo hi").stdout\ntarget:exec("exit 3").code\n',
    })
    assert.equal(0, r.code, r.stderr)
    assert.equal('"hi\\n"\n3\n', r.stdout)
    local _, logins = assert(fs.read_file(server.log)):gsub("Accepted publickey", "")
    assert.equal(1, logins)
  end)
end)

describe("shannot.ui.repl", function()
  it("pretty-prints nested tables with sorted keys, cycles and inert strings", function()
    local t = { 1, 2, { "x" }, b = true, a = "q\"\\\27[2J", [5] = 0, [{}] = 1 }
    t.me = t
    local s = repl.pretty(t)
    assert.equal([[{
  1, 2, { "x" },
  [5] = 0,
  a = "q\"\\\x1b[2J",
  b = true,
  me = <cycle>,
  [table: ]] .. s:match("%[table: (0x%x+)%]") .. [[] = 1
}]], s)
    assert.equal('"\\n\\u{9b}"', repl.pretty("\n\u{9b}"))
    assert.equal("{}", repl.pretty({}))
    assert.equal("nil", repl.pretty(nil))
    local shared = { 1 }
    assert.equal("{ { 1 }, { 1 } }", repl.pretty({ shared, shared }))
  end)

  it("cuts long tables, deep nesting and long strings", function()
    local big = {}
    for i = 1, 500 do big[i] = i end
    local s = repl.pretty(big)
    assert.truthy(s:find("...(450 more)", 1, true), s)
    local deep = {}
    local cur = deep
    for _ = 1, 20 do
      cur.next = {}
      cur = cur.next
    end
    assert.truthy(repl.pretty(deep):find("{...}", 1, true))
    local long = repl.pretty({ string.rep("é", 300) })
    assert.truthy(long:find('é"...(400 more bytes)', 1, true), long)
  end)

  it("compiles expressions, statements and incomplete input", function()
    local env = {}
    assert.equal(3, repl.compile({ "1 + 2" }, env)())
    assert.equal(4, repl.compile({ "=2 * 2" }, env)())
    assert.equal("incomplete", repl.compile({ "if true then" }, env))
    assert.equal("function", type(repl.compile({ "if true then", "x = 1", "end" }, env)))
    local chunk, msg = repl.compile({ "1 +* 2" }, env)
    assert.is_nil(chunk)
    assert.matches("^stdin:1: ", msg)
  end)

  it("completes globals, keywords, module members and methods", function()
    local env = repl.environment({})
    local function names(before)
      return table.concat((repl.complete(before, env)), " ")
    end
    assert.equal("session", names("x = shannot.ses"))
    assert.equal("list load lock", names("shannot.session.l"))
    assert.equal("apply approval", names("shannot.ap"))
    assert.equal("tostring", names("tostr"))
    assert.equal("function", names("func"))
    assert.equal("", names("nothing.here"))
    assert.equal("", names("1.5"))
    env.s = "text"
    assert.equal("upper", names("s:up"))
  end)

  it("decodes the editing controls term.decode leaves unnamed", function()
    local keys = repl.decode("\1a\5\11\23\27[A\4")
    assert.same({ "ctrl-a", "a", "ctrl-e", "ctrl-k", "ctrl-w", "up", "ctrl-d" }, keys)
  end)
end)
