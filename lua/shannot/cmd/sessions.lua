-- shannot sessions [--status S] [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local view = require("shannot.session.view")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot sessions [--status S] [--json]",
  help = [[
Lists the sessions captured runs made, newest first: id, status, how many
operations, when it was made, and the command.  The sessions of a fleet
run (shannot run --target @GROUP) are listed under their run, one line
per host.  A pending session whose
time to live has passed is shown (and kept) as expired.

options:
  --status S   only sessions in status S (pending, approved, rejected,
               expired, executed, failed, rolled_back)
  --json       one JSON array of {id, status, created_at, expires_at,
               command, profile, exit_code, run_failed, operations,
               counts}]],
  options = { ["--status"] = { arg = "S" }, ["--json"] = {} },
}

local function summary(s)
  return {
    id = s.id, status = s.status, created_at = s.created_at, expires_at = s.expires_at,
    command = s.command, profile = s.profile, exit_code = s.exit_code,
    run_failed = session.run_failure(s) or json.null,
    operations = session.count(s), counts = s.counts or {},
    target = s.target or "local", where = s.where or json.null, fleet_run = s.fleet_run or json.null,
  }
end

-- The fleet runs holding listed sessions: one line per run, one per host.
local function runs_section(list)
  local listed = {}
  for _, s in ipairs(list) do listed[s.id] = s end
  local out = {}
  for _, run in ipairs((require("shannot.fleet.review").listing({ warn = cli.warn }))) do
    local any = false
    for _, h in ipairs(run.hosts) do any = any or (h.session ~= nil and listed[h.session] ~= nil) end
    if any then
      out[#out + 1] = string.format("run %-36s %d hosts  %-20s  %s\n", run.id, #run.hosts, run.created_at,
        text.command_line(run.command))
      for _, h in ipairs(run.hosts) do
        local s = h.session and listed[h.session]
        out[#out + 1] = string.format("    %-20s %-11s %s\n", text.inert(h.name),
          s and s.status or h.state, s and (s.id .. "  " .. session.count(s) .. " operations") or
          text.inert(h.error or ""))
      end
    end
  end
  return table.concat(out)
end

function M.run(opts, args)
  if #args > 0 then return nil, err.usage("sessions: unexpected argument \"%s\"", text.inert(args[1])) end
  if opts.status then
    local known = false
    for _, st in ipairs(session.STATUSES) do known = known or st == opts.status end
    if not known then
      return nil, err.usage('sessions: unknown status "%s"%s', text.inert(opts.status),
        text.did_you_mean(opts.status, session.STATUSES))
    end
  end
  local list, problems = session.list({ status = opts.status, config = opts.config, actor = opts.actor,
    warn = opts.warn })
  for _, p in ipairs(problems) do cli.warn("%s", p) end
  if opts.json then
    local out = {}
    for i, s in ipairs(list) do out[i] = summary(s) end
    cli.out(json.encode(json.array(out), { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  if #list == 0 then
    cli.out(opts.status and ("no " .. opts.status .. " sessions\n") or "no sessions\n")
    return const.EXIT.OK
  end
  local alone = 0
  for _, s in ipairs(list) do alone = alone + (s.fleet_run and 0 or 1) end
  -- lines gathered and written in one go: a store holds thousands
  local lines, pad = {}, string.rep(" ", 40)
  if alone > 0 then
    lines[1] = string.format("%-40s %-11s %5s  %-20s  %s\n", "ID", "STATUS", "OPS", "CREATED", "COMMAND")
  end
  for _, s in ipairs(list) do
    if s.fleet_run then goto continue end
    lines[#lines + 1] = string.format("%-40s %-11s %5d  %-20s  %s\n", s.id, s.status, session.count(s),
      s.created_at, text.command_line(s.command or {}))
    local counts = view.count_line(s.counts or {})
    if counts ~= "" then lines[#lines + 1] = pad .. " " .. counts .. "\n" end
    local failure = session.run_failure(s)
    if failure then lines[#lines + 1] = pad .. " FAILED RUN: the command " .. failure .. "\n" end
    if s.target then lines[#lines + 1] = pad .. " on " .. text.inert(view.where(s)) .. "\n" end
    ::continue::
  end
  cli.out(table.concat(lines))
  local fleet = runs_section(list)
  if fleet ~= "" then
    cli.out(alone > 0 and "\n" or "", "fleet runs (shannot show RUN groups their hosts by change):\n", fleet)
  end
  return const.EXIT.OK
end

return M
