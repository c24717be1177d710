-- A capture test bed: a host directory of the test's own, captured by a
-- profile of its own, and the tree state that proves the host unchanged.
local fs = require("shannot.fs")
local json = require("shannot.json")
local proc = require("shannot.proc")
local h = require("support.h")
local assert = require("luassert")

local M = {}

M.ROOT = require("shannot.core.sys").ids().euid == 0

-- A profile capturing only `host`, a directory of the test's own.
function M.profile_file(dir, host, extra)
  local p = {
    name = "capture-test", capture = { host },
    defer = { "systemctl", "service", "reboot", "shannot-test-absent" },
    environment = {
      PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME = "${HOME}", H = "${H}",
    },
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  return h.write(dir .. "/profile.json", json.encode(p))
end

-- Everything about a tree: paths, types, modes, owners, link targets and
-- the content of every file.
function M.tree_state(path, ignore)
  local prune = ignore and ("-path '" .. ignore .. "' -prune -o ") or ""
  local r = assert(proc.run({ "sh", "-c",
    "cd \"$1\" && find . " .. prune .. "-printf '%p|%y|%m|%U|%G|%s|%l\\n' | sort && " ..
    "find . " .. prune .. "-type f -print0 | sort -z | xargs -0r sha256sum", "sh", path }))
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

local Env = {}
Env.__index = Env

-- Test beds in /tmp, for specs whose screens must hold a whole path
-- however deep the checkout lies; removed by M.cleanup().
local short_dirs = {}

function M.cleanup()
  for i = #short_dirs, 1, -1 do
    fs.rmtree(short_dirs[i])
    short_dirs[i] = nil
  end
end

-- env(extra_profile [, {short = true}]) -> a test bed
function M.env(extra_profile, opts)
  local e = setmetatable({}, Env)
  if opts and opts.short then
    e.dir = assert(fs.mkdtemp("/tmp/shannot-t-"))
    short_dirs[#short_dirs + 1] = e.dir
  else
    e.dir = h.tmpdir()
  end
  e.host = e.dir .. "/host"
  e.home = e.dir .. "/home"
  assert(fs.mkdir_p(e.host))
  assert(fs.mkdir_p(e.home))
  e.profile = M.profile_file(e.dir, e.host, extra_profile)
  return e
end

function Env:sh(code)
  local r = assert(proc.run({ "sh", "-c", code, "sh", self.host }))
  assert.equal(0, r.code, r.stderr)
end

-- run(code) -> result, json document, session (or nil).  The host tree
-- must be the same before and after.
function Env:run(code, opts)
  opts = opts or {}
  local before = M.tree_state(self.host, self.ignore)
  local args = { "run", "--json", "--profile", self.profile }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  args[#args + 1] = "-c"
  args[#args + 1] = "H=" .. self.host .. "; cd \"$H\" && " .. code
  local r = h.shannot(args, {
    home = self.home, env = opts.env, timeout = opts.timeout, peak_rss = opts.peak_rss, prefix = opts.prefix,
  })
  assert.equal(before, M.tree_state(self.host, self.ignore), "the host tree changed")
  local doc = json.decode(r.stdout)
  assert(doc, r.stdout .. r.stderr)
  local s
  if doc.session ~= json.null then s = self:show(doc.session.id) end
  return r, doc, s
end

function Env:show(id, extra)
  local args = { "show", id }
  for _, a in ipairs(extra or { "--json" }) do args[#args + 1] = a end
  local r = h.shannot(args, { home = self.home, max_capture = 64 * 1024 * 1024 })
  assert.equal(0, r.code, r.stderr)
  if extra then return r.stdout end
  return assert(json.decode(r.stdout))
end

-- "kind path" of every operation, paths relative to the host dir.
function Env:ops(s)
  local out = {}
  for _, op in ipairs(s.operations) do
    if op.argv then  -- a deferred command, a question
      out[#out + 1] = op.kind .. " " .. table.concat(op.argv, " ")
    else
      local rel = op.path == self.host and "." or op.path:sub(#self.host + 2)
      out[#out + 1] = op.kind .. " " .. rel
    end
  end
  return out
end

function M.op_at(s, suffix)
  for _, op in ipairs(s.operations) do
    if op.path and op.path:sub(-#suffix) == suffix then return op end
  end
end


M.Env = Env

return M
