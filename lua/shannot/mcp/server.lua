-- The MCP server (DESIGN §9): JSON-RPC 2.0, one message per line on
-- stdin/stdout.  Tools run sandboxed commands and capture scripts into
-- sessions; nothing is ever applied from here: a person approves with the
-- CLI or the review UI.  Commands run in child processes whose output goes
-- to files, never into the protocol stream, while the loop keeps reading
-- stdin, so `ping` and cancellation are answered during a long call.
local const = require("shannot.const")
local err = require("shannot.err")
local fs = require("shannot.fs")
local json = require("shannot.json")
local paths = require("shannot.paths")
local proc = require("shannot.proc")
local schema = require("shannot.mcp.schema")
local session = require("shannot.session")
local sys = require("shannot.core.sys")
local term = require("shannot.core.term")
local text = require("shannot.text")

local M = {}

-- Newest first: what the current TypeScript SDK speaks from 2024-11-05 on.
M.VERSIONS = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" }
M.MAX_LINE = 16 * 1024 * 1024
M.MAX_OUTPUT = 256 * 1024
M.IDLE_KEEP = 1024 * 1024  -- after a longer line, memory goes back once idle

local PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL = -32700, -32600, -32601,
  -32602, -32603

---------------------------------------------------------------------------
-- Tools
---------------------------------------------------------------------------

local TARGET = { type = "string",
  description = "A remote host configured for shannot (see list_remotes); omit to run on this machine." }
local SCRIPT_TARGET = { type = "string",
  description = "A remote host configured for shannot, or @GROUP for every host of a configured group " ..
    "(see list_remotes); omit to run on this machine." }

-- Output schemas: what structuredContent holds (JSON Schema); nullable
-- fields say so, since a run that timed out has no exit code.
local function nullable(t) return { type = { t, "null" } } end
local STR, INT, BOOL, NUM, ARR, OBJ = { type = "string" }, { type = "integer" }, { type = "boolean" },
  { type = "number" }, { type = "array" }, { type = "object" }
local RUN_OUTPUT = {
  exit_code = nullable("integer"), signal = nullable("string"), timed_out = BOOL, stdout = STR, stderr = STR,
  stdout_truncated = BOOL, stderr_truncated = BOOL, duration = NUM,
}
local function output_schema(props, required)
  return { type = "object", properties = props, required = required }
end

-- annotations(read_only, idempotent, open_world): hints a client shows
-- and acts on; nothing here is destructive, since nothing is ever applied
local function annotations(read_only, idempotent, open_world)
  return { readOnlyHint = read_only, destructiveHint = false, idempotentHint = idempotent,
    openWorldHint = open_world }
end

M.TOOLS = {
  {
    name = "run_command",
    title = "Run a read-only command",
    description = "Runs one command in a read-only bubblewrap sandbox (no network, nothing on the " ..
      "system can change) and returns its exit code and output.  The command is an argv array, " ..
      "never a shell string.  Secrets are hidden (password hashes, private keys, /root, ~/.ssh: " ..
      "shannot://status lists them): a hidden file reads as empty, a hidden directory as empty.  " ..
      "For anything that should change the system, use run_script.",
    inputSchema = {
      type = "object",
      properties = {
        argv = { type = "array", items = { type = "string" }, minItems = 1,
          description = 'The command and its arguments, e.g. ["df", "-h"].' },
        target = TARGET,
        timeout = { type = "number", minimum = 0.1, maximum = 3600, description = "Seconds (default 60)." },
      },
      required = { "argv" }, additionalProperties = false,
    },
    -- it reaches configured remote hosts over SSH: the open world
    annotations = annotations(true, true, true),
    outputSchema = output_schema(RUN_OUTPUT, { "exit_code", "stdout", "stderr" }),
  },
  {
    name = "run_script",
    title = "Capture what a script would change",
    description = "Runs a script in the sandbox against the real system, with every write captured " ..
      "instead of made, and returns the session id, a summary of the captured operations with their " ..
      "danger levels, and the command a person runs to review it.  With a group target (@GROUP) it " ..
      "captures on every host of the group and returns the run id with its variants: the hosts grouped " ..
      "by identical changes.  Nothing is ever applied from here: a person approves and executes.  " ..
      "The same secrets as for run_command are hidden (read-only and empty): a script that must " ..
      "change them (adding a user, rotating a key) fails here and is for a person to run.",
    inputSchema = {
      type = "object",
      properties = {
        script = { type = "string", description = "The script text." },
        rationale = { type = "string", maxLength = 4096, description = "Why this change is wanted: what " ..
          "you found and what the script fixes.  The person reviewing the session reads it beside the script." },
        interpreter = { type = "string", description = 'The interpreter, e.g. "sh" (default), "bash", "python3".' },
        target = SCRIPT_TARGET,
        timeout = { type = "number", minimum = 0.1, maximum = 3600, description = "Seconds (default 600)." },
      },
      required = { "script" }, additionalProperties = false,
    },
    -- not read-only: it stores a session; not destructive: it never applies;
    -- each call makes a new session
    annotations = annotations(false, false, true),
    outputSchema = output_schema({
      exit_code = nullable("integer"), signal = nullable("string"), timed_out = BOOL, stdout = STR, stderr = STR,
      stdout_truncated = BOOL, stderr_truncated = BOOL, duration = NUM,
      session = nullable("string"), operations = ARR, counts = OBJ, review = STR, approve = STR,
      run_failed = nullable("string"), summary = STR, script_sha256 = STR,
      run = STR, hosts = INT, variants = ARR, others = ARR,
    }, { "summary" }),
  },
  {
    name = "list_sessions",
    title = "List sessions",
    description = "Lists captured sessions, newest first, with status and operation counts.",
    inputSchema = {
      type = "object",
      properties = { status = { type = "string", enum = session.STATUSES } },
      additionalProperties = false,
    },
    annotations = annotations(true, true, false),
    outputSchema = output_schema({ sessions = ARR }, { "sessions" }),
  },
  {
    name = "get_session",
    title = "Show a session",
    description = "Shows one session: status, command, every operation with its decision, danger " ..
      "and reason, and optionally the diff of each write.",
    inputSchema = {
      type = "object",
      properties = {
        id = { type = "string", description = "The session id." },
        diff = { type = "boolean", description = "Include unified diffs of writes." },
        script = { type = "boolean", description = "Include the script the session ran." },
      },
      required = { "id" }, additionalProperties = false,
    },
    annotations = annotations(true, true, false),
    outputSchema = output_schema({
      id = STR, status = STR, command = {}, target = {}, profile = {}, created_at = STR, expires_at = STR,
      exit_code = nullable("integer"), run_failed = nullable("string"), operations = ARR, review = STR,
      rationale = nullable("string"), script = nullable("object"), client = nullable("object"),
    }, { "id", "status", "operations" }),
  },
  {
    name = "list_profiles",
    title = "List sandbox profiles",
    description = "Lists the sandbox profiles, built in and the user's.",
    inputSchema = { type = "object", properties = {}, additionalProperties = false },
    annotations = annotations(true, true, false),
    outputSchema = output_schema({ profiles = ARR }, { "profiles" }),
  },
  {
    name = "list_remotes",
    title = "List remote hosts",
    description = "Lists the remote hosts and groups (@GROUP, for run_script) configured for shannot (the " ..
      "only targets allowed).",
    inputSchema = { type = "object", properties = {}, additionalProperties = false },
    annotations = annotations(true, true, false),
    outputSchema = output_schema({ remotes = ARR, groups = ARR }, { "remotes", "groups" }),
  },
}

local RESOURCES = {
  { uri = "shannot://profiles", name = "profiles", title = "Sandbox profiles", mimeType = "application/json",
    description = "The sandbox profiles and where each comes from." },
  { uri = "shannot://remotes", name = "remotes", title = "Remote hosts", mimeType = "application/json",
    description = "The configured remote hosts." },
  { uri = "shannot://status", name = "status", title = "What this machine can do", mimeType = "application/json",
    description = "bwrap, user namespaces and overlayfs on this machine, and what run_command hides " ..
      "(hidden: the patterns and what they match here)." },
}

local TEMPLATES = {
  { uriTemplate = "shannot://sessions/{id}", name = "session", title = "A session",
    mimeType = "application/json",
    description = "One session (an id from list_sessions or run_script): status, command, rationale, the " ..
      "script it ran, every operation with its decision." },
  { uriTemplate = "shannot://profiles/{name}", name = "profile", title = "A sandbox profile",
    mimeType = "application/json", description = "One sandbox profile (a name from shannot://profiles) as JSON." },
}

local RESOURCE_NOT_FOUND = -32002

local PROMPTS = {
  { name = "diagnose-disk", title = "Why is the disk full?",
    description = "Look for what fills a file system, read-only.",
    arguments = { { name = "path", description = "Where to look (default /).", required = false } },
    text = "Find out what uses the most space under %s. Use run_command only (df -h, du -xh " ..
      "--max-depth=2 ..., ls -la), change nothing, and summarise the biggest consumers." },
  { name = "check-service", title = "Why is a service failing?",
    description = "Inspect a systemd service and its logs, read-only.",
    arguments = { { name = "service", description = "The unit name.", required = true } },
    text = "Inspect the service %s with run_command (systemctl status, journalctl --no-pager -u " ..
      "... -n 100, its config files). If a fix needs changes, write it as a script for run_script " ..
      "and tell me the session id to review; never claim it was applied." },
}

---------------------------------------------------------------------------
-- The server
---------------------------------------------------------------------------

local Server = {}
Server.__index = Server

-- new(opts) -> server.  opts: config, target (default target), profile
-- (for run_script), bin (this binary), out (write function).
function M.new(opts)
  return setmetatable({
    cfg = opts.config, target = opts.target, profile = opts.profile, bin = opts.bin,
    out = opts.out or function(s) io.stdout:write(s); io.stdout:flush() end,
    -- stdout is the protocol's: the server's own troubles go to stderr,
    -- which MCP clients keep as the server's log
    warn = opts.warn or function(fmt, ...)
      io.stderr:write("shannot: ", require("shannot.text").inert(string.format(fmt, ...)), "\n")
    end,
    jobs = {}, version = nil, work = nil,
    tokens = {},  -- request id -> its progressToken, while the call starts
  }, Server)
end

function Server:send(msg)
  msg.jsonrpc = "2.0"
  self.out(json.encode(msg) .. "\n")
end

function Server:reply(id, result)
  self:send({ id = id, result = result })
end

function Server:fail(id, code, message, data)
  self:send({ id = id == nil and json.null or id, error = { code = code, message = message, data = data } })
end

local function valid_id(id)
  return type(id) == "number" or type(id) == "string"
end

-- speaks(version) -> whether the negotiated protocol is version or newer
function Server:speaks(version)
  return self.version ~= nil and self.version >= version
end

local function tool_result(self, structured, is_error)
  local body = type(structured) == "string" and structured or json.encode(structured, { indent = "  " })
  local r = { content = json.array({ { type = "text", text = body } }) }
  if is_error then r.isError = true end
  if type(structured) == "table" and self:speaks("2025-06-18") then
    r.structuredContent = structured
  end
  return r
end

function Server:tool_error(id, fmt, ...)
  self:reply(id, tool_result(self, string.format(fmt, ...), true))
end

-- target(name [, groups]) -> name | nil, why: a configured remote only,
-- or (groups) a configured group as @NAME
function Server:check_target(name, groups)
  name = name or self.target
  if name == nil or name == "local" then return "local" end
  local values = self.cfg and self.cfg.values
  local g = type(name) == "string" and name:match("^@(.+)$")
  if g then
    if groups and values and values.groups[g] then return name end
    return nil, string.format('unknown target "%s": %s', text.inert(name), groups and
      "only groups configured for shannot (list_remotes)" or "this tool runs on one host; run_script takes a group")
  end
  local e = values and values.executor[name]
  if values and (values.remotes[name] or (e and e.type == "ssh")) then return name end
  return nil, string.format('unknown target "%s": only remotes configured for shannot (list_remotes)',
    text.inert(tostring(name)))
end

-- acting() -> the opts of a session call made for the client: the audit
-- log names the MCP server and its client
function Server:acting()
  return { config = self.cfg, actor = "mcp", client = self.client, warn = self.warn }
end

function Server:workdir()
  if not self.work then
    local base = paths.data_dir() .. "/mcp"
    assert(fs.mkdir_p(base, 448))
    self.work = assert(fs.mkdtemp(base .. "/run-"))
  end
  return self.work
end

-- Starts `shannot ARGS` with stdout and stderr in files; the job finishes
-- in poll_jobs().
-- start_job(id, args, finish) -> true when it started (else the tool
-- error is sent): a `shannot run` child, at most [limits] mcp_sandboxes
-- of them at a time.
function Server:start_job(id, args, finish)
  local max = require("shannot.sandbox.limits").of(self.cfg).mcp_sandboxes
  if #self.jobs >= max then
    self:tool_error(id, "%d sandbox%s running already, the most this server runs at once ([limits] " ..
      "mcp_sandboxes): wait for one to finish, then call again", #self.jobs, #self.jobs == 1 and " is" or "es are")
    return false
  end
  local dir = self:workdir()
  local n = #self.jobs + math.random(1, 1e9)
  local out, errf = string.format("%s/out-%d", dir, n), string.format("%s/err-%d", dir, n)
  -- SHANNOT_ACTOR: the audit log names this server for the sessions made
  -- SHANNOT_MCP_CLIENT: and the client that asked (initialize's clientInfo)
  local argv = { "sh", "-c", 'o=$1 e=$2 c=$3; shift 3; SHANNOT_ACTOR=mcp SHANNOT_MCP_CLIENT=$c exec "$@" >"$o" 2>"$e"',
    "sh", out, errf, self.client and json.encode(self.client) or "", self.bin }
  table.move(args, 1, #args, #argv + 1, argv)
  local p, msg = proc.spawn(argv, { stdin = "null", stdout = "null", stderr = "null" })
  if not p then
    self:tool_error(id, "cannot start shannot: %s", msg)
    return false
  end
  local job = { id = id, proc = p, out = out, err = errf, finish = finish, token = self.tokens[id],
    started = sys.monotonic(), told = -1 }
  self.jobs[#self.jobs + 1] = job
  self:progress(job)
  return true
end

M.PROGRESS_EVERY = 1  -- seconds

-- progress(job): notifications/progress for a call that asked for it
-- (a progressToken in its _meta), at start and every PROGRESS_EVERY
-- seconds while it runs: the seconds so far, rising, with no total (a
-- capture's length is not known ahead).
function Server:progress(job)
  if job.token == nil then return end
  local elapsed = math.floor((sys.monotonic() - job.started) / M.PROGRESS_EVERY) * M.PROGRESS_EVERY
  if elapsed <= job.told then return end
  job.told = elapsed
  self:send({ method = "notifications/progress", params = { progressToken = job.token, progress = elapsed,
    message = elapsed == 0 and "started" or string.format("running for %d s", elapsed) } })
end

function Server:poll_jobs()
  local i = 1
  while i <= #self.jobs do
    local job = self.jobs[i]
    local st = job.proc:poll()
    if st then
      table.remove(self.jobs, i)
      local stdout = fs.read_file(job.out, M.MAX_LINE) or ""
      local stderr = fs.read_file(job.err, M.MAX_OUTPUT) or ""
      fs.remove(job.out)
      fs.remove(job.err)
      job.proc:close()
      local ok, e = pcall(job.finish, st, stdout, stderr)
      if not ok then self:tool_error(job.id, "internal error: %s", tostring(e)) end
    else
      self:progress(job)
      i = i + 1
    end
  end
end

function Server:cancel(request_id)
  for i, job in ipairs(self.jobs) do
    if job.id == request_id then
      job.proc:kill("TERM")
      job.proc:close()
      fs.remove(job.out)
      fs.remove(job.err)
      table.remove(self.jobs, i)
      return true
    end
  end
  return false
end

function Server:close()
  for _, job in ipairs(self.jobs) do job.proc:close() end
  self.jobs = {}
  if self.work then fs.rmtree(self.work) end
end

---------------------------------------------------------------------------
-- Tool calls
---------------------------------------------------------------------------

-- Each tool gets arguments already checked against its inputSchema
-- (tools_call); what it returns is a further problem with them.
local TOOL = {}

local function run_args(target, timeout)
  local args = { "run", "--json" }
  if target ~= "local" then table.move({ "--target", target }, 1, 2, #args + 1, args) end
  if timeout then table.move({ "--timeout", tostring(timeout) }, 1, 2, #args + 1, args) end
  return args
end

local function output_of(doc)
  return {
    exit_code = doc.exit_code, signal = doc.signal, timed_out = doc.timed_out,
    stdout = doc.stdout, stderr = doc.stderr, stdout_truncated = doc.stdout_truncated,
    stderr_truncated = doc.stderr_truncated, duration = doc.duration,
  }
end

-- The shannot run finished (out: {st, stdout, stderr}): its JSON
-- document, or a tool error.
local function run_document(self, id, out)
  local doc = json.decode(out.stdout)
  if type(doc) ~= "table" then
    local why = out.stderr:match("[^\n]+") or ("shannot exited " .. tostring(out.st.code or out.st.signal_name))
    self:tool_error(id, "%s", text.inert(why))
    return nil
  end
  return doc
end

function TOOL.run_command(self, id, a)
  local target, why = self:check_target(a.target)
  if not target then return self:tool_error(id, "%s", why) end
  local args = run_args(target, a.timeout or 60)
  -- what an agent has no business reading, hidden (mcp/hide.lua)
  local hide = require("shannot.mcp.hide").run_args(self.cfg)
  table.move(hide, 1, #hide, #args + 1, args)
  -- read-only: a profile that captures nothing
  table.move({ "--profile", "readonly", "--" }, 1, 3, #args + 1, args)
  table.move(a.argv, 1, #a.argv, #args + 1, args)
  self:start_job(id, args, function(st, stdout, stderr)
    local doc = run_document(self, id, { st = st, stdout = stdout, stderr = stderr })
    if doc then self:reply(id, tool_result(self, output_of(doc), doc.exit_code ~= 0)) end
  end)
end

local function op_summary(op)
  return {
    id = op.id, kind = op.kind, path = op.path, argv = op.argv and json.array(op.argv) or nil,
    decision = op.decision, danger = op.danger, reason = op.reason, from = op.from,
    answer = op.answer and { code = op.answer.code, stdout = op.answer.stdout } or nil,
  }
end

-- What run_script says of a fleet run: the run id, its variants (hosts
-- grouped by identical changes) and the hosts that captured nothing.
local function fleet_result(doc)
  local variants = {}
  for i, v in ipairs(doc.variants) do
    variants[i] = { label = v.label, hosts = v.hosts, sessions = v.sessions, operations = v.operations,
      differs_in = v.differs_in, deferred_differ = v.deferred_differ }
  end
  local failed = 0
  for _, o in ipairs(doc.others) do
    if o.state ~= "unchanged" then failed = failed + #o.hosts end
  end
  return { run = doc.id, hosts = #doc.hosts, variants = json.array(variants), others = doc.others,
    review = "shannot show " .. doc.id .. " --diff", approve = "shannot approve " .. doc.id .. " --variant A",
    summary = string.format("Captured on %d host(s) as run %s: %d variant(s) of the change%s. Nothing was " ..
      "applied: a person reviews it with `shannot show %s --diff` and approves a variant with `shannot approve " ..
      "%s --variant A`.", #doc.hosts, doc.id, #variants, failed > 0 and string.format("; %d host(s) failed", failed)
      or "", doc.id, doc.id) }
end

function TOOL.run_script(self, id, a)
  local interp = a.interpreter or "sh"
  if not interp:match("^[%w_./+-]+$") then
    return 'interpreter must be a command name or path such as "sh" or "python3"'
  end
  local target, why = self:check_target(a.target, true)
  if not target then return self:tool_error(id, "%s", why) end
  local sub = fs.mkdtemp(self:workdir() .. "/script-")
  if not sub then return self:tool_error(id, "cannot make a place for the script") end
  local file = sub .. "/mcp-script"  -- the session's name
  local ok, msg = fs.write_new(file, a.script, 384)
  if not ok then return self:tool_error(id, "cannot keep the script: %s", msg) end
  local args = run_args(target, a.timeout or 600)
  -- hidden as for run_command: a script's output comes back to the agent
  local hide = require("shannot.mcp.hide").run_args(self.cfg)
  table.move(hide, 1, #hide, #args + 1, args)
  if self.profile then table.move({ "--profile", self.profile }, 1, 2, #args + 1, args) end
  if a.rationale then table.move({ "--why", a.rationale }, 1, 2, #args + 1, args) end
  table.move({ "--interpreter", interp, file }, 1, 3, #args + 1, args)
  local started = self:start_job(id, args, function(st, stdout, stderr)
    fs.rmtree(sub)
    local doc = run_document(self, id, { st = st, stdout = stdout, stderr = stderr })
    if not doc then return end
    if doc.variants then return self:reply(id, tool_result(self, fleet_result(doc), false)) end
    local result = output_of(doc)
    if doc.session == json.null or doc.session == nil then
      result.session = json.null
      result.summary = "The script changed nothing; no session was made."
    else
      local s = session.current(doc.session.id, self:acting())
      local ops = {}
      for i, op in ipairs(s and s.operations or {}) do ops[i] = op_summary(op) end
      result.session = doc.session.id
      result.operations = json.array(ops)
      result.counts = doc.session.counts
      result.review = "shannot show " .. doc.session.id .. " --diff"
      local failure = s and session.run_failure(s)
      result.run_failed = failure or json.null
      result.approve = "shannot approve " .. doc.session.id .. (failure and " --allow-failed" or "")
      result.summary = string.format("Captured %d operation(s) as session %s (pending). Nothing was applied: " ..
        "a person reviews it with `%s` and approves it with `%s`.%s", #ops, doc.session.id, result.review,
        result.approve, failure and (" The script's run failed (it " .. failure .. "), so the capture may be " ..
        "only part of its work.") or "")
    end
    self:reply(id, tool_result(self, result, false))
  end)
  if not started then fs.rmtree(sub) end
end

-- command_of(s) -> the command line a client is told: a person's shell
-- code (-c) is their script, shown as the script is (below)
local function command_of(s)
  if s.client or s.command == nil or s.command[1] ~= "-c" then return s.command end
  return json.array({ "-c", "(shell code given to the CLI: not shown to MCP clients)" })
end

function TOOL.list_sessions(self, id, a)
  local how = self:acting()
  how.status = a.status
  local list = session.list(how)
  local out = {}
  for i, s in ipairs(list) do
    out[i] = { id = s.id, status = s.status, created_at = s.created_at, expires_at = s.expires_at,
      command = command_of(s), target = s.target, operations = session.count(s), counts = s.counts,
      run_failed = session.run_failure(s) or json.null }
  end
  self:reply(id, tool_result(self, { sessions = json.array(out) }, false))
end

M.MAX_SCRIPT = 1024 * 1024  -- of a script shown to a client

-- session_document(s, opts) -> what a client is told of session s: opts
-- diff (each write's diff, but none of a hidden path), script (the
-- script's text, of a session an MCP client made), hidden (the patterns)
local function session_document(s, opts)
  local ops = {}
  for i, op in ipairs(s.operations) do
    ops[i] = op_summary(op)
    if opts.diff and op.kind == "write" then
      local hidden = require("shannot.mcp.hide").covers(opts.hidden, op.path)
      local body, why = nil, "not shown: the path is hidden from MCP clients (" .. tostring(hidden) .. ")"
      if not hidden then body, why = require("shannot.session.view").diff(s, op) end
      ops[i].diff = body or why
    end
  end
  local script = json.null
  if s.script then
    script = { sha256 = s.script.sha256, size = s.script.size, name = s.script.name }
    -- the text only of a script an MCP client gave: a person's own script
    -- may hold what an agent has no business reading
    if opts.script and s.client then
      local data, e = require("shannot.capture.script").read(session.dir(s.id), s, M.MAX_SCRIPT)
      script.text = data or json.null
      script.problem = not data and e.message or nil
    end
  end
  return {
    id = s.id, status = s.status, command = command_of(s), target = s.target, profile = s.profile,
    created_at = s.created_at, expires_at = s.expires_at, exit_code = s.exit_code,
    run_failed = session.run_failure(s) or json.null, rationale = s.rationale or json.null, script = script,
    client = s.client or json.null,
    operations = json.array(ops), review = "shannot show " .. s.id .. " --diff",
  }
end

function TOOL.get_session(self, id, a)
  local s, e = session.current(a.id, self:acting())
  if not s then return self:tool_error(id, "%s", e.message) end
  self:reply(id, tool_result(self, session_document(s, { diff = a.diff, script = a.script,
    hidden = require("shannot.mcp.hide").patterns(self.cfg) }), false))
end

function TOOL.list_profiles(self, id)
  self:reply(id, tool_result(self, { profiles = json.array(require("shannot.sandbox.profile").list()) }, false))
end

local function remotes_of(cfg)
  local out = {}
  local values = cfg and cfg.values or { remotes = {}, executor = {} }
  for name, r in pairs(values.remotes) do
    out[#out + 1] = { name = name, host = r.host, user = r.user, port = r.port, profile = r.profile }
  end
  for name, e in pairs(values.executor) do
    if e.type == "ssh" then
      out[#out + 1] = { name = name, host = e.host, user = e.username, port = e.port, profile = e.profile }
    end
  end
  table.sort(out, function(x, y) return x.name < y.name end)
  return json.array(out)
end

-- The configured groups, with the hosts each stands for.
local function groups_of(cfg)
  local out = {}
  local groups = cfg and cfg.values.groups or {}
  for name, g in pairs(groups) do
    local hosts = require("shannot.fleet.targets").expand("@" .. name, groups) or {}
    out[#out + 1] = { name = "@" .. name, members = json.array(g.members or {}), hosts = json.array(hosts) }
  end
  table.sort(out, function(x, y) return x.name < y.name end)
  return json.array(out)
end

function TOOL.list_remotes(self, id)
  self:reply(id, tool_result(self, { remotes = remotes_of(self.cfg), groups = groups_of(self.cfg) }, false))
end

---------------------------------------------------------------------------
-- Methods
---------------------------------------------------------------------------

local METHOD = {}

function METHOD.initialize(self, id, params)
  local asked = params.protocolVersion
  if type(asked) ~= "string" then return "protocolVersion must be a string" end
  local version = M.VERSIONS[1]
  for _, v in ipairs(M.VERSIONS) do
    if v == asked then version = v end
  end
  self.version = version
  local info = type(params.clientInfo) == "table" and params.clientInfo or {}
  if type(info.name) == "string" then
    self.client = { name = text.inert(info.name):sub(1, 256),
      version = type(info.version) == "string" and text.inert(info.version):sub(1, 256) or "?" }
  end
  self:reply(id, {
    protocolVersion = version,
    capabilities = { tools = { listChanged = false }, resources = { listChanged = false },
      prompts = { listChanged = false } },
    serverInfo = { name = "shannot", version = const.VERSION },
    instructions = "shannot runs commands read-only in a sandbox (run_command) and captures what a script " ..
      "would change (run_script) into a session that a person reviews and approves; nothing is applied " ..
      "from here.",
  })
end

function METHOD.ping(self, id)
  self:reply(id, {})
end

function METHOD.tools_list(self, id)
  local tools = {}
  for i, t in ipairs(M.TOOLS) do
    tools[i] = { name = t.name, description = t.description, inputSchema = t.inputSchema }
    -- each field from the protocol version that brought it
    if self:speaks("2025-03-26") then tools[i].annotations = t.annotations end
    if self:speaks("2025-06-18") then tools[i].title, tools[i].outputSchema = t.title, t.outputSchema end
  end
  self:reply(id, { tools = json.array(tools) })
end

local TOOL_BY_NAME = {}
for _, t in ipairs(M.TOOLS) do TOOL_BY_NAME[t.name] = t end

-- An unknown tool is a protocol error; arguments that do not fit the
-- tool's schema are the tool's error (isError), which the model reads
-- and can correct (MCP 2025-11-25, tools: error handling).
function METHOD.tools_call(self, id, params)
  local name = params.name
  local fn = type(name) == "string" and TOOL[name]
  if not fn then return string.format('unknown tool "%s"', text.inert(tostring(name))) end
  local a = params.arguments
  if a == nil or a == json.null then a = {} end
  local problem = schema.arguments(TOOL_BY_NAME[name].inputSchema, a)
  local meta = type(params._meta) == "table" and params._meta or {}
  local token = meta.progressToken
  if type(token) == "number" then token = math.tointeger(token) end
  if type(token) == "string" or math.type(token) == "integer" then self.tokens[id] = token end
  if not problem then problem = fn(self, id, a, params) end
  self.tokens[id] = nil
  if problem then self:tool_error(id, "invalid arguments for %s: %s", name, problem) end
end

function METHOD.resources_list(self, id)
  self:reply(id, { resources = json.array(RESOURCES) })
end

function METHOD.resources_templates_list(self, id)
  self:reply(id, { resourceTemplates = json.array(TEMPLATES) })
end

-- A session or a profile named by a template's URI: data | nil, why
local function templated(self, uri)
  local sid = uri:match("^shannot://sessions/(.+)$")
  if sid then
    local s, e = session.current(sid, self:acting())
    if not s then return nil, e.message end
    return session_document(s, { script = true, hidden = {} })
  end
  local name = uri:match("^shannot://profiles/(.+)$")
  if name then
    -- a name, never a path: profile.load reads files named by a path
    if not name:match("^[%w_][%w_.-]*$") or name:match("%.json$") then
      return nil, string.format('"%s" is not a profile name', text.inert(name))
    end
    local profile = require("shannot.sandbox.profile")
    local p, e = profile.load(name)
    if not p then return nil, e.message end
    local doc = profile.to_table(p)
    doc.source = p.builtin and "built-in" or p.source
    return doc
  end
end

function METHOD.resources_read(self, id, params)
  local uri = params.uri
  if type(uri) ~= "string" then return "uri must be a string" end
  local data, why
  if uri == "shannot://profiles" then
    data = require("shannot.sandbox.profile").list()
  elseif uri == "shannot://remotes" then
    data = remotes_of(self.cfg)
  elseif uri == "shannot://status" then
    data = require("shannot.sandbox.probe").gather()
    data.hidden = require("shannot.mcp.hide").status(self.cfg)
  else
    data, why = templated(self, uri)
  end
  if not data then
    return self:fail(id, RESOURCE_NOT_FOUND, "resource not found: " .. (why or text.inert(uri)), { uri = uri })
  end
  self:reply(id, { contents = json.array({ { uri = uri, mimeType = "application/json",
    text = json.encode(data, { indent = "  " }) } }) })
end

function METHOD.prompts_list(self, id)
  local out = {}
  for i, p in ipairs(PROMPTS) do
    out[i] = { name = p.name, title = p.title, description = p.description, arguments = json.array(p.arguments) }
  end
  self:reply(id, { prompts = json.array(out) })
end

function METHOD.prompts_get(self, id, params)
  for _, p in ipairs(PROMPTS) do
    if p.name == params.name then
      local args = type(params.arguments) == "table" and params.arguments or {}
      local value = args[p.arguments[1].name]
      if p.arguments[1].required and type(value) ~= "string" then
        return string.format('argument "%s" is required', p.arguments[1].name)
      end
      return self:reply(id, { description = p.description, messages = json.array({
        { role = "user", content = { type = "text", text = string.format(p.text, value or "/") } } }) })
    end
  end
  return string.format('unknown prompt "%s"', text.inert(tostring(params.name)))
end

local METHOD_NAMES = {
  initialize = "initialize", ping = "ping", ["tools/list"] = "tools_list", ["tools/call"] = "tools_call",
  ["resources/list"] = "resources_list", ["resources/read"] = "resources_read",
  ["resources/templates/list"] = "resources_templates_list",
  ["prompts/list"] = "prompts_list", ["prompts/get"] = "prompts_get",
}

function Server:notification(method, params)
  if method == "notifications/cancelled" and type(params) == "table" then
    self:cancel(params.requestId)
  end
  -- everything else (initialized, progress, ...) needs no answer
end

function Server:handle(line)
  if line:match("^%s*$") then return end
  local msg = json.decode(line)
  if msg == nil then return self:fail(nil, PARSE_ERROR, "parse error: not JSON") end
  if type(msg) ~= "table" or (#msg > 0) then
    return self:fail(nil, INVALID_REQUEST, "invalid request: a JSON-RPC message is one object (no batches)")
  end
  local id = msg.id
  if type(id) == "number" then id = math.tointeger(id) or id end  -- cjson gives floats
  if msg.jsonrpc ~= "2.0" or (msg.method ~= nil and type(msg.method) ~= "string")
    or (id ~= nil and id ~= json.null and not valid_id(id)) then
    return self:fail(valid_id(id) and id or nil, INVALID_REQUEST, 'invalid request: needs jsonrpc "2.0" and a method')
  end
  if msg.method == nil then return end  -- a response to us: we send no requests
  if id == nil then return self:notification(msg.method, msg.params) end
  if id == json.null then return self:fail(nil, INVALID_REQUEST, "invalid request: id must not be null") end
  local name = METHOD_NAMES[msg.method]
  if not name then return self:fail(id, METHOD_NOT_FOUND, "method not found: " .. text.inert(msg.method)) end
  local params = msg.params
  if params == nil or params == json.null then params = {} end
  if type(params) ~= "table" then return self:fail(id, INVALID_PARAMS, "params must be an object") end
  local ok, problem = pcall(METHOD[name], self, id, params)
  if not ok then return self:fail(id, INTERNAL, "internal error: " .. tostring(problem)) end
  if problem then return self:fail(id, INVALID_PARAMS, "invalid params: " .. problem) end
end

-- serve(server, fd) -> exit code: until stdin ends or a signal arrives.
-- Lines are read in linear time into one buffer (shannot.core.term's
-- line reader); a line over MAX_LINE is refused once and skipped up to
-- its newline, so nothing after the cut is ever read as a message.
function Server:serve(fd)
  local input <close> = term.lines(fd, M.MAX_LINE)
  -- a client's long request crosses a 1 MiB pipe in few reads (the
  -- default 64 KiB costs a round trip per 64 KiB); not a pipe: as it is
  term.grow_pipe(fd, 1024 * 1024)
  -- and its line, decoded, leaves pages to reuse for the next: a fresh
  -- page costs a fault each (a 16 MiB line touches 4096 several times),
  -- given back once the server is idle
  sys.keep_freed(16 * M.MAX_LINE)
  local holding = false
  while true do
    local got, dropped, code = input:read(#self.jobs > 0 and 50 or 500)
    if got == nil then
      if code ~= "EINTR" then break end  -- EIO: stdin ended
      self:close()
      return err.failed("interrupted")
    end
    if code == true and holding then  -- idle
      input:shrink()
      sys.release_freed()
      holding = false
    end
    holding = holding or dropped > 0 or (got[1] and #got[1] > M.IDLE_KEEP)
    for _ = 1, dropped do
      self:fail(nil, PARSE_ERROR, "parse error: a line longer than " .. M.MAX_LINE .. " bytes (skipped to its end)")
    end
    for _, line in ipairs(got) do self:handle(line) end
    self:poll_jobs()
  end
  -- stdin ended: finish what is running (its answers still go out), then stop
  for _, job in ipairs(self.jobs) do job.proc:communicate({}) end
  self:poll_jobs()
  self:close()
  return const.EXIT.OK
end

return M
