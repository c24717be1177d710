-- Shell code (the CODE of `sh -c CODE`) split into the simple commands it
-- runs, for the deny list: enough of POSIX sh to find each command word
-- and its arguments, not an interpreter.  Quotes and backslashes are
-- honoured; `;` `&&` `||` `|` `&` newlines and ( ) { } separate commands;
-- reserved words (if, then, do, !, ...) and leading VAR=value
-- assignments are dropped; $(...) and `...` are split too, as commands of
-- their own; a redirection's target becomes a command of its own named
-- by the operator (">" "/dev/sda"), so writing a device through the shell
-- can be denied like writing it through cp.  Variables stay as written.
local M = {}

local RESERVED = {
  ["if"] = true, ["then"] = true, ["else"] = true, ["elif"] = true, ["fi"] = true,
  ["do"] = true, ["done"] = true, ["while"] = true, ["until"] = true, ["!"] = true,
  ["{"] = true, ["}"] = true, ["case"] = true, ["esac"] = true, ["in"] = true,
}

-- How deep $(...) inside $(...) is followed.
M.MAX_DEPTH = 8

local Parser = {}
Parser.__index = Parser

local function new(code, depth)
  return setmetatable({ code = code, i = 1, depth = depth or 0, commands = {}, words = {},
    word = nil, redirect = nil }, Parser)
end

function Parser:peek(n) return self.code:sub(self.i, self.i + (n or 1) - 1) end

-- The word grows as a list of pieces (a long word appended to one
-- character at a time would be copied over and over).
function Parser:add_char(c)
  local w = self.word or {}
  w[#w + 1] = c
  self.word = w
end

-- Characters here that are nothing but themselves, taken as one piece.
function Parser:add_run(plain)
  local run = self.code:match(plain, self.i)
  if not run then return false end
  self:add_char(run)
  self.i = self.i + #run
  return true
end

-- The word so far is complete: an argument, or a redirection's target.
function Parser:end_word()
  if self.word == nil then return end
  local word = table.concat(self.word)
  if self.redirect then
    self.commands[#self.commands + 1] = { self.redirect, word }
    self.redirect = nil
  else
    self.words[#self.words + 1] = word
  end
  self.word = nil
end

-- The simple command so far is complete.
function Parser:end_command()
  self:end_word()
  local w, first = self.words, 1
  while w[first] and (RESERVED[w[first]] or w[first]:match("^[%a_][%w_]*=")) do first = first + 1 end
  if w[first] then self.commands[#self.commands + 1] = table.move(w, first, #w, 1, {}) end
  self.words = {}
end

-- The text of a $( ... ) or ` ... ` starting after its opener; the
-- commands inside are split as code of their own.
function Parser:substitution(closer)
  local start, level = self.i, 1
  while self.i <= #self.code do
    local c = self:peek()
    if c == "\\" then
      self.i = self.i + 2
    elseif c == "'" and closer == ")" then
      local close = self.code:find("'", self.i + 1, true)
      self.i = (close or #self.code) + 1
    elseif closer == ")" and self:peek(2) == "$(" then
      level = level + 1
      self.i = self.i + 2
    elseif c == closer then
      level = level - 1
      if level == 0 then break end
      self.i = self.i + 1
    else
      self.i = self.i + 1
    end
  end
  local inner = self.code:sub(start, self.i - 1)
  self.i = self.i + 1
  if self.depth < M.MAX_DEPTH then
    for _, cmd in ipairs(M.split(inner, self.depth + 1)) do self.commands[#self.commands + 1] = cmd end
  end
  return inner
end

-- A $( or ` here: the substitution split and kept in the word as written.
function Parser:substituted()
  local opener = self:peek(2) == "$(" and "$(" or (self:peek() == "`" and "`")
  if not opener then return false end
  local closer = opener == "$(" and ")" or "`"
  self.i = self.i + #opener
  self:add_char(opener .. self:substitution(closer) .. closer)
  return true
end

function Parser:double_quoted()
  self.i = self.i + 1
  self.word = self.word or {}
  while self.i <= #self.code do
    local c = self:peek()
    if c == '"' then self.i = self.i + 1; return end
    if self:add_run('^[^"\\$`]+') then goto continue end
    if c == "\\" and self.code:sub(self.i + 1, self.i + 1):match('[\\"$`\n]') then
      self:add_char(self.code:sub(self.i + 1, self.i + 1))
      self.i = self.i + 2
    elseif not self:substituted() then
      self:add_char(c)
      self.i = self.i + 1
    end
    ::continue::
  end
end

local OPERATORS = { ";", "&", "|", "(", ")", "\n" }

-- One step: a character of a word, a quote, an operator or a blank.
function Parser:step()
  if self.word and self:add_run("^[^ \t\\'\"`$<>;&|()\n]+") then return end
  local c = self:peek()
  if c == "\\" then
    if self.code:sub(self.i + 1, self.i + 1) ~= "\n" then self:add_char(self.code:sub(self.i + 1, self.i + 1)) end
    self.i = self.i + 2
  elseif c == "'" then
    local close = self.code:find("'", self.i + 1, true) or (#self.code + 1)
    self:add_char(self.code:sub(self.i + 1, close - 1))
    self.i = close + 1
  elseif c == '"' then
    self:double_quoted()
  elseif self:substituted() then  -- luacheck: ignore 542
    -- the word goes on after it
  elseif c == "#" and self.word == nil then
    self.i = (self.code:find("\n", self.i, true) or #self.code + 1)
  elseif c:match("[<>]") then
    self:redirection()
  elseif c:match("[ \t]") then
    self:end_word()
    self.i = self.i + 1
  else
    for _, op in ipairs(OPERATORS) do
      if c == op then
        self:end_command()
        self.i = self.i + 1
        return
      end
    end
    self:add_char(c)
    self.i = self.i + 1
  end
end

-- 2>, >>, >|, &>, <, <<, >&2 ...: a digit word before it is the fd, not an
-- argument; the next word is the target (">" names every kind of write).
function Parser:redirection()
  if self.word and table.concat(self.word):match("^%d+$") then self.word = nil end
  local op = self.code:match("^[<>]+[|&]?", self.i)
  self.i = self.i + #op
  if op:find(">", 1, true) then
    if self:peek():match("%d") and op:sub(-1) == "&" then  -- >&2: a descriptor
      self.i = self.i + 1
      return
    end
    self:end_word()
    self.redirect = ">"
  else
    self:end_word()
    self.redirect = "<"
  end
  while self:peek():match("^[ \t]$") do self.i = self.i + 1 end
end

-- split(code [, depth]) -> {{word...}...}: the simple commands of code,
-- substitutions and redirection targets included (see above).
function M.split(code, depth)
  local p = new(code, depth)
  while p.i <= #code do p:step() end
  p:end_command()
  return p.commands
end

-- words(text) -> the words of text as the shell would split one command
-- line (for `env -S STRING`): quotes and backslashes honoured.
function M.words(text)
  local out = {}
  for _, cmd in ipairs(M.split(text)) do
    for _, w in ipairs(cmd) do out[#out + 1] = w end
  end
  return out
end

return M
