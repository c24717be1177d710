-- shannot.ui.lineedit's pure parts: a line's cells (characters with their
-- combining marks, bytes that are not UTF-8), how each is shown, word
-- boundaries for Alt-B/Alt-F/Alt-D and Ctrl-W, and the sideways scroll.
local lineedit = require("shannot.ui.lineedit")

local cells = lineedit.cells

describe("shannot.ui.lineedit", function()
  it("splits a line into cells: a character with its combining marks, or one invalid byte", function()
    assert.same({ "a", "日", "😀", "e\u{301}\u{302}", "b" }, cells("a日😀e\u{301}\u{302}b"))
    assert.same({ "\u{301}", "x" }, cells("\u{301}x"))           -- a mark with nothing before it
    assert.same({ "a", "\255", "\226", "b" }, cells("a\255\226b"))  -- bytes that are not UTF-8
    assert.same({ "\255", "\u{301}" }, cells("\255\u{301}"))      -- nothing joins an invalid byte
    assert.same({ "a", "\u{202e}", "b" }, cells("a\u{202e}b"))
    assert.same({}, cells(""))
  end)

  it("shows a cell as itself with its width, or escaped when it could drive the terminal", function()
    assert.same({ "日", 2 }, { lineedit.show("日") })
    assert.same({ "e\u{301}", 1 }, { lineedit.show("e\u{301}") })
    assert.same({ "\\xff", 4 }, { lineedit.show("\255") })
    assert.same({ "\\x1b", 4 }, { lineedit.show("\27") })
    assert.same({ "\\u{9b}", 6 }, { lineedit.show("\u{9b}") })
    assert.same({ "\\u{202e}", 8 }, { lineedit.show("\u{202e}") })
  end)

  it("finds word boundaries: runs of letters and digits, letters of any script", function()
    local c = cells("foo.bar(12, héllo 日本語) 😀x")
    assert.is_true(lineedit.is_word("é"))
    assert.is_true(lineedit.is_word("日"))
    assert.is_true(lineedit.is_word("e\u{301}"))
    assert.is_false(lineedit.is_word("_"))
    assert.is_false(lineedit.is_word("😀"))
    assert.is_false(lineedit.is_word("\u{3001}"))  -- ideographic comma
    assert.is_false(lineedit.is_word("\255"))
    assert.equal(4, lineedit.word_end(c, 1))       -- foo|
    assert.equal(8, lineedit.word_end(c, 4))       -- .bar|
    assert.equal(11, lineedit.word_end(c, 8))      -- (12|
    assert.equal(18, lineedit.word_end(c, 11))     -- , héllo|
    assert.equal(22, lineedit.word_end(c, 18))     -- 日本語|
    assert.equal(#c + 1, lineedit.word_end(c, 22))  -- ) 😀x|
    assert.equal(#c + 1, lineedit.word_end(c, #c + 1))
    assert.equal(#c, lineedit.word_start(c, #c + 1))  -- |x
    assert.equal(19, lineedit.word_start(c, #c))      -- |日本語
    assert.equal(13, lineedit.word_start(c, 19))      -- |héllo
    assert.equal(5, lineedit.word_start(c, 8))        -- |bar
    assert.equal(1, lineedit.word_start(c, 3))
    assert.equal(1, lineedit.word_start(c, 1))
    -- Ctrl-W cuts back to a blank, as readline's unix-word-rubout
    assert.equal(19, lineedit.blank_start(c, 22))
    assert.equal(13, lineedit.blank_start(c, 18))
    assert.equal(1, lineedit.blank_start(c, 11))
  end)

  it("scrolls by columns so the cell under the cursor shows whole", function()
    -- it fits: all of it, the cursor column the widths before it
    assert.same({ 1, 3, 3 }, { lineedit.scroll({ 1, 2, 1 }, 3, 1, 10) })
    assert.same({ 1, 0, 0 }, { lineedit.scroll({}, 1, 1, 10) })
    -- ten wide characters in 9 columns: the cursor at the end shows the last four
    local wide = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }
    assert.same({ 7, 10, 8 }, { lineedit.scroll(wide, 11, 1, 9) })
    -- back to the start: the view follows the cursor
    assert.same({ 1, 4, 0 }, { lineedit.scroll(wide, 1, 7, 9) })
    -- the view stays while the cursor is inside it
    assert.same({ 4, 7, 4 }, { lineedit.scroll(wide, 6, 4, 9) })
    -- a wide character at the cursor is not cut at the edge
    assert.same({ 2, 5, 6 }, { lineedit.scroll(wide, 5, 1, 8) })
    -- a \xNN cell counts its four columns
    assert.same({ 1, 3, 5 }, { lineedit.scroll({ 1, 4, 1 }, 3, 1, 6) })
    assert.same({ 3, 3, 0 }, { lineedit.scroll({ 1, 4, 1 }, 3, 1, 4) })
  end)
end)
