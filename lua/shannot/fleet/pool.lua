-- Many shannot processes at once (issue 16.2): a fleet's hosts each get a
-- child process of their own (as Ansible forks), at most `forks` at a
-- time, so one host's hang, crash or memory stays its own and the
-- controlling process only waits.  Each child's stdout and stderr go to
-- files the caller names.
local proc = require("shannot.core.proc")
local sys = require("shannot.core.sys")

local M = {}

-- How often running children are looked at (seconds).
M.TICK = 0.01

-- self() -> the path of this very binary, so children run the same code
function M.self()
  return require("shannot.fs").realpath("/proc/self/exe") or "shannot"
end

-- run(jobs, opts) -> statuses ({code} | {signal, signal_name} | {error},
-- by job index), interrupted.  jobs: {argv, stdout_file, stderr_file}.
-- opts: forks (default 8), on_end(i, status), tick() (called between
-- looks), display (display()'s: told when each job starts and ends, job i
-- being its host offset + i).  An interrupt (Ctrl-C) kills every running
-- child and starts no more.
function M.run(jobs, opts)
  opts = opts or {}
  local forks = math.max(1, opts.forks or 8)
  local running, statuses = {}, {}
  local next_job, active = 1, 0
  local d, offset = opts.display, opts.offset or 0
  local function finish(i, status)
    statuses[i] = status
    if d then d.started[offset + i], d.done = nil, d.done + 1 end
    if opts.on_end then opts.on_end(i, status) end
  end
  while next_job <= #jobs or active > 0 do
    if sys.interrupted() then
      for i, p in pairs(running) do
        p:kill("KILL")
        p:close()
        finish(i, { error = "interrupted" })
      end
      return statuses, true
    end
    while active < forks and next_job <= #jobs do
      local i, job = next_job, jobs[next_job]
      next_job = next_job + 1
      local p, msg = proc.spawn(job.argv, { stdin = "null", stdout_file = job.stdout_file,
        stderr_file = job.stderr_file, die_with_parent = true })
      if p then
        running[i], active = p, active + 1
        if d then d.started[offset + i] = sys.monotonic() end
      else
        finish(i, { error = msg })
      end
    end
    for i, p in pairs(running) do
      local status = p:poll()
      if status then
        running[i], active = nil, active - 1
        p:close()
        finish(i, status)
      end
    end
    if opts.tick then opts.tick() end
    if d then d.tick() end
    if active > 0 then sys.sleep(M.TICK) end
  end
  return statuses, false
end

-- display(hosts, what [, quiet]) -> d: the live display of a pool over hosts (each
-- with a name): on a terminal one status line ("capturing: 3/8 done, 4
-- running (web1 2s, ...)"), redrawn, under the plain lines of the hosts
-- done; otherwise only the plain lines.  d.started[i] = when host i
-- started; d.done; d.line(s) prints a host's line; d.tick() redraws;
-- d.clear() at the end.
function M.display(hosts, what, quiet)
  local term = require("shannot.term")
  local text = require("shannot.text")
  local tty = not quiet and term.isatty(2)
  local d = { started = {}, done = 0, shown = false }
  local last = 0
  local function clear()
    if d.shown then io.stderr:write("\r\27[K") d.shown = false end
  end
  function d.line(s)
    clear()
    io.stderr:write(s, "\n")
  end
  function d.tick(force)
    if not tty then return end
    local now = sys.monotonic()
    if not force and now - last < 0.1 then return end
    last = now
    local names, running = {}, 0
    for i = 1, #hosts do
      local t0 = d.started[i]
      if t0 then
        running = running + 1
        if #names < 4 then names[#names + 1] = string.format("%s %.0fs", hosts[i].name, now - t0) end
      end
    end
    local cols = (term.size and term.size(2)) or 80
    local s = string.format("%s: %d/%d done, %d running%s", what, d.done, #hosts, running,
      #names > 0 and (" (" .. table.concat(names, ", ") .. (running > #names and ", ..." or "") .. ")") or "")
    clear()
    io.stderr:write(text.inert(s):sub(1, math.max(20, cols - 1)))
    d.shown = true
  end
  d.clear = clear
  return d
end

return M
