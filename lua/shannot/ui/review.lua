-- The interactive review (DESIGN §5): pending sessions, a session's
-- operations with their danger, the diff of a write; approve or deny each
-- operation or all, execute after a y/N, then the results.  Drawn on the
-- alternate screen in raw mode; the terminal is restored on every way
-- out (the Raw handle's close, run by <close> on errors and interrupts).
--
-- Every string reaches the terminal through paint(), which passes it
-- through clean(): a path, argv or output from a script can never move
-- the cursor, set the title or otherwise drive the terminal.
local apply = require("shannot.session.apply")
local const = require("shannot.const")
local err = require("shannot.err")
local session = require("shannot.session")
local term = require("shannot.term")
local opview = require("shannot.session.view")
local text = require("shannot.text")
local wcwidth = require("shannot.wcwidth")

local M = {}

M.POLL_MS = 200   -- how often a resize is looked for while no key comes
M.MIN_COLS, M.MIN_ROWS = 20, 5
local IN, OUT = 0, 1
-- Alternate screen, no autowrap, cursor hidden; and back.
local ENTER = "\27[?1049h\27[?7l\27[?25l\27[0m\27[2J"
local LEAVE = "\27[0m\27[2J\27[?25h\27[?7h\27[?1049l"

local SGR = {
  danger = "31", caution = "33", safe = "32",
  approve = "32", deny = "31;1", review = "1",
  add = "32", del = "31", hunk = "36", file = "1",
  title = "1;7", hints = "7", cursor = "7", prompt = "1;33", dim = "2", bad = "31;1", good = "32",
}

---------------------------------------------------------------------------
-- Making untrusted text inert, measuring and cutting it
---------------------------------------------------------------------------

-- clean(s): see text.inert
M.clean = text.inert

-- Columns a code point takes (shannot.wcwidth, as the REPL's editor counts them).
local char_width = wcwidth.char

-- width(s) -> columns of a clean string
M.width = wcwidth.width

-- cut(s, skip, room) -> piece, its width, columns of skip left over: the
-- part of clean s after `skip` columns that fits in `room` columns.
local function cut(s, skip, room)
  if not s:find("[\128-\255]") then
    local piece = s:sub(skip + 1, skip + room)
    return piece, #piece, math.max(0, skip - #s)
  end
  local parts, w = {}, 0
  for _, cp in utf8.codes(s) do
    local cw = char_width(cp)
    if skip > 0 then
      skip = math.max(0, skip - cw)
    elseif w + cw > room then
      break
    else
      parts[#parts + 1] = utf8.char(cp)
      w = w + cw
    end
  end
  return table.concat(parts), w, skip
end

-- paint(segments, cols, opts) -> one screen line: segments {text, sgr}
-- cleaned, cut (never wrapped) to cols.  opts: base (an SGR under every
-- segment), fill (pad to the full width), left (columns scrolled off).
function M.paint(segs, cols, opts)
  opts = opts or {}
  local base = opts.base and (";" .. opts.base) or ""
  local out, used, skip = {}, 0, opts.left or 0
  for _, seg in ipairs(segs) do
    if used >= cols then break end
    local piece, w
    piece, w, skip = cut(M.clean(seg[1]), skip, cols - used)
    if w > 0 then
      out[#out + 1] = "\27[0" .. base .. (seg[2] and (";" .. seg[2]) or "") .. "m" .. piece
      used = used + w
    end
  end
  if opts.fill and used < cols then
    out[#out + 1] = "\27[0" .. base .. "m" .. string.rep(" ", cols - used)
    used = cols
  end
  out[#out + 1] = "\27[0m"
  if used < cols then out[#out + 1] = "\27[K" end
  return table.concat(out)
end

local function expand_tabs(line)
  if not line:find("\t", 1, true) then return line end
  local col = 0
  return (line:gsub("([^\t]*)\t", function(pre)
    col = col + (utf8.len(pre) or #pre)
    local pad = 8 - col % 8
    col = col + pad
    return pre .. string.rep(" ", pad)
  end))
end

local function command_line(argv)
  local words = {}
  for i, a in ipairs(argv or {}) do words[i] = text.quote(M.clean(a)) end
  return table.concat(words, " ")
end

---------------------------------------------------------------------------
-- What an operation does (as `shannot show` says it)
---------------------------------------------------------------------------

local describe = opview.describe
local octal = opview.octal

-- tail_fit(s, room) -> clean s, or "…" and its end when s is wider than
-- room columns: of a long path the end (the file name) matters most.
local function tail_fit(s, room)
  s = M.clean(s)
  if room < 2 or M.width(s) <= room then return s end
  local cps = {}
  for _, cp in utf8.codes(s) do cps[#cps + 1] = cp end
  local out, w = {}, 0
  for i = #cps, 1, -1 do
    local cw = char_width(cps[i])
    if w + cw > room - 1 then break end
    table.insert(out, 1, utf8.char(cps[i]))
    w = w + cw
  end
  return "\u{2026}" .. table.concat(out)
end

local function target(op, room)
  if op.argv then return command_line(op.argv) end  -- a deferred command, a question
  return room and tail_fit(op.path or "?", room) or (op.path or "?")
end

-- The diff of one write as text, or a line saying why there is none.
local function op_diff(s, op)
  local body, why = opview.diff(s, op)
  if not body then return "(" .. why .. ")" end
  return why and ("(" .. why .. ")\n" .. body) or body
end

local function diff_lines(body)
  local lines = {}
  for line in (body:gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do
    line = expand_tabs(line)
    local style
    if line:find("^%+%+%+ ") or line:find("^%-%-%- ") then style = SGR.file
    elseif line:find("^@@") then style = SGR.hunk
    elseif line:find("^%+") then style = SGR.add
    elseif line:find("^%-") then style = SGR.del
    end
    lines[#lines + 1] = { { line, style } }
  end
  return lines
end

---------------------------------------------------------------------------
-- Moving and scrolling
---------------------------------------------------------------------------

local function clamp(v, lo, hi)
  return math.max(lo, math.min(hi, v))
end

local MOVES = { down = 1, j = 1, ["ctrl-n"] = 1, up = -1, k = -1, ["ctrl-p"] = -1 }
local PAGES = { pgdn = 1, ["ctrl-f"] = 1, pgup = -1, ["ctrl-b"] = -1 }

-- A cursor over n rows, h of them visible: true when key moved it.
local function move_cursor(v, key, n, h)
  local c = v.cursor
  if MOVES[key] then c = c + MOVES[key]
  elseif PAGES[key] then c = c + PAGES[key] * math.max(1, h - 1)
  elseif key == "home" or key == "g" then c = 1
  elseif key == "end" or key == "G" then c = n
  else return false end
  v.cursor = clamp(c, 1, math.max(1, n))
  return true
end

-- The first and last row to show, the cursor's row among them.
local function window(v, n, h)
  v.cursor = clamp(v.cursor, 1, math.max(1, n))
  if v.cursor < v.top then v.top = v.cursor end
  if v.cursor > v.top + h - 1 then v.top = v.cursor - h + 1 end
  v.top = clamp(v.top, 1, math.max(1, n - h + 1))
  return v.top, math.min(n, v.top + h - 1)
end

---------------------------------------------------------------------------
-- Views: title(), rows(ui, h) -> {{segments, selected}}, detail(),
-- hints, key(ui, key) -> handled
---------------------------------------------------------------------------

local HELP = {
  "keys (as in the earlier tool)",
  "",
  "  j k, Up Down      move (PgUp PgDn Home End, g G: page, top, bottom)",
  "  Left Right        scroll a diff or text sideways",
  "  Enter             open: a session, then an operation (a write: its diff)",
  "  Space             approve / deny the operation under the cursor",
  "                    (an operation denied by policy stays denied)",
  "  a                 approve every operation not denied by policy",
  "  n                 deny every operation",
  "  x                 execute the approved operations (asks y/N first)",
  "  r                 reject the whole session (asks y/N first)",
  "  s                 the script the session ran, and why it was run",
  "  ?                 this help",
  "  q, Escape         back; quit from the first screen",
  "  Ctrl-L            redraw",
  "",
  "colours: danger red, caution yellow, safe green; in a diff + green, - red, @@ cyan",
}

-- A scrollable text: lines of segments.
local Text = {}
Text.__index = Text

local function new_text(title, lines, hints)
  return setmetatable({ heading = title, lines = lines, top = 1, left = 0,
    hints = hints or "j/k scroll  Left/Right sideways  q back  ? keys" }, Text)
end

function Text:title() return self.heading end
function Text.detail() return "" end

function Text:rows(_, h)
  self.top = clamp(self.top, 1, math.max(1, #self.lines - h + 1))
  local out = {}
  for i = self.top, math.min(#self.lines, self.top + h - 1) do
    out[#out + 1] = { self.lines[i], false, self.left }
  end
  return out
end

function Text:key(ui, key)
  local h = ui:body_height()
  if MOVES[key] then self.top = self.top + MOVES[key]
  elseif PAGES[key] then self.top = self.top + PAGES[key] * math.max(1, h - 1)
  elseif key == "home" or key == "g" then self.top = 1
  elseif key == "end" or key == "G" then self.top = math.max(1, #self.lines - h + 1)
  elseif key == "right" or key == "l" then self.left = self.left + 8
  elseif key == "left" or key == "h" then self.left = math.max(0, self.left - 8)
  else return false end
  self.top = clamp(self.top, 1, math.max(1, #self.lines - h + 1))
  return true
end

-- The diff (or details) of one operation: a Text whose Space toggles it.
local OpText = setmetatable({}, { __index = Text })
OpText.__index = OpText

function OpText:title()
  local ops = self.ops
  return string.format("op %d of %d  %s %s  [%s]", self.op.id, #ops.s.operations, self.op.kind,
    target(self.op), ops.choice[self.op.id])
end

function OpText:detail() return self.ops:op_detail(self.op) end

function OpText:key(ui, key)
  if key == "space" then
    self.ops:toggle(ui, self.op)
    return true
  end
  return Text.key(self, ui, key)
end

local function details_lines(op)
  local lines = { { { describe(op) } }, { { "" } } }
  local function add(k, v)
    lines[#lines + 1] = { { string.format("%-10s ", k), SGR.dim }, { tostring(v) } }
  end
  add("kind", op.kind)
  if op.kind == "exec" then
    add("command", command_line(op.argv))
    add("cwd", op.cwd or "/")
  elseif op.kind == "query" then
    add("question", command_line(op.argv))
  else
    add("path", op.path)
  end
  add("decision", op.decision or "review")
  add("danger", op.danger or "?")
  add("reason", op.reason or "")
  for _, side in ipairs({ "new", "base" }) do
    local t = op[side]
    if type(t) == "table" then
      local keys = {}
      for k in pairs(t) do
        if not tostring(k):find("_hex$") then keys[#keys + 1] = tostring(k) end
      end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local v = t[k]
        if k == "mode" and math.type(v) == "integer" then v = octal(v) end
        add(side .. "." .. k, v)
      end
    end
  end
  return lines
end

---------------------------------------------------------------------------
-- A session's operations
---------------------------------------------------------------------------

local Ops = {}
Ops.__index = Ops

local function new_ops(s)
  local v = setmetatable({ s = s, choice = {}, cursor = 1, top = 1,
    hints = "Space approve/deny  a all  n none  Enter diff  s script  x execute  r reject  q back  ? keys" }, Ops)
  for _, op in ipairs(s.operations) do
    local d = op.decision
    v.choice[op.id] = (d == "deny" or d == "approve") and d or "review"
  end
  return v
end

function Ops:counts()
  local c = { approve = 0, deny = 0, review = 0 }
  for _, op in ipairs(self.s.operations) do
    local k = self.choice[op.id]
    c[k] = c[k] + 1
  end
  return c
end

function Ops:title()
  local c = self:counts()
  local failure = session.run_failure(self.s)
  local at = opview.remote_at(self.s)
  return string.format("%s%s%s  %d ops: %d approve, %d deny, %d to review", self.s.id,
    at and ("  on " .. text.inert(at)) or "", failure and ("  FAILED RUN: " .. failure) or "",
    #self.s.operations, c.approve, c.deny, c.review)
end

function Ops:rows(ui, h)
  local ops = self.s.operations
  local first, last = window(self, #ops, h)
  local out = {}
  for i = first, last do
    local op = ops[i]
    local c = self.choice[op.id]
    out[#out + 1] = { {
      { string.format("%4d ", op.id) },
      { string.format("%-8s", c), SGR[c] },
      { string.format("%-8s", op.danger or "?"), SGR[op.danger] },
      { string.format("%-12s", op.kind) },
      { target(op, ui.cols - 33) },
    }, i == self.cursor }
  end
  if #ops == 0 then out[1] = { { { "  (this session changes nothing)" } } } end
  return out
end

function Ops.op_detail(_, op)
  local locked = op.decision == "deny" and " (denied by policy)" or ""
  local why = op.reason and ("; " .. op.reason) or ""
  return describe(op) .. locked .. why
end

function Ops:detail()
  local op = self.s.operations[self.cursor]
  return op and self:op_detail(op) or ""
end

function Ops:toggle(ui, op)
  if op.decision == "deny" then
    ui:say("op %d is denied by policy (%s); it cannot be approved here", op.id, op.reason or "no reason given")
    return
  end
  self.choice[op.id] = self.choice[op.id] == "approve" and "deny" or "approve"
end

function Ops:set_all(ui, want)
  local n, locked = 0, 0
  for _, op in ipairs(self.s.operations) do
    if want == "approve" and op.decision == "deny" then
      locked = locked + 1
    else
      self.choice[op.id] = want
      n = n + 1
    end
  end
  if want == "approve" then
    ui:say("%d operations approved%s", n, locked > 0 and string.format("; %d stay denied by policy", locked) or "")
  else
    ui:say("every operation denied; r rejects the session")
  end
end

function Ops:open(ui)
  local op = self.s.operations[self.cursor]
  if not op then return end
  local lines
  if op.kind == "write" then
    lines = diff_lines(op_diff(self.s, op))
  else
    lines = details_lines(op)
  end
  local t = new_text(nil, lines, "j/k scroll  Left/Right sideways  Space approve/deny  q back  ? keys")
  t.ops, t.op = self, op
  ui:push(setmetatable(t, OpText))
end

M.MAX_SCRIPT = 4 * 1024 * 1024  -- of a script shown in the review

-- script_lines(s) -> the lines of the script view: why the session was
-- made, then the script as it ran (control characters shown escaped)
local function script_lines(s)
  local lines = {}
  local function add(l, sgr) lines[#lines + 1] = { { l, sgr } } end
  if s.client then add(string.format("asked by MCP client %s %s", text.inert(s.client.name),
    text.inert(s.client.version))) end
  if s.rationale then
    add("why:", SGR.caution)
    for l in (s.rationale .. "\n"):gmatch("([^\n]*)\n") do add("  " .. text.inert(l)) end
  else
    add("why: (not given; run --why TEXT says it)")
  end
  add("")
  if not s.script then
    add("command: " .. text.inert(text.command_line(s.command or {})) .. " (a command, not a script)")
    return lines
  end
  add(string.format("script %s, %s, sha256 %s", text.inert(s.script.name), opview.size(s.script.size),
    s.script.sha256), SGR.caution)
  local data, e = require("shannot.capture.script").read(session.dir(s.id), s, M.MAX_SCRIPT)
  if not data then
    add(e.message, SGR.danger)
    return lines
  end
  for l in (data:sub(-1) == "\n" and data or data .. "\n"):gmatch("([^\n]*)\n") do add(text.inert(l)) end
  return lines
end

-- The session as it is on disk now, still pending, or nil (said).
local function fresh(ui, id)
  local s, e = session.current(id, { config = ui.cfg, actor = "ui", warn = ui.warn })
  if not s then
    ui:say("%s", e.message)
    return nil
  end
  if s.status ~= "pending" then
    ui:say("session %s is %s now; only a pending session can be reviewed", s.id, s.status)
    return nil
  end
  return s
end

local function result_lines(s, e, cols)
  local lines = {}
  local function add(...) lines[#lines + 1] = { ... } end
  if not s then
    add({ "execution refused; nothing was changed:", SGR.bad })
    for part in (e.message .. "; "):gmatch("(.-); ") do add({ "  " .. part }) end
    return lines
  end
  local ops = {}
  for _, op in ipairs(s.operations) do ops[op.id] = op end
  for _, r in ipairs(s.results) do
    local op = ops[r.id] or { kind = "?" }
    local status = r.ok and { "  ok     ", SGR.good } or { "  FAILED ", SGR.bad }
    add(status, { string.format("%4d %-11s ", r.id, op.kind) }, { target(op, (cols or 80) - 26) })
    if not r.ok then
      add({ "         " .. tostring(r.error or ("exit " .. tostring(r.code))), SGR.bad })
    end
    for _, stream in ipairs({ "stdout", "stderr" }) do
      if type(r[stream]) == "string" and r[stream] ~= "" then
        for line in (r[stream]:gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do
          add({ string.format("         %s| ", stream), SGR.dim }, { expand_tabs(line) })
        end
      end
    end
  end
  if #s.results == 0 then add({ "  (no operation was approved)" }) end
  add({ "" })
  add({ string.format("session %s %s; undo with: shannot rollback %s", s.id, s.status, s.id),
    s.status == "executed" and SGR.good or SGR.bad })
  return lines
end

-- Approves what was chosen, under the session's lock, with the policy of
-- now: a deny rule added since the capture denies.  -> s, approved, denied
function Ops:approve_chosen(ui)
  local lock <close>, lerr = session.lock(self.s.id, "approved")
  if not lock then return ui:say("%s", lerr.message) end
  local s = fresh(ui, self.s.id)
  if not s then return end
  local now_denied, perr = require("shannot.policy").recheck(s, ui.cfg)
  if not now_denied then
    return ui:say("not approved: the policy cannot be evaluated: %s", err.is(perr) and perr.message or tostring(perr))
  end
  local approved, denied = 0, 0
  for _, op in ipairs(s.operations) do
    local c = self.choice[op.id]
    if op.decision ~= "deny" and c == "approve" then
      if op.decision ~= "approve" then op.reason = "approved by " .. ui.user .. " in the review" end
      op.decision = "approve"
      approved = approved + 1
    else
      if op.decision ~= "deny" then op.reason = "denied by " .. ui.user .. " in the review" end
      op.decision = "deny"
      denied = denied + 1
    end
  end
  local note = string.format("%d operations approved, %d denied in the review", approved, denied)
  if #now_denied > 0 then note = note .. string.format(" (%d by the policy of now)", #now_denied) end
  local ok, terr = session.transition(s, "approved", { note = note, config = ui.cfg, actor = "ui",
    warn = ui.warn })
  if not ok then return ui:say("%s", terr.message) end
  return s, approved, denied
end

-- Approves what was chosen, moves the session to approved, executes it
-- and replaces this view with the results.
function Ops:execute(ui)
  local s, approved, denied = self:approve_chosen(ui)
  if not s then return end
  ui:say("executing %d operations of %s ...", approved, s.id)
  ui:draw()
  local done, e = apply.execute(s.id, { config = ui.cfg, actor = "ui", warn = ui.warn })
  if done then
    -- the results view shows every operation with its result
    local ok, merr = session.materialize(done)
    if not ok then done, e = nil, merr end
  end
  ui.clear, ui.message = true, nil  -- wipe anything a warning wrote meanwhile
  local title
  if done then
    local deferred_failed = done.execution.deferred_failed or 0
    local failures = deferred_failed > 0 and string.format(", %d deferred command(s) failed", deferred_failed) or ""
    title = string.format("results: %s %s%s", done.id, done.status, failures)
    ui.log[#ui.log + 1] = string.format("session %s %s%s (%d approved, %d denied); undo with: shannot rollback %s",
      done.id, done.status, failures, approved, denied, done.id)
    if done.status ~= "executed" or deferred_failed > 0 then ui.exit = const.EXIT.FAILED end
  else
    title = string.format("results: %s refused", s.id)
    ui.log[#ui.log + 1] = string.format("session %s approved but not executed: %s", s.id, e.message)
    ui.exit = e.exit or const.EXIT.FAILED
  end
  ui:replace(new_text(title, result_lines(done, e, ui.cols), "j/k scroll  Left/Right sideways  q back  ? keys"))
end

local function reject(ui, id)
  local lock <close>, lerr = session.lock(id, "denied")
  if not lock then
    ui:say("%s", lerr.message)
    return false
  end
  local s = fresh(ui, id)
  if not s then return false end
  local ok, terr = session.transition(s, "rejected", { note = "rejected in the review by " .. ui.user,
    config = ui.cfg, actor = "ui", warn = ui.warn, extra = { reason = "rejected in the review" } })
  if not ok then
    ui:say("%s", terr.message)
    return false
  end
  ui.log[#ui.log + 1] = "rejected " .. s.id
  ui:say("rejected %s", s.id)
  return true
end

-- Keys that decide, which a variant's sample session only shows.
local DECIDING = { space = true, a = true, n = true, x = true, r = true }

function Ops:key(ui, key)
  local ops = self.s.operations
  if move_cursor(self, key, #ops, ui:body_height()) then return true end
  if self.browse and DECIDING[key] then
    ui:say("%s; a in the run's list approves the whole variant", self.browse)
    return true
  end
  if key == "space" then
    if ops[self.cursor] then self:toggle(ui, ops[self.cursor]) end
  elseif key == "enter" or key == "right" then
    self:open(ui)
  elseif key == "s" then
    ui:push(new_text("script and why of " .. self.s.id, script_lines(self.s)))
  elseif key == "a" then
    self:set_all(ui, "approve")
  elseif key == "n" then
    self:set_all(ui, "deny")
  elseif key == "x" then
    local c = self:counts()
    if c.review > 0 then
      ui:say("%d operations are still to review: Space decides one, a approves all, n denies all", c.review)
    elseif c.approve == 0 then
      ui:say("no operation is approved; r rejects the session")
    else
      local failure = session.run_failure(self.s)
      local warning = failure and string.format("the run %s and may have captured only part of its work; ",
        failure) or ""
      ui:ask(string.format("%sexecute %d operations (%d denied) on %s? [y/N]", warning, c.approve, c.deny,
        text.inert(opview.where(self.s))),
        function() self:execute(ui) end)
    end
  elseif key == "r" then
    ui:ask("reject this whole session? [y/N]", function()
      if reject(ui, self.s.id) then ui:pop() end
    end)
  elseif key == "left" then
    ui:pop()
  else
    return false
  end
  return true
end

---------------------------------------------------------------------------
-- A fleet run's variants
---------------------------------------------------------------------------

local Variants = {}
Variants.__index = Variants

local DANGER_RANK = { safe = 1, caution = 2, danger = 3 }

local function new_variants(id)
  return setmetatable({ id = id, items = {}, cursor = 1, top = 1,
    hints = "j/k move  Enter look  a approve the variant  q back  ? keys" }, Variants)
end

function Variants:enter(ui)
  local run, e = require("shannot.fleet.runs").load(self.id)
  self.items = {}
  if not run then return ui:say("%s", e.message) end
  local g = require("shannot.fleet.variants").of(run, { config = ui.cfg, actor = "ui", warn = ui.warn })
  self.run = run
  for _, v in ipairs(g.variants) do self.items[#self.items + 1] = { variant = v } end
  for _, o in ipairs(g.others) do self.items[#self.items + 1] = { other = o } end
end

function Variants:title()
  return string.format("run %s: %d hosts, %d variants", self.id, self.run and #self.run.hosts or 0,
    #self.items)
end

local function worst_danger(s)
  if type(s.operations) ~= "table" then return s.worst_danger or "-" end
  local worst = #s.operations > 0 and "safe" or "-"
  for _, op in ipairs(s.operations) do
    if (DANGER_RANK[op.danger] or 0) > (DANGER_RANK[worst] or 0) then worst = op.danger end
  end
  return worst
end

-- "6 pending", "4 approved, 2 pending"
local function statuses(v)
  local n, order = {}, {}
  for _, s in ipairs(v.sessions) do
    if not n[s.status] then order[#order + 1] = s.status end
    n[s.status] = (n[s.status] or 0) + 1
  end
  for i, st in ipairs(order) do order[i] = n[st] .. " " .. st end
  return table.concat(order, ", ")
end

function Variants:rows(_, h)
  local first, last = window(self, #self.items, h)
  local out = {}
  for i = first, last do
    local it = self.items[i]
    local v, o = it.variant, it.other
    if v then
      local worst = worst_danger(v.session)
      out[#out + 1] = { {
        { string.format("%-3s %3d host%s  %4d ops  ", v.label, #v.hosts, #v.hosts == 1 and " " or "s",
          #v.session.operations) },
        { string.format("%-8s", worst), SGR[worst] },
        { string.format("%-12s  ", statuses(v)) },
        { text.inert(table.concat(v.hosts, " ")) },
      }, i == self.cursor }
    else
      out[#out + 1] = { {
        { string.format("    %3d host%s  ", #o.hosts, #o.hosts == 1 and " " or "s") },
        { string.format("%-12s  ", o.state), SGR.dim },
        { text.inert(table.concat((function()
          local names = {}
          for k, x in ipairs(o.hosts) do names[k] = x.name end
          return names
        end)(), " ")) },
      }, i == self.cursor }
    end
  end
  if #self.items == 0 then out[1] = { { { "  no host of this run captured anything; q goes back" } } } end
  return out
end

function Variants:detail()
  local it = self.items[self.cursor]
  if not it then return "" end
  if it.variant then
    local v = it.variant
    return v.label == "A" and "the change most hosts share; Enter shows it as captured on " .. v.hosts[1]
      or require("shannot.fleet.variants").what_differs(v)
  end
  local h1 = it.other.hosts[1]
  return h1.error and (h1.name .. ": " .. h1.error) or ""
end

-- Approves every pending session of variant v (each under its lock, with
-- the policy of now), and says how many.
local function approve_variant(ui, v)
  local approved, refused = require("shannot.fleet.variants").approve(v, { config = ui.cfg, actor = "ui",
    warn = ui.warn, who = ui.user })
  local problems = {}
  for i, r in ipairs(refused) do problems[i] = r.host .. ": " .. r.message end
  ui.log[#ui.log + 1] = string.format("variant %s: %d of %d sessions approved%s", v.label, #approved, #v.sessions,
    #problems > 0 and ("; not: " .. table.concat(problems, "; ")) or "")
  ui:say("%s", ui.log[#ui.log])
end

function Variants:key(ui, key)
  if move_cursor(self, key, #self.items, ui:body_height()) then return true end
  local it = self.items[self.cursor]
  local v = it and it.variant
  if (key == "enter" or key == "right") and v then
    local ops = new_ops(v.session)
    ops.browse = string.format("variant %s as captured on %s", v.label, v.hosts[1])
    ops.hints = "Enter diff  q back  ? keys"
    ui:push(ops)
  elseif key == "a" and v then
    ui:ask(string.format("approve variant %s: every operation not denied, on %d host%s (%s)? [y/N]", v.label,
      #v.hosts, #v.hosts == 1 and "" or "s", text.inert(table.concat(v.hosts, " "))), function()
      approve_variant(ui, v)
      self:enter(ui)
    end)
  else
    return false
  end
  return true
end

---------------------------------------------------------------------------
-- The pending sessions
---------------------------------------------------------------------------

local Sessions = {}
Sessions.__index = Sessions

function Sessions:enter(ui)
  local list, problems = session.list({ status = "pending", config = ui.cfg, actor = "ui",
    warn = ui.warn })
  -- a fleet run's sessions are one row, its run's: reviewed by variant
  local items, runs = {}, {}
  for _, s in ipairs(list) do
    if s.fleet_run then
      if not runs[s.fleet_run] then
        runs[s.fleet_run] = { run = s.fleet_run, pending = 0, command = s.command }
        items[#items + 1] = runs[s.fleet_run]
      end
      runs[s.fleet_run].pending = runs[s.fleet_run].pending + 1
    else
      items[#items + 1] = s
    end
  end
  list = items
  self.items = list
  if #problems > 0 then ui:say("%d sessions could not be read: %s", #problems, problems[1]) end
end

function Sessions:title()
  return string.format("shannot: pending sessions: %d", #self.items)
end

function Sessions:rows(_, h)
  local first, last = window(self, #self.items, h)
  local out = {}
  for i = first, last do
    local s = self.items[i]
    if s.run then
      out[#out + 1] = { {
        { s.run .. "  " }, { string.format("fleet run: %d pending host%s  ", s.pending, s.pending == 1 and "" or "s"),
          SGR.title }, { command_line(s.command) } }, i == self.cursor }
      goto continue
    end
    local worst = worst_danger(s)
    out[#out + 1] = { {
      { s.id .. "  " },
      { string.format("%4d ops  ", session.count(s)) },
      { string.format("%-8s", worst), SGR[worst] },
      session.run_failure(s) and { "FAILED RUN  ", SGR.bad } or { "" },
      { s.target and ("on " .. text.inert(opview.remote_at(s)) .. "  ") or "" },
      { command_line(s.command) },
    }, i == self.cursor }
    ::continue::
  end
  if #self.items == 0 then out[1] = { { { "  no pending session; q quits" } } } end
  return out
end

function Sessions:detail()
  local s = self.items[self.cursor]
  if not s then return "" end
  if s.run then return "Enter: its variants (hosts grouped by identical change)" end
  return string.format("created %s, expires %s, profile %s", s.created_at, s.expires_at, tostring(s.profile))
end

function Sessions:key(ui, key)
  if move_cursor(self, key, #self.items, ui:body_height()) then return true end
  local s = self.items[self.cursor]
  if (key == "enter" or key == "right") and s and s.run then
    ui:push(new_variants(s.run))
  elseif key == "r" and s and s.run then
    ui:say("a fleet run is rejected host by host: shannot deny ID")
  elseif (key == "enter" or key == "right") and s then
    local now = fresh(ui, s.id)
    if now then ui:push(new_ops(now)) else self:enter(ui) end
  elseif key == "r" and s then
    ui:ask(string.format("reject %s? [y/N]", s.id), function()
      reject(ui, s.id)
      self:enter(ui)
    end)
  else
    return false
  end
  return true
end

---------------------------------------------------------------------------
-- The screen
---------------------------------------------------------------------------

local UI = {}
UI.__index = UI

function UI:body_height()
  return math.max(1, self.rows - 3)
end

function UI:say(fmt, ...)
  self.message = string.format(fmt, ...)
end

-- ask(question, yes): the question at the foot of the screen; yes() on "y"
function UI:ask(question, yes)
  self.prompt = { text = question, yes = yes }
end

function UI:push(v)
  self.stack[#self.stack + 1] = v
  if v.enter then v:enter(self) end
end

function UI:pop()
  self.stack[#self.stack] = nil
  local top = self.stack[#self.stack]
  if top and top.enter then top:enter(self) end
end

function UI:replace(v)
  self.stack[#self.stack] = v
  if v.enter then v:enter(self) end
end

-- wrapped(text, cols) -> text in lines of at most cols bytes, broken at
-- spaces (a longer word cut where it must)
local function wrapped(s, cols)
  local out, line = {}, nil
  for word in s:gmatch("%S+") do
    while #word > cols do
      if line then out[#out + 1], line = line, nil end
      out[#out + 1], word = word:sub(1, cols), word:sub(cols + 1)
    end
    if line and #line + 1 + #word <= cols then
      line = line .. " " .. word
    else
      if line then out[#out + 1] = line end
      line = word
    end
  end
  out[#out + 1] = line or ""
  return out
end

function UI:draw()
  local cols, rows = self.cols, self.rows
  local buf = { self.clear and "\27[2J" or "" }
  self.clear = false
  if cols < M.MIN_COLS or rows < M.MIN_ROWS then
    buf[#buf + 1] = "\27[H" .. M.paint({ { "terminal too small" } }, cols)
    return term.write(OUT, table.concat(buf))
  end
  local view = self.stack[#self.stack]
  local h = self:body_height()
  local lines = { M.paint({ { view:title() } }, cols, { base = SGR.title, fill = true }) }
  local body = view:rows(self, h)
  -- a question is shown whole, its "[y/N]" included: wrapped, over the
  -- last rows of the list if it needs them
  local question = self.prompt and wrapped(self.prompt.text, cols) or {}
  local shown = math.min(#question, h + 1)
  for i = 1, h + 1 - math.max(shown, 1) do
    local r = body[i]
    lines[#lines + 1] = r and M.paint(r[1], cols, { base = r[2] and SGR.cursor or nil, fill = r[2], left = r[3] })
      or M.paint({}, cols)
  end
  if self.prompt then
    for i = 1, shown do lines[#lines + 1] = M.paint({ { question[i], SGR.prompt } }, cols) end
  elseif self.message then
    lines[#lines + 1] = M.paint({ { self.message, "1" } }, cols)
  else
    lines[#lines + 1] = M.paint({ { view:detail(), SGR.dim } }, cols)
  end
  lines[#lines + 1] = M.paint({ { view.hints } }, cols, { base = SGR.hints, fill = true })
  for r, line in ipairs(lines) do buf[#buf + 1] = string.format("\27[%d;1H", r) .. line end
  return term.write(OUT, table.concat(buf))
end

-- resized() -> true when the terminal's size changed (and is now known)
function UI:resized()
  local cols, rows = term.size(OUT)
  if not cols or (cols == self.cols and rows == self.rows) then return false end
  self.cols, self.rows, self.clear = cols, rows, true
  return true
end

function UI:handle(key)
  self.message = nil
  if self.prompt then
    local p = self.prompt
    self.prompt = nil
    if key == "y" or key == "Y" then p.yes() else self:say("cancelled") end
    return
  end
  local view = self.stack[#self.stack]
  if key == "?" then
    if view.heading ~= "help" then self:push(new_text("help", (function()
      local out = {}
      for i, l in ipairs(HELP) do out[i] = { { l } } end
      return out
    end)(), "q back")) end
  elseif key == "ctrl-l" then
    self.clear = true
  elseif not view:key(self, key) then
    if key == "q" or key == "escape" or key == "backspace" or key == "ctrl-c" then
      self:pop()
    elseif key ~= "unknown" then
      self:say("%s does nothing here; ? shows the keys", key)
    end
  end
end

function UI:loop()
  self:draw()
  while #self.stack > 0 do
    local keys, msg = term.read_keys(IN, M.POLL_MS)
    if not keys then return nil, err.env("review: %s", msg) end
    local redraw = self:resized()
    for _, key in ipairs(keys) do
      if #self.stack == 0 then break end
      self:handle(key)
      redraw = true
    end
    if redraw and #self.stack > 0 then
      local ok, werr = self:draw()
      if not ok then return nil, err.env("review: %s", werr) end
    end
  end
  return true
end

-- run(opts) -> exit code | nil, err.  opts.config; opts.id opens that
-- session directly (it must be pending), opts.run a fleet run's
-- variants, else the list of pending ones.
function M.run(opts)
  local ids = require("shannot.core.sys").ids()
  local ui = setmetatable({ cfg = opts.config, stack = {}, log = {}, exit = const.EXIT.OK,
    user = ids.user or ("uid " .. ids.uid) }, UI)
  ui.warn = function(fmt, ...) ui:say(fmt, ...) end  -- the audit log's troubles, shown in the review
  local cols, rows, serr = term.size(OUT)
  if not cols then return nil, err.env("review: %s", rows or serr) end
  ui.cols, ui.rows = cols, rows
  if opts.run then
    ui:push(new_variants(opts.run))
    if #ui.stack[1].items == 0 and ui.message then return nil, err.usage("%s", ui.message) end
  elseif opts.id then
    local s, e = session.current(opts.id, { config = opts.config, actor = "ui", warn = ui.warn })
    if not s then return nil, e end
    ui:push(new_ops(s))
  else
    ui:push(setmetatable({ items = {}, cursor = 1, top = 1,
      hints = "j/k move  Enter open  r reject  q quit  ? keys" }, Sessions))
  end
  io.stdout:flush()
  local ok, lerr
  do
    local raw <close>, rmsg = term.raw(IN, LEAVE, OUT)
    if not raw then return nil, err.env("review: %s", rmsg) end
    ok, lerr = term.write(OUT, ENTER)
    if ok then ok, lerr = ui:loop() end
  end
  for _, line in ipairs(ui.log) do io.stdout:write(M.clean(line), "\n") end
  if not ok then return nil, err.is(lerr) and lerr or err.env("review: %s", tostring(lerr)) end
  return ui.exit
end

return M
