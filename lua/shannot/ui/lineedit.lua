-- The line editor of `shannot repl`, written over shannot.term's
-- primitives with the keys readline users know: motion by characters and
-- words, kill and yank, history (Up/Down and Ctrl-R reverse incremental
-- search), Tab completion through a function the caller gives.  The line
-- is a list of cells (a character with the combining marks after it, or
-- one byte that is not UTF-8, shown as \xNN), drawn by display width and
-- scrolled sideways when it is wider than the terminal.
local term = require("shannot.term")
local wcwidth = require("shannot.wcwidth")

local M = {}

local IN, OUT = 0, 1

---------------------------------------------------------------------------
-- Cells, their width and words
---------------------------------------------------------------------------

-- The code point and length of the valid UTF-8 character at i, or nil.
local function char_at(s, i)
  local b = s:byte(i)
  if b < 0x80 then return b, 1 end
  local len = b >= 0xf0 and 4 or b >= 0xe0 and 3 or b >= 0xc2 and 2 or nil
  local ch = len and s:sub(i, i + len - 1)
  if not ch or utf8.len(ch) ~= 1 then return nil end
  return utf8.codepoint(ch), len
end

-- Code points shown escaped, never sent as they are: controls, C1
-- controls (U+009B is a CSI to some terminals) and the bidi overrides.
local function hidden(cp)
  return cp < 0x20 or (cp >= 0x7f and cp <= 0x9f) or (cp >= 0x202a and cp <= 0x202e)
    or (cp >= 0x2066 and cp <= 0x2069)
end

-- A zero-width character that joins the cell before it (a combining mark).
local function joins(cp)
  return wcwidth.char(cp) == 0 and not hidden(cp)
end

-- cells(s) -> the cells of s: each a character with the zero-width marks
-- that follow it, or one byte that is not UTF-8.
function M.cells(s)
  local out, i = {}, 1
  while i <= #s do
    local cp, len = char_at(s, i)
    local cell = s:sub(i, i + (len or 1) - 1)
    local prev = out[#out]
    if cp and joins(cp) and prev and char_at(prev, 1) and not hidden(char_at(prev, 1)) then
      out[#out] = prev .. cell
    else
      out[#out + 1] = cell
    end
    i = i + (len or 1)
  end
  return out
end

-- show(cell) -> what the terminal is sent for it, and its width: an
-- invalid byte or a control as \xNN, a hidden code point as \u{N}.
function M.show(cell)
  local cp = char_at(cell, 1)
  if not cp then return string.format("\\x%02x", cell:byte()), 4 end
  if hidden(cp) then
    local s = cp < 0x80 and string.format("\\x%02x", cp) or string.format("\\u{%x}", cp)
    return s, #s
  end
  return cell, wcwidth.width(cell)
end

-- Not part of a word, beyond ASCII: Latin-1 punctuation and signs, the
-- punctuation, symbol, arrow, box and dingbat blocks, CJK punctuation,
-- fullwidth punctuation, the emoji and symbol planes.
local NOT_WORD = {
  { 0x80, 0xbf }, { 0xd7, 0xd7 }, { 0xf7, 0xf7 }, { 0x2000, 0x2bff }, { 0x2e00, 0x3004 }, { 0x3008, 0x303f },
  { 0xfe10, 0xfe1f }, { 0xfe30, 0xfe6f }, { 0xff00, 0xff0f }, { 0xff1a, 0xff20 }, { 0xff3b, 0xff40 },
  { 0xff5b, 0xff65 }, { 0x1f000, 0x1faff },
}

-- is_word(cell) -> whether the cell belongs to a word: ASCII letters and
-- digits, and the letters of other scripts (what NOT_WORD leaves).
function M.is_word(cell)
  local cp = char_at(cell, 1)
  if not cp then return false end
  if cp < 0x80 then return cell:find("^%w") ~= nil end
  return not wcwidth.within(cp, NOT_WORD)
end

-- word_end(cells, i) -> where Alt-F goes from i: past the next word's end
function M.word_end(cells, i)
  while i <= #cells and not M.is_word(cells[i]) do i = i + 1 end
  while i <= #cells and M.is_word(cells[i]) do i = i + 1 end
  return i
end

-- word_start(cells, i) -> where Alt-B goes from i: the start of the word
-- before (or under) i
function M.word_start(cells, i)
  while i > 1 and not M.is_word(cells[i - 1]) do i = i - 1 end
  while i > 1 and M.is_word(cells[i - 1]) do i = i - 1 end
  return i
end

-- blank_start(cells, i) -> where Ctrl-W cuts from: the start of the
-- blank-delimited word before i (readline's unix-word-rubout)
function M.blank_start(cells, i)
  while i > 1 and cells[i - 1]:find("^%s$") do i = i - 1 end
  while i > 1 and not cells[i - 1]:find("^%s$") do i = i - 1 end
  return i
end

-- scroll(widths, cursor, first, room) -> first, last, column: the cells
-- shown in room columns (first..last) so that the one at the cursor shows
-- whole, and the cursor's column from the first.  first is the last
-- call's, so the view moves only when the cursor leaves it.
function M.scroll(widths, cursor, first, room)
  local total = 0
  for _, w in ipairs(widths) do total = total + w end
  if total < room then first = 1 end
  first = math.min(first, cursor)
  local col = 0
  for i = first, cursor - 1 do col = col + widths[i] end
  while first < cursor and col + math.max(1, widths[cursor] or 1) > room do
    col, first = col - widths[first], first + 1
  end
  local last, used = first - 1, 0
  while widths[last + 1] and used + widths[last + 1] <= room do
    last, used = last + 1, used + widths[last + 1]
  end
  return first, last, col
end

---------------------------------------------------------------------------
-- The editor
---------------------------------------------------------------------------

local Editor = {}
Editor.__index = Editor

-- new(opts) -> an Editor reading keys from fd 0.  opts: history (a table
-- whose entries are the lines, oldest first), complete (a function of the
-- line up to the cursor -> sorted candidates, the partial word).
function M.new(opts)
  return setmetatable({ history = opts.history, complete_fn = opts.complete, queue = {}, buf = {},
    cursor = 1, first = 1, prompt = "", killed = "" }, Editor)
end

function Editor:line()
  return table.concat(self.buf)
end

function Editor:set(s)
  self.buf = M.cells(s)
  self.cursor = #self.buf + 1
end

-- The prompt as drawn: in a search, what is searched for, its start cut
-- when it would take more than half the width.
function Editor:prompt_text(cols)
  local s = self.search
  if not s then return self.prompt end
  local shown, width, room = {}, 0, math.max(4, cols // 2 - 24)
  local q = M.cells(s.query)
  for i = #q, 1, -1 do
    local t, w = M.show(q[i])
    if width + w > room then
      table.insert(shown, 1, "<")
      break
    end
    table.insert(shown, 1, t)
    width = width + w
  end
  return (s.failed and "(failed reverse-i-search)'" or "(reverse-i-search)'") .. table.concat(shown) .. "': "
end

-- The prompt and the part of the line around the cursor that fits.
function Editor:refresh()
  local cols = term.size(OUT) or 80
  local prompt = self:prompt_text(cols)
  local pw = wcwidth.width(prompt)
  local texts, widths = {}, {}
  for i, cell in ipairs(self.buf) do texts[i], widths[i] = M.show(cell) end
  local first, last, col = M.scroll(widths, self.cursor, self.first, math.max(1, cols - pw - 1))
  self.first = first
  local at = pw + col
  local out = "\r" .. prompt .. table.concat(texts, "", first, last) .. "\27[K\r" ..
    (at > 0 and ("\27[" .. at .. "C") or "")
  return term.write(OUT, out)
end

function Editor:insert(s)
  local prev = self.buf[self.cursor - 1]
  local cells = M.cells((prev or "") .. s)
  if prev then  -- a combining mark typed joins the character before it
    table.remove(self.buf, self.cursor - 1)
    self.cursor = self.cursor - 1
  end
  for _, cell in ipairs(cells) do
    table.insert(self.buf, self.cursor, cell)
    self.cursor = self.cursor + 1
  end
end

-- cut(from, to) -> the text of buf[from .. to-1], deleted; the cursor at from
function Editor:cut(from, to)
  local gone = table.concat(self.buf, "", from, to - 1)
  for _ = from, to - 1 do table.remove(self.buf, from) end
  self.cursor = from
  return gone
end

-- kill(from, to): a cut kept for Ctrl-Y
function Editor:kill(from, to)
  if to > from then self.killed = self:cut(from, to) end
end

function Editor:recall(step)
  local entries = self.history.entries
  local i = self.hist_at + step
  if i < 1 or i > #entries + 1 then return end
  if self.hist_at == #entries + 1 then self.draft = self:line() end
  self.hist_at = i
  self:set(i == #entries + 1 and self.draft or entries[i])
end

-- The candidates in columns under the line, then the line again.
local function list(names)
  local cols = term.size(OUT) or 80
  local widest = 0
  for _, n in ipairs(names) do widest = math.max(widest, #n) end
  local per_row = math.max(1, (cols - 1) // (widest + 2))
  local shown = math.min(#names, 200)
  local rows = {}
  for i = 1, shown, per_row do
    local row = {}
    for j = i, math.min(shown, i + per_row - 1) do
      row[#row + 1] = names[j] .. string.rep(" ", widest + 2 - #names[j])
    end
    rows[#rows + 1] = table.concat(row):gsub("%s+$", "")
  end
  if shown < #names then rows[#rows + 1] = string.format("...(%d more)", #names - shown) end
  term.write(OUT, "\r\n" .. table.concat(rows, "\r\n") .. "\r\n")
end

local function common_prefix(names)
  local p = names[1] or ""
  for i = 2, #names do
    local s = names[i]
    local n = 0
    while n < #p and n < #s and p:byte(n + 1) == s:byte(n + 1) do n = n + 1 end
    p = p:sub(1, n)
  end
  return p
end

function Editor:complete()
  local before = table.concat(self.buf, "", 1, self.cursor - 1)
  if before:find("^%s*$") then return self:insert("  ") end
  if not self.complete_fn then return end
  local names, partial = self.complete_fn(before)
  if #names == 1 then
    self:insert(names[1]:sub(#partial + 1))
  elseif #names > 1 then
    local common = common_prefix(names)
    if #common > #partial then
      self:insert(common:sub(#partial + 1))
    else
      list(names)
    end
  end
end

---------------------------------------------------------------------------
-- Reverse incremental search (Ctrl-R)
---------------------------------------------------------------------------

-- The last place query occurs in s (the match readline shows), or nil.
local function last_find(s, query)
  local at, from = nil, 1
  while true do
    local i = s:find(query, from, true)
    if not i then return at end
    at, from = i, i + 1
  end
end

function Editor:search_start()
  self.search = { query = "", at = #self.history.entries + 1,
    saved = { buf = self.buf, cursor = self.cursor, first = self.first } }
  self.buf = table.move(self.buf, 1, #self.buf, 1, {})
end

-- Shows the newest entry at or before index from that holds the query
-- (skipping those that read as the line shown when skip_same); failed
-- when none does.
function Editor:search_from(from, skip_same)
  local s, entries = self.search, self.history.entries
  local shown = self:line()
  for i = math.min(from, #entries), 1, -1 do
    local pos = not (skip_same and entries[i] == shown) and last_find(entries[i], s.query)
    if pos then
      s.at, s.failed = i, false
      self:set(entries[i])
      self.cursor = #M.cells(entries[i]:sub(1, pos - 1)) + 1
      return
    end
  end
  s.failed = true
end

-- A character typed: the query grows and the match is looked for from
-- the one shown (which may still hold it).
function Editor:search_type(key)
  local s = self.search
  s.query = s.query .. key
  self:search_from(s.at)
end

-- Ctrl-R again: the next older match (the last query when none is typed)
function Editor:search_next()
  local s = self.search
  if s.query == "" then s.query = self.last_query or "" end
  if s.query == "" then return end
  self:search_from(s.at - 1, true)
end

-- Backspace: the query one character shorter, looked for from the newest
-- entry again; with no query left, the line as it was.
function Editor:search_back()
  local s = self.search
  local q = M.cells(s.query)
  q[#q] = nil
  s.query = table.concat(q)
  if s.query == "" then
    self.buf, self.cursor = table.move(s.saved.buf, 1, #s.saved.buf, 1, {}), s.saved.cursor
    s.at, s.failed = #self.history.entries + 1, false
    return
  end
  self:search_from(#self.history.entries)
end

-- Leaves the search with the line shown (accepted) or the one before it.
function Editor:search_end(accept)
  local s = self.search
  self.search = nil
  if s.query ~= "" then self.last_query = s.query end
  if accept then
    if s.at <= #self.history.entries then self.hist_at = s.at end
    return
  end
  self.buf, self.cursor, self.first = s.saved.buf, s.saved.cursor, s.saved.first
end

---------------------------------------------------------------------------
-- Keys
---------------------------------------------------------------------------

-- What each key does; a handler returning a value ends the line with it:
-- the line, false (cancelled) or EOF.
local EOF = {}
M.EOF = EOF
local KEYS = {
  left = function(e) e.cursor = math.max(1, e.cursor - 1) end,
  right = function(e) e.cursor = math.min(#e.buf + 1, e.cursor + 1) end,
  home = function(e) e.cursor = 1 end,
  ["end"] = function(e) e.cursor = #e.buf + 1 end,
  ["alt-b"] = function(e) e.cursor = M.word_start(e.buf, e.cursor) end,
  ["alt-f"] = function(e) e.cursor = M.word_end(e.buf, e.cursor) end,
  backspace = function(e) if e.cursor > 1 then e:cut(e.cursor - 1, e.cursor) end end,
  delete = function(e) if e.cursor <= #e.buf then e:cut(e.cursor, e.cursor + 1) end end,
  ["ctrl-u"] = function(e) e:kill(1, e.cursor) end,
  ["ctrl-k"] = function(e) e:kill(e.cursor, #e.buf + 1) end,
  ["ctrl-w"] = function(e) e:kill(M.blank_start(e.buf, e.cursor), e.cursor) end,
  ["alt-d"] = function(e) e:kill(e.cursor, M.word_end(e.buf, e.cursor)) end,
  ["alt-backspace"] = function(e) e:kill(M.word_start(e.buf, e.cursor), e.cursor) end,
  ["ctrl-y"] = function(e) e:insert(e.killed) end,
  up = function(e) e:recall(-1) end,
  down = function(e) e:recall(1) end,
  tab = function(e) e:complete() end,
  space = function(e) e:insert(" ") end,
  ["ctrl-r"] = function(e) e:search_start() end,
  ["ctrl-l"] = function() term.write(OUT, "\27[H\27[2J") end,
  ["ctrl-c"] = function() return false end,
  enter = function(e) return e:line() end,
  ["ctrl-d"] = function(e)
    if #e.buf == 0 then return EOF end
    if e.cursor <= #e.buf then e:cut(e.cursor, e.cursor + 1) end
  end,
}
KEYS["ctrl-a"], KEYS["ctrl-e"] = KEYS.home, KEYS["end"]
KEYS["ctrl-b"], KEYS["ctrl-f"] = KEYS.left, KEYS.right
KEYS["ctrl-p"], KEYS["ctrl-n"] = KEYS.up, KEYS.down
KEYS["ctrl-left"], KEYS["alt-left"] = KEYS["alt-b"], KEYS["alt-b"]
KEYS["ctrl-right"], KEYS["alt-right"] = KEYS["alt-f"], KEYS["alt-f"]
KEYS["alt-B"], KEYS["alt-F"], KEYS["alt-D"] = KEYS["alt-b"], KEYS["alt-f"], KEYS["alt-d"]

-- In a search; any other key accepts the match and then does its work.
local SEARCH_KEYS = {
  ["ctrl-r"] = function(e) e:search_next() end,
  backspace = function(e) e:search_back() end,
  space = function(e) e:search_type(" ") end,
  escape = function(e) e:search_end(false) end,
  ["ctrl-g"] = function(e) e:search_end(false) end,
}

-- A key that inserts itself: one printable character, or one byte that
-- is not UTF-8 (kept as it is, shown as \xNN).
local function typed(key)
  if #key == 1 and key:byte() >= 0x80 then return true end
  if utf8.len(key) ~= 1 then return false end
  local cp = utf8.codepoint(key)
  return cp >= 32 and cp ~= 127 and not (cp >= 0x80 and cp <= 0x9f)
end

-- Editor:press(key) -> what the key's handler returned
function Editor:press(key)
  if self.search then
    local f = SEARCH_KEYS[key]
    if f then return f(self) end
    if typed(key) then return self:search_type(key) end
    self:search_end(true)
  end
  local handler = KEYS[key]
  if handler then return handler(self) end
  if typed(key) then self:insert(key) end
end

-- The next key: queued (the rest of a paste) or read.
function Editor:next_key()
  if #self.queue == 0 then
    local keys, msg, code = term.read_keys(IN, -1)
    if not keys and code ~= "EINTR" then return nil, msg end
    self.queue = keys or { "ctrl-c" }
  end
  return table.remove(self.queue, 1)
end

-- The line ended: drawn whole, a new line, and what followed Enter (the
-- rest of a paste: the next raw() would flush what is unread) queued.
function Editor:finish()
  self.search, self.cursor = nil, #self.buf + 1
  self:refresh()
  term.write(OUT, "\r\n")
  repeat
    local more = term.read_keys(IN, 0)
    if more then table.move(more, 1, #more, #self.queue + 1, self.queue) end
  until not more or #more == 0
end

-- Editor:read(prompt) -> line | false (Ctrl-C) | nil (Ctrl-D) | nil, msg.
-- Keys that came after Enter (a paste) wait in the queue for the next line.
function Editor:read(prompt)
  io.stdout:flush()
  local raw <close>, rmsg = term.raw(IN)
  if not raw then return nil, rmsg end
  self.prompt, self.buf, self.cursor, self.first, self.search = prompt, {}, 1, 1, nil
  self.hist_at, self.draft = #self.history.entries + 1, ""
  while true do
    local ok, werr = self:refresh()
    if not ok then return nil, werr end
    local key, kerr = self:next_key()
    if not key then return nil, kerr end
    local result = self:press(key)
    if result == false then
      self:cancelled()
      return false
    elseif result ~= nil then
      self:finish()
      if result == EOF then return nil end
      return result
    end
  end
end

-- After an interrupt unwound read(): the line as it was, "^C", a new line.
function Editor:cancelled()
  self.search, self.cursor, self.queue = nil, #self.buf + 1, {}
  self:refresh()
  term.write(OUT, "^C\r\n")
end

return M
