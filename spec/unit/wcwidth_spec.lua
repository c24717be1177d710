-- shannot.wcwidth: the columns a character takes (wide CJK and emoji 2,
-- combining marks and format characters 0), its tables sorted.
local wcwidth = require("shannot.wcwidth")

describe("shannot.wcwidth", function()
  it("counts ASCII 1, wide and fullwidth 2, combining marks 0, controls 0", function()
    assert.equal(3, wcwidth.width("abc"))
    assert.equal(6, wcwidth.width("日本語"))
    assert.equal(2, wcwidth.width("😀"))
    assert.equal(4, wcwidth.width("ｆｕ"))          -- fullwidth Latin
    assert.equal(4, wcwidth.width("한글"))          -- Hangul syllables
    assert.equal(1, wcwidth.width("e\u{301}"))      -- e, combining acute
    assert.equal(2, wcwidth.width("a\u{200b}b"))    -- zero width space
    assert.equal(1, wcwidth.width("é"))
    assert.equal(1, wcwidth.width("→"))
    assert.equal(2, wcwidth.width("\u{3000}"))      -- ideographic space
    assert.equal(1, wcwidth.char(0x303f))           -- the half fill space is not wide
    assert.equal(0, wcwidth.char(0x9b))
    assert.equal(0, wcwidth.char(0x1b))
    assert.equal(2, wcwidth.char(0x20000))          -- CJK extension B
    assert.equal(2, wcwidth.char(0x1f680))          -- rocket
    assert.equal(1, wcwidth.char(0x1f680 - 0x100))  -- a symbol without a picture presentation
  end)

  it("keeps its ranges sorted and apart, so bisection finds each", function()
    for _, ranges in ipairs({ wcwidth.ZERO, wcwidth.WIDE }) do
      for i, r in ipairs(ranges) do
        assert.truthy(r[1] <= r[2], string.format("%x", r[1]))
        if i > 1 then assert.truthy(r[1] > ranges[i - 1][2], string.format("%x", r[1])) end
        assert.is_true(wcwidth.within(r[1], ranges))
        assert.is_true(wcwidth.within(r[2], ranges))
        assert.is_false(wcwidth.within(r[1] - 1, ranges) and not (i > 1 and ranges[i - 1][2] == r[1] - 1))
      end
    end
    assert.is_false(wcwidth.within(5, {}))
  end)
end)
