-- build/shannot lua scripts/man.lua OUTDIR: writes the man pages into
-- OUTDIR (it must exist) from the very text `shannot help` prints, so the
-- two cannot drift: shannot(1) from the general help, shannot-CMD(1) from
-- each listed command's usage and help, shannot-config(5) from "shannot
-- help config" and shannot-profile(5) from the profile format.
--
-- The help text is plain: paragraphs, "options:" headings, and indented
-- "TERM  description" lists whose continuation lines start at the
-- description's column.  Those become .PP, .SH/.SS and .TP.
local cli = require("shannot.cli")
local const = require("shannot.const")

local outdir = ...
if not outdir then
  io.stderr:write("usage: shannot lua scripts/man.lua OUTDIR\n")
  os.exit(2)
end

local MANUAL = "shannot manual"
local SOURCE = "shannot " .. const.VERSION

-- Escapes text for a roff text line: backslashes, a hyphen that starts a
-- word (an option: "\-\-json", every hyphen of it) as a minus, characters
-- outside ASCII as \[uXXXX].  Leading dots and quotes: see line().
local function esc(s)
  s = s:gsub("\\", "\\e")
  s = s:gsub("[^%s]+", function(word)
    if word:match("^[%(%[\"'|=]*%-") then return (word:gsub("%-", "\\-")) end
  end)
  local ok, out = pcall(function()
    return (s:gsub(utf8.charpattern, function(ch)
      local cp = utf8.codepoint(ch)
      if cp < 128 then return ch end
      return string.format("\\[u%04X]", cp)
    end))
  end)
  return ok and out or (s:gsub("[\128-\255]", "?"))
end

-- A text line that roff never reads as a request (". x", "'x").
local function line(s)
  s = esc(s)
  if s:match("^[.']") then s = "\\&" .. s end
  return s
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function indent_of(s) return #s:match("^ *") end

-- "  TERM   description" -> term, description, the description's column;
-- a sentence's double space ("variant.  First") is no list item.
local function split_item(s)
  local lead, term, gap = s:match("^( *)(%S.-)(%s%s+)%S")
  if not term or #term > 40 or term:match("%a[.;,]$") then return nil end
  return term, s:sub(#lead + #term + #gap + 1), #lead + #term + #gap
end

local HEADINGS = { ["options:"] = "OPTIONS", ["commands:"] = "COMMANDS" }

-- render(text) -> roff lines for the body of a help text.
local function render(text)
  local out, lines = {}, {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = (l:gsub("%s+$", "")) end
  local i, para_start = 1, true
  local function emit(s) out[#out + 1] = s end
  while i <= #lines do
    local l = lines[i]
    if l == "" then
      para_start = true
      i = i + 1
    elseif HEADINGS[l] then
      emit(".SH " .. HEADINGS[l])
      para_start = false
      i = i + 1
    elseif para_start and l:match(":$") and #l < 72 and lines[i + 1] and indent_of(lines[i + 1]) > 0
        and indent_of(l) == 0 then
      emit(".SS")
      emit(line(l:sub(1, -2)))
      para_start = false
      i = i + 1
    elseif indent_of(l) == 0 then
      emit(".PP")
      while lines[i] and lines[i] ~= "" and indent_of(lines[i]) == 0 and not HEADINGS[lines[i]] do
        emit(line(lines[i]))
        i = i + 1
      end
      para_start = false
    else  -- an indented run: list items, continuation lines, indented prose
      local base = indent_of(l)
      local col, prose = math.huge, false
      while lines[i] and lines[i] ~= "" and indent_of(lines[i]) > 0 do
        local cur = lines[i]
        local term, desc, dcol = split_item(cur)
        if indent_of(cur) >= col then  -- the description goes on
          emit(line(trim(cur)))
        elseif term then
          emit(".TP")
          emit("\\fB" .. esc(term) .. "\\fR")
          emit(line(desc))
          col, prose = dcol, false
        else
          if not prose or indent_of(cur) ~= base then emit(".IP") end
          emit(line(trim(cur)))
          col, prose = math.huge, true
        end
        i = i + 1
      end
      para_start = false
    end
  end
  return out
end

local function page(name, section, summary)
  local date = os.getenv("SOURCE_DATE_EPOCH")
  return {
    string.format('.TH "%s" "%s" "%s" "%s" "%s"', name:upper():gsub("%-", "\\-"), section,
      date and os.date("!%Y-%m-%d", tonumber(date)) or "", SOURCE, MANUAL),
    ".nh",
    ".ad l",
    ".SH NAME",
    line(name .. " - " .. summary),
  }
end

local function synopsis(out, usage)
  out[#out + 1] = ".SH SYNOPSIS"
  for n, u in ipairs(usage) do
    if n > 1 then out[#out + 1] = ".br" end
    out[#out + 1] = line(trim(u))
  end
end

local function append(out, more)
  table.move(more, 1, #more, #out + 1, out)
end

local function see_also(out, refs)
  out[#out + 1] = ".SH SEE ALSO"
  for n, r in ipairs(refs) do
    out[#out + 1] = string.format(".BR %s (%s)%s", esc(r[1]), r[2], n < #refs and "," or "")
  end
end

local function write(file, out)
  local path = outdir .. "/" .. file
  local f = assert(io.open(path, "w"))
  assert(f:write(table.concat(out, "\n"), "\n"))
  assert(f:close())
end

local commands = cli.commands()
local all_refs = { { "shannot", 1 } }
for _, c in ipairs(commands) do all_refs[#all_refs + 1] = { "shannot-" .. c[1], 1 } end
all_refs[#all_refs + 1] = { "shannot-config", 5 }
all_refs[#all_refs + 1] = { "shannot-profile", 5 }
all_refs[#all_refs + 1] = { "bwrap", 1 }

local function others(self)
  local refs = {}
  for _, r in ipairs(all_refs) do
    if r[1] ~= self then refs[#refs + 1] = r end
  end
  return refs
end

-- shannot(1): the general help, its usage lines as the synopsis
do
  local general = cli.general_help()
  local tagline = general:match("^[^\n]-: ([^\n]*)")
  local usage, rest = {}, {}
  for l in (general .. "\n"):gmatch("([^\n]*)\n") do
    if l:match("^usage: ") then
      usage[#usage + 1] = l:sub(8)
    elseif #usage > 0 and #rest == 0 and l:match("^       %S") then
      usage[#usage + 1] = l
    elseif #usage > 0 and (#rest > 0 or l ~= "") and l ~= "commands:" and not l:match("^  %S") then
      rest[#rest + 1] = l  -- the command list is written from cli.commands() below
    end
  end
  local out = page("shannot", 1, tagline)
  synopsis(out, usage)
  out[#out + 1] = ".SH DESCRIPTION"
  append(out, render(table.concat(rest, "\n")))
  out[#out + 1] = ".SH COMMANDS"
  for _, c in ipairs(commands) do
    append(out, { ".TP", string.format("\\fB%s\\fR(1)", esc("shannot-" .. c[1])), line(c[2]) })
  end
  see_also(out, others("shannot"))
  write("shannot.1", out)
end

-- shannot-CMD(1)
for _, c in ipairs(commands) do
  local cmd = require("shannot.cmd." .. c[1])
  local name = "shannot-" .. c[1]
  local out = page(name, 1, c[2])
  local usage = {}
  for u in cmd.usage:gmatch("[^\n]+") do usage[#usage + 1] = u end
  synopsis(out, usage)
  out[#out + 1] = ".SH DESCRIPTION"
  append(out, render(cmd.help:gsub("^%s+", "")))
  local refs = { { "shannot", 1 } }
  if c[1] == "config" then refs[#refs + 1] = { "shannot-config", 5 } end
  if c[1] == "profile" or c[1] == "run" then refs[#refs + 1] = { "shannot-profile", 5 } end
  see_also(out, refs)
  write(name .. ".1", out)
end

-- The file formats
do
  local out = page("shannot-config", 5, "the shannot configuration files")
  out[#out + 1] = ".SH DESCRIPTION"
  append(out, render(require("shannot.cmd.config").help))
  see_also(out, { { "shannot", 1 }, { "shannot-config", 1 }, { "shannot-profile", 5 } })
  write("shannot-config.5", out)

  out = page("shannot-profile", 5, "shannot sandbox profiles")
  out[#out + 1] = ".SH DESCRIPTION"
  append(out, render(require("shannot.cmd.profile").format))
  see_also(out, { { "shannot", 1 }, { "shannot-profile", 1 }, { "shannot-run", 1 }, { "bwrap", 1 } })
  write("shannot-profile.5", out)
end
