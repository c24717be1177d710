-- A progress line (issue 18.5): work that may last more than a second
-- (capture's walk, execute, rollback, a remote capture stream) tells how
-- far it is on one line, redrawn in place and cleared at the end:
--   applying: 120/256 ops, 480.0 MiB/1.0 GiB, 95.3 MiB/s, ETA 6s  /etc/x
-- The front end makes the reporter (cli.progress: only on a terminal,
-- never with --quiet or --json) and hands it down in its opts; the work
-- calls start, add and finish, and M.none does nothing.  This module
-- writes nothing itself: `write` and `width` are the front end's.
local text = require("shannot.text")

local M = {}

-- Nothing is drawn before the work has run this long (seconds): what ends
-- sooner shows no line at all; then at most one redraw per INTERVAL.
M.DELAY = 1.0
M.INTERVAL = 0.1

-- The reporter that reports nothing (what the work uses when given none).
local function nothing() end
M.none = setmetatable({ start = nothing, add = nothing, partial = nothing, finish = nothing, clear = nothing,
  hold = nothing, after_output = nothing },
  { __close = nothing })

-- size(bytes) -> "512 B", "3.4 KiB", "1.0 GiB"
function M.size(n)
  if n < 1024 then return string.format("%d B", math.floor(n)) end
  local units = { "KiB", "MiB", "GiB", "TiB" }
  local i = 0
  repeat
    n, i = n / 1024, i + 1
  until n < 1024 or i == #units
  return string.format("%.1f %s", n, units[i])
end

-- duration(seconds) -> "6s", "1m05s", "2h03m"
function M.duration(s)
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%dh%02dm", s // 3600, s % 3600 // 60)
end

-- at most n characters (UTF-8) of s, the middle replaced by "..." when cut
local function middle(s, n)
  local len = utf8.len(s) or #s
  if len <= n then return s end
  if n < 5 then return "" end
  local head, tail = (n - 3) // 2, n - 3 - (n - 3) // 2
  return s:sub(1, utf8.offset(s, head + 1) - 1) .. "..." .. s:sub(utf8.offset(s, len - tail + 1))
end
M.middle = middle

local Reporter = {}
Reporter.__index = Reporter

-- new(how) -> reporter.  how: write(s) (to the terminal), width() ->
-- columns | nil, now() -> seconds (monotonic), delay, interval.
function M.new(how)
  return setmetatable({ write = how.write, width = how.width or function() return 80 end,
    now = how.now or require("shannot.core.sys").monotonic, delay = how.delay or M.DELAY,
    interval = how.interval or M.INTERVAL, shown = false, last = -math.huge }, Reporter)
end

-- start(what, total_ops, total_bytes [, unit]): a phase of the work
-- begins (counts from zero; either total may be nil: not known
-- beforehand; unit: what is counted, default "ops").  The delay runs from
-- the first phase of all.
function Reporter:start(what, total_ops, total_bytes, unit)
  local now = self.now()
  self.born = self.born or now
  self.what, self.total_ops, self.total_bytes, self.unit = what, total_ops, total_bytes, unit or "ops"
  self.ops, self.bytes, self.since, self.path = 0, 0, now, nil
end

-- add(ops, bytes [, path]): so much more done (path: what was last done)
function Reporter:add(ops, bytes, path)
  if not self.what then return end
  self.ops, self.bytes, self.partial = self.ops + (ops or 0), self.bytes + (bytes or 0), 0
  if path then self.path = path end
  self:tick()
end

-- partial(bytes [, path]): so much of one operation still under way (a
-- file crossing to a remote host), shown until add() counts it whole
function Reporter:partial(bytes, path)
  if not self.what then return end
  self.partial, self.path = bytes, path or self.path
  self:tick()
end

function Reporter:tick()
  local now = self.now()
  if self.held or now - self.born < self.delay or now - self.last < self.interval then return end
  self.last = now
  self:draw(now)
end

-- hold(): draw nothing more (what is on the line must stay: a command's
-- output that ended mid-line)
function Reporter:hold()
  self:clear()
  self.held = true
end

-- after_output(tails): a command's output passed through to the terminal
-- (tails: the last bytes of its streams); when one ended mid-line, hold():
-- the line's \r would wipe that partial line.
function Reporter:after_output(tails)
  for _, t in ipairs(tails) do
    if t ~= "" and t:sub(-1) ~= "\n" then return self:hold() end
  end
end

-- line(now, columns) -> the text of the line, at most columns - 1 wide
function Reporter:line(now, columns)
  local elapsed = now - self.since
  local bytes = self.bytes + (self.partial or 0)
  local parts = {}
  if self.unit == "bytes" then  -- a stream: its bytes are the count
    parts[1] = self.what .. ": " .. M.size(bytes)
  else
    parts[1] = self.total_ops and string.format("%s: %d/%d %s", self.what, self.ops, self.total_ops, self.unit)
      or string.format("%s: %d %s", self.what, self.ops, self.unit)
  end
  local stream = self.unit == "bytes"  -- its bytes counted above
  if not stream and self.total_bytes and self.total_bytes > 0 then
    parts[#parts + 1] = M.size(bytes) .. "/" .. M.size(self.total_bytes)
  elseif not stream and bytes > 0 then
    parts[#parts + 1] = M.size(bytes)
  end
  local rate = elapsed > 0 and bytes / elapsed or 0
  if rate > 0 then parts[#parts + 1] = M.size(rate) .. "/s" end
  local left
  if self.total_bytes and self.total_bytes > 0 and rate > 0 then
    left = (self.total_bytes - bytes) / rate
  elseif self.total_ops and self.ops > 0 then
    left = (self.total_ops - self.ops) * elapsed / self.ops
  end
  if left then parts[#parts + 1] = "ETA " .. M.duration(math.max(0, left)) end
  local max = math.max(10, columns - 1)
  local s = middle(text.inert(table.concat(parts, ", ")), max)
  local room = max - (utf8.len(s) or #s) - 2
  if self.path and room >= 12 then s = s .. "  " .. middle(text.inert(self.path), room) end
  return s
end

function Reporter:draw(now)
  self.write("\r" .. self:line(now, self.width() or 80) .. "\27[K")
  self.shown = true
end

-- clear(): the line taken away (before other output, and at the end)
function Reporter:clear()
  if self.shown then
    self.write("\r\27[K")
    self.shown = false
  end
end

-- finish(): the phase is over; the line goes
function Reporter:finish()
  self:clear()
  self.what = nil
end

Reporter.__close = Reporter.finish

return M
