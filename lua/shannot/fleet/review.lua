-- Reviewing a fleet run (issue 16.3): `show RUN` by variant, each
-- variant's operations once (the others only where they differ from
-- variant A), and `approve RUN --variant V|--all`, every host's session of
-- those variants approved as one session would be.
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local runs = require("shannot.fleet.runs")
local text = require("shannot.text")
local variants = require("shannot.fleet.variants")

local M = {}

local function open(opts, id)
  local run, e = runs.load(id)
  if not run then return nil, e end
  return run, variants.of(run, { config = opts.config, actor = opts.actor, warn = opts.warn })
end

-- Whether an operation of variant v is one where it differs from A.
local function differing(v)
  local paths = {}
  for _, p in ipairs(v.differs or {}) do paths[p] = true end
  return function(op)
    if op.kind == "exec" or op.kind == "query" then return v.deferred_differ end
    return paths[op.path or ""] == true
  end
end

-- show(opts, id, render) -> exit code | nil, err.  render(s, with_diff,
-- only): how `show` prints a session (cmd/show.lua's)
function M.show(opts, id, render)
  local run, groups = open(opts, id)
  if not run then return nil, groups end
  if opts.json then
    cli.out(json.encode(variants.document(run, groups), { indent = "  " }), "\n")
    return const.EXIT.OK
  end
  cli.out(variants.render(run, groups))
  for _, v in ipairs(groups.variants) do
    if opts.diff then
      local first = v.label == "A"
      cli.out(string.format("\nvariant %s on %s, as captured on %s%s:\n", v.label,
        text.inert(table.concat(v.hosts, " ")), text.inert(v.hosts[1]),
        first and "" or (", only what differs from variant A (" .. variants.what_differs(v) .. ")")))
      render(v.session, true, not first and differing(v) or nil)
    end
  end
  return const.EXIT.OK
end

-- The variants an approve names: --variant V (one) or --all.
local function chosen(opts, groups)
  if opts.all then return groups.variants end
  if not opts.variant then
    return nil, err.usage("approve: a fleet run is approved per variant: --variant A (see shannot show RUN) or --all")
  end
  local v = variants.find(groups, opts.variant)
  if not v then
    local labels = {}
    for i, x in ipairs(groups.variants) do labels[i] = x.label end
    return nil, err.usage('approve: no variant "%s" in this run (it has %s)', text.inert(opts.variant),
      #labels > 0 and table.concat(labels, ", ") or "none: no host captured a change")
  end
  return { v }
end

local function confirm(list)
  for _, v in ipairs(list) do
    io.stderr:write(string.format("variant %s: %d operations on %d hosts: %s\n", v.label,
      #v.session.operations, #v.hosts, text.inert(table.concat(v.hosts, " "))))
  end
  io.stderr:write("approve every operation not denied, on these hosts? [y/N] ")
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

-- approve(opts, id) -> exit code | nil, err.  A session that cannot be
-- approved (no longer pending, its run failed) is said and left; the
-- others are approved, each as `approve ID` would.
function M.approve(opts, id)
  local term = require("shannot.term")
  if not (opts.variant or opts.all or opts.yes or opts.json) and term.isatty(0) and term.isatty(1) then
    return require("shannot.ui.review").run({ config = opts.config, run = id })
  end
  local run, groups = open(opts, id)
  if not run then return nil, groups end
  local list, lerr = chosen(opts, groups)
  if not list then return nil, lerr end
  if not opts.yes then
    if not (term.isatty(0) and term.isatty(2)) then
      return nil, err.usage("approve %s: not a terminal to ask on; add --yes", id)
    end
    if not confirm(list) then
      cli.warn("nothing approved; the run's sessions stay pending")
      return const.EXIT.OK
    end
  end
  local done, failed = {}, 0
  for _, v in ipairs(list) do
    local approved, refused = variants.approve(v, { config = opts.config, actor = opts.actor, warn = opts.warn,
      allow_failed = opts.allow_failed })
    table.move(approved, 1, #approved, #done + 1, done)
    failed = failed + #refused
    for _, r in ipairs(refused) do
      cli.warn("%s (session %s): not approved: %s", text.inert(r.host), r.session, r.message)
    end
  end
  if opts.json then
    cli.out(json.encode({ run = run.id, approved = json.array(done) }, { indent = "  " }), "\n")
  else
    local labels = {}
    for i, v in ipairs(list) do labels[i] = v.label end
    cli.out(string.format("approved %d session%s of run %s (variant %s); apply them with: shannot execute %s\n",
      #done, #done == 1 and "" or "s", run.id, table.concat(labels, ", "), run.id))
  end
  return failed == 0 and const.EXIT.OK or const.EXIT.FAILED
end

-- listing(opts) -> the fleet runs, newest first, each {run, groups}, and
-- the ids of the sessions they hold (which `sessions` lists under them)
function M.listing(opts)
  local out, members = {}, {}
  for _, id in ipairs(runs.ids()) do
    local run, e = runs.load(id)
    if run then
      out[#out + 1] = run
      for _, h in ipairs(run.hosts) do
        if h.session then members[h.session] = run.id end
      end
    elseif opts.warn then
      opts.warn("%s", e.message)
    end
  end
  return out, members
end

return M
