-- A terminal for specs: the real binary in a tmux pane of its own (a
-- unique server socket), keys sent, the screen polled until it shows
-- what a spec waits for.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")
local assert = require("luassert")

local M = {}

M.TIMEOUT = 15  -- seconds a screen may take to show (ASan is slow)

local Tmux = {}
Tmux.__index = Tmux
local serial = 0

function M.available()
  return h.need(fs.which("tmux", os.getenv("PATH")) ~= nil, "tmux (a test dependency)")
end

function M.sleep(s)
  proc.run({ "sleep", tostring(s) })
end

-- start(home, args [, opts]) -> a tmux server running `shannot ARGS` in an
-- 80x24 pane with that home; after shannot ends the pane shows
-- "shannot-exit=N" and stays.  opts: name (for the socket), ignore_int
-- (the shell ignores SIGINT, so a Ctrl-C reaches only shannot), trim
-- (screens without trailing blanks), env (more variables).
function M.start(home, args, opts)
  opts = opts or {}
  serial = serial + 1
  local vars = { HOME = home, XDG_CONFIG_HOME = home .. "/config", XDG_DATA_HOME = home .. "/data",
    SHANNOT_CONFIG = false, TERM = "xterm-256color" }
  for k, v in pairs(opts.env or {}) do vars[k] = v end
  local t = setmetatable({
    sock = string.format("shannot-%s-%d-%d", opts.name or "spec", require("shannot.core.sys").ids().pid, serial),
    env = h.env(vars), trim = opts.trim,
  }, Tmux)
  local script = (opts.ignore_int and 'trap "" INT; ' or "") .. '"$@"; echo "shannot-exit=$?"; exec sleep 600'
  local cmd = { "sh", "-c", script, "sh", h.BIN }
  table.move(args, 1, #args, #cmd + 1, cmd)
  t:run({ "new-session", "-d", "-s", "main", "-x", "80", "-y", "24", table.unpack(cmd) })
  t.socket_path = t:run({ "display", "-p", "#{socket_path}" }):gsub("\n$", "")
  return t
end

function Tmux:run(args)
  local argv = { "tmux", "-L", self.sock, "-f", "/dev/null" }
  table.move(args, 1, #args, #argv + 1, argv)
  local r = assert(proc.run(argv, { env = self.env, timeout = 20 }))
  assert.equal(0, r.code, "tmux " .. table.concat(args, " ") .. ": " .. r.stderr)
  return r.stdout
end

function Tmux:screen()
  local s = self:run({ "capture-pane", "-p", "-t", "main" })
  if self.trim then s = s:gsub(" +\n", "\n") end
  return s
end

-- keys(...): tmux key names (Enter, Up, Tab, C-c)
function Tmux:keys(...)
  self:run({ "send-keys", "-t", "main", ... })
end

-- type(s): s as literal text ("end" is not the End key)
function Tmux:type(s)
  self:run({ "send-keys", "-t", "main", "-l", s })
end

function Tmux:title()
  return (self:run({ "display", "-p", "-t", "main", "#{pane_title}" }):gsub("\n$", ""))
end

-- wait(text or predicate [, what]) -> the screen once it shows text (plain)
function Tmux:wait(want, what)
  local screen
  local deadline = os.time() + M.TIMEOUT
  repeat
    screen = self:screen()
    local ok
    if type(want) == "function" then ok = want(screen) else ok = screen:find(want, 1, true) ~= nil end
    if ok then return screen end
    M.sleep(0.05)
  until os.time() > deadline
  error(string.format("timed out waiting for %s; the screen:\n%s", what or want, screen), 2)
end

-- cursor() -> the cursor's column and row (from 0)
function Tmux:cursor()
  local x, y = self:run({ "display", "-p", "-t", "main", "#{cursor_x} #{cursor_y}" }):match("(%d+) (%d+)")
  return tonumber(x), tonumber(y)
end

-- wait_cursor(x) -> the screen once the cursor is in column x
function Tmux:wait_cursor(x)
  local got
  local deadline = os.time() + M.TIMEOUT
  repeat
    got = self:cursor()
    if got == x then return self:screen() end
    M.sleep(0.05)
  until os.time() > deadline
  error(string.format("timed out waiting for the cursor in column %d (it is in %s); the screen:\n%s", x,
    tostring(got), self:screen()), 2)
end

-- kill(): the server, and its socket (tmux leaves the file behind)
function Tmux:kill()
  proc.run({ "tmux", "-L", self.sock, "kill-server" }, { env = self.env })
  if self.socket_path and self.socket_path:find(self.sock, 1, true) then fs.remove(self.socket_path) end
end

return M
