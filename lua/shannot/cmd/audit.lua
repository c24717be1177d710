-- shannot audit [--json] [--verify] [--session ID]
local audit = require("shannot.session.audit")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot audit [--json] [--session ID]\nshannot audit --verify [--json]",
  help = [[
Shows the audit log, oldest first: one event for each session created,
approved, denied, executed, failed, rolled back and expired, with who
caused it (cli, ui or mcp), the user, and details.  The log lives under
[audit] path (default $XDG_DATA_HOME/shannot/audit), one file a day, a
session or in all, as [audit] rotation says; max_files are kept.

Every line holds the SHA-256 of the line before it, and head.json records
each file's length and last line, so --verify finds a line edited, deleted
or inserted, a file truncated, and a file gone: it prints "audit chain
intact: N events in M files" (exit 0) or where the chain breaks (exit 3).

options:
  --session ID  only the events of session ID
  --verify      check the whole log instead of showing it
  --json        one JSON array of the events as stored ({actor, event_type,
                host, payload, pid, prev, seq, session_id, target,
                timestamp, user}); with --verify, the report {ok, dir,
                events, files, problem: {file, path, line, kind, message}}]],
  options = { ["--json"] = {}, ["--verify"] = {}, ["--session"] = { arg = "ID" } },
}

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

local function verify(cfg, as_json)
  local report = audit.verify(cfg)
  if as_json then
    cli.out(json.encode(report, { indent = "  " }), "\n")
    return report.ok and const.EXIT.OK or const.EXIT.REFUSED
  end
  if not report.ok then
    return nil, err.refused("audit chain broken: %s", text.inert(audit.describe(report.problem)))
  end
  cli.out(string.format("audit chain intact: %s in %s\n", plural(report.events, "event"),
    plural(report.files, "file")))
  return const.EXIT.OK
end

-- "k=v k=v" from a payload, keys sorted
local function details(payload)
  if type(payload) ~= "table" then return "" end
  local keys = {}
  for k in pairs(payload) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = payload[k]
    if type(v) ~= "string" then v = json.encode(v) end
    out[#out + 1] = text.inert(k) .. "=" .. text.inert(tostring(v))
  end
  return table.concat(out, " ")
end

local function field(v)
  if v == nil or v == json.null then return "-" end
  return text.inert(tostring(v))
end

function M.run(opts, args)
  if #args > 0 then return nil, err.usage("audit: unexpected argument \"%s\"", text.inert(args[1])) end
  local cfg = opts.config
  if opts.verify then
    if opts.session then return nil, err.usage("audit: --verify checks the whole log; drop --session") end
    return verify(cfg, opts.json)
  end
  if opts.session and not session.valid_id(opts.session) then
    return nil, err.usage('audit: invalid session id "%s" (expected YYYYMMDD-HHMMSS-NAME-XXXX)',
      text.inert(opts.session))
  end
  local list, problems = audit.events(cfg, { session = opts.session })
  for _, p in ipairs(problems) do cli.warn("%s (see shannot audit --verify)", text.inert(p)) end
  if opts.json then
    cli.out(json.encode(json.array(list), { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  if #list == 0 then
    local why = cfg.values.audit.enabled and "" or " (auditing is off: [audit] enabled = false)"
    cli.out("no audit events", why, "\n")
    return const.EXIT.OK
  end
  cli.out(string.format("%-24s  %-19s %-5s %-12s %-40s %s\n", "TIME", "EVENT", "BY", "USER", "SESSION",
    "DETAILS"))
  for _, e in ipairs(list) do
    local row = string.format("%-24s  %-19s %-5s %-12s %-40s %s", field(e.timestamp), field(e.event_type),
      field(e.actor), field(e.user), field(e.session_id), details(e.payload))
    cli.out((row:gsub(" +$", "")), "\n")
  end
  return const.EXIT.OK
end

return M
