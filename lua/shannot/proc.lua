-- Running child processes: shannot.core.proc with defaults, and results
-- whose captured output is one string plus truncation facts.
local core = require("shannot.core.proc")

local M = {}

M.DEFAULT_MAX_OUTPUT = 1024 * 1024
M.set_subreaper = core.set_subreaper
M.kill_orphan = core.kill_orphan

-- Joins what the capture kept of one stream.  When bytes were dropped,
-- they were dropped at `NAME_dropped_at` (the head's length).
local function join_stream(r, name)
  local head = r[name]
  if head == nil then return end
  local tail, dropped = r[name .. "_tail"], r[name .. "_dropped"]
  r[name] = head .. tail
  r[name .. "_tail"] = nil
  r[name .. "_truncated"] = dropped > 0
  if dropped > 0 then r[name .. "_dropped_at"] = #head end
end

-- join_output(result) -> result with stdout/stderr as single strings and
-- NAME_truncated / NAME_dropped_at set.
function M.join_output(r)
  join_stream(r, "stdout")
  join_stream(r, "stderr")
  return r
end

-- spawn(argv, opts) -> Process | nil, msg, code [, {mount =, reason =}] (see src/proc.c)
M.spawn = core.spawn
M.exec = core.exec

-- run(argv, opts) -> result | nil, msg, code
-- opts: everything spawn and communicate take (env, cwd, stdin, stdout,
-- stderr, keep_fds, input, timeout, kill_grace, max_capture, tee_stdout,
-- tee_stderr).  Output is piped (captured) unless opts say otherwise.
function M.run(argv, opts)
  opts = opts or {}
  local spawn_opts = {
    env = opts.env, cwd = opts.cwd, keep_fds = opts.keep_fds,
    stdin = opts.stdin or (opts.input and "pipe" or "null"),
    stdout = opts.stdout or "pipe", stderr = opts.stderr or "pipe",
    new_pgroup = opts.new_pgroup, die_with_parent = opts.die_with_parent,
  }
  local p <close>, msg, code = core.spawn(argv, spawn_opts)
  if not p then return nil, msg, code end
  local r, cmsg, ccode = p:communicate({
    input = opts.input, timeout = opts.timeout, kill_grace = opts.kill_grace,
    max_capture = opts.max_capture or M.DEFAULT_MAX_OUTPUT,
    tee_stdout = opts.tee_stdout, tee_stderr = opts.tee_stderr, tee_no_strings = opts.tee_no_strings,
  })
  if not r then return nil, cmsg, ccode end
  return M.join_output(r)
end

-- Describes how a finished process ended, for messages.
function M.describe_end(r)
  if r.timed_out then return "timed out and was killed" end
  if r.interrupted then return "was interrupted" end
  if r.signal then return "was killed by signal " .. (r.signal_name or r.signal) end
  return "exited with code " .. tostring(r.code)
end

return M
