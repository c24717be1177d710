-- shannot checkpoint list | show ID
local apply = require("shannot.session.apply")
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot checkpoint list [--json]\nshannot checkpoint show ID [--json]",
  help = [[
Checkpoints are the originals an execution saved before changing anything.

  list      the sessions that have one, with their status and size
  show ID   every path in it and the state it goes back to]],
  options = { ["--json"] = {} },
}

local function with_checkpoint(opts)
  local out = {}
  for _, s in ipairs(session.list({ config = opts.config, actor = opts.actor, warn = opts.warn })) do
    if s.checkpoint and (s.checkpoint.count or s.checkpoint.entries) then out[#out + 1] = s end
  end
  return out
end

function M.run(opts, args)
  local sub = args[1]
  if sub == "list" and #args == 1 then
    local list = with_checkpoint(opts)
    local function paths(s) return s.checkpoint.count or #s.checkpoint.entries end
    if opts.json then
      local out = {}
      for i, s in ipairs(list) do
        out[i] = { id = s.id, status = s.status, created_at = s.checkpoint.created_at,
          paths = paths(s), target = s.target or "local", where = s.where or json.null }
      end
      cli.out(json.encode(json.array(out), { indent = "  " }), "\n")
    elseif #list == 0 then
      cli.out("no checkpoints\n")
    else
      for _, s in ipairs(list) do
        cli.out(string.format("%-40s %-11s %5d paths  %s  on %s\n", s.id, s.status, paths(s),
          s.checkpoint.created_at, text.inert(require("shannot.session.view").where(s))))
      end
    end
    return const.EXIT.OK
  elseif sub == "show" and #args == 2 then
    local s, e = session.current(args[2], { config = opts.config, actor = opts.actor, warn = opts.warn })
    if not s then return nil, e end
    if not (s.checkpoint and s.checkpoint.entries) then
      return nil, err.usage("session %s has no checkpoint (it was never executed)", s.id)
    end
    if opts.json then
      cli.out(json.encode(s.checkpoint, { indent = "  " }), "\n")
    else
      cli.out(string.format("on %s\n", text.inert(require("shannot.session.view").where(s))))
      for _, entry in ipairs(s.checkpoint.entries) do
        cli.out(string.format("%s  %s\n", text.inert(entry.path), apply.describe_state(entry)))
      end
    end
    return const.EXIT.OK
  end
  return nil, err.usage("checkpoint: usage: %s", M.usage:gsub("\n", " | "))
end

return M
