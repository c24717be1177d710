-- Fleet runs (issue 16.2): one record per run over many hosts, under the
-- data directory's runs/ID/run.json, naming each host's session.  The id
-- has a session id's form; the sessions themselves stay in the session
-- store, each marked with its run (fleet_run).  The record is read as
-- hostile as a session is: checked against its schema before use.
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {}

M.MAX_JSON_BYTES = 16 * 1024 * 1024

-- What became of one host's capture.
M.STATES = { "captured", "unchanged", "failed", "unreachable", "refused", "error", "pending" }

function M.root()
  return paths.data_dir() .. "/runs"
end

-- dir(id) -> path | nil, err (the id is checked first, as a session's)
function M.dir(id)
  local d, e = session.dir(id)
  if not d then return nil, e end
  return M.root() .. "/" .. id
end

-- is_run(id) -> whether the store holds a fleet run of that id
function M.is_run(id)
  return session.valid_id(id) and fs.is_dir(M.root() .. "/" .. id) or false
end

-- reserve(name) -> id, dir | nil, err: a new run directory whose id no
-- session has either
function M.reserve(name)
  local ok, msg = fs.mkdir_p(M.root(), 448)
  if not ok then return nil, err.env("cannot make the run store %s", msg) end
  for _ = 1, 16 do
    local id = session.new_id(name)
    if not fs.lstat(session.root() .. "/" .. id) then
      local dir = M.root() .. "/" .. id
      local made, merr, code = fs.mkdir(dir, 448)
      if made then return id, dir end
      if code ~= "EEXIST" then return nil, err.env("cannot make the run directory %s", merr) end
    end
  end
  return nil, err.env("cannot find a free run id")
end

-- save(run) -> true | nil, err (atomically)
function M.save(run)
  local dir, e = M.dir(run.id)
  if not dir then return nil, e end
  local ok, msg = fs.write_atomic(dir .. "/run.json", json.encode(run, { indent = "  " }) .. "\n", 384)
  if not ok then return nil, err.env("cannot save run %s: %s", run.id, msg) end
  return true
end

local function is_string(v) return type(v) == "string" end
local function opt_string(v) return v == nil or v == json.null or type(v) == "string" end
local function opt_int(v) return v == nil or v == json.null or math.type(v) == "integer" end

-- What is wrong with a run record, or nil.
local function problem(r)
  if type(r) ~= "table" then return "not a run (a JSON object)" end
  for _, k in ipairs({ "id", "created_at", "targets" }) do
    if not is_string(r[k]) then return "field " .. k .. " must be a string" end
  end
  if not opt_string(r.profile) or not opt_string(r.limit) then return "field profile/limit must be a string" end
  if type(r.command) ~= "table" then return "field command must be a list" end
  for i, c in ipairs(r.command) do
    if not is_string(c) then return string.format("field command[%d] must be a string", i) end
  end
  if type(r.hosts) ~= "table" then return "field hosts must be a list" end
  local states = {}
  for _, s in ipairs(M.STATES) do states[s] = true end
  for i, h in ipairs(r.hosts) do
    local where = string.format("field hosts[%d]", i)
    if type(h) ~= "table" or not is_string(h.name) then return where .. ".name must be a string" end
    if not states[h.state] then return where .. ".state must be one of " .. table.concat(M.STATES, ", ") end
    if not opt_string(h.session) or (is_string(h.session) and not session.valid_id(h.session)) then
      return where .. ".session must be a session id"
    end
    if not opt_string(h.error) or not opt_string(h.address) or not opt_int(h.exit_code)
      or not opt_int(h.operations) then
      return where .. ": error/address must be strings, exit_code/operations integers"
    end
  end
end

-- load(id) -> run | nil, err
function M.load(id)
  local dir, e = M.dir(id)
  if not dir then return nil, e end
  local file = dir .. "/run.json"
  local r, rerr = session.read_json(file, M.MAX_JSON_BYTES, "run", id)
  if r == nil then return nil, rerr end
  -- JSON numbers come back as floats: the integers among them made so
  for _, h in ipairs(type(r) == "table" and type(r.hosts) == "table" and r.hosts or {}) do
    for _, k in ipairs({ "exit_code", "operations" }) do
      if type(h) == "table" and type(h[k]) == "number" then h[k] = math.tointeger(h[k]) or h[k] end
    end
  end
  local bad = problem(r)
  if bad then return nil, err.usage("%s: %s", file, bad) end
  if r.id ~= id then return nil, err.usage('%s: says its id is "%s"', file, text.inert(r.id)) end
  for _, h in ipairs(r.hosts) do
    for k, v in pairs(h) do if v == json.null then h[k] = nil end end
  end
  json.array(r.hosts)
  json.array(r.command)
  return r
end

-- ids() -> every run id, newest first
function M.ids()
  local out = {}
  for _, name in ipairs(fs.readdir(M.root()) or {}) do
    if session.valid_id(name) then out[#out + 1] = name end
  end
  table.sort(out, function(a, b) return a > b end)
  return out
end

-- sessions(run, opts) -> {host name = session}: the sessions of the run's
-- hosts as they are now (session.current: expired when their TTL passed);
-- problems: the ones that could not be read
function M.sessions(run, opts)
  local out, problems = {}, {}
  for _, h in ipairs(run.hosts) do
    if h.session then
      local s, e = session.current(h.session, opts)
      if s and s.fleet_run ~= run.id then
        s, e = nil, err.usage("session %s does not belong to run %s", h.session, run.id)
      end
      if s then out[h.name] = s else problems[#problems + 1] = e.message end
    end
  end
  return out, problems
end

return M
