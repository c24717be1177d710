-- shannot show ID [--diff] [--json]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local json = require("shannot.json")
local session = require("shannot.session")
local text = require("shannot.text")

local M = {
  usage = "shannot show ID [--diff] [--json]",
  help = [[
Shows a session: its status, the command that made it, and every
operation it holds (write, mkdir, replace_dir, symlink, delete, chmod,
chown, exec) with the path and what changes.

options:
  --diff   the content changes of each write as a unified diff (binary
           and very large files are summarised)
  --json   the whole session as one JSON document (DESIGN §3 fields)]],
  options = { ["--diff"] = {}, ["--json"] = {} },
}

local function octal(mode)
  return mode and string.format("%04o", mode) or "?"
end

local function owner(m)
  return string.format("%s:%s", tostring(m.uid), tostring(m.gid))
end

local function size(n)
  if not n then return "?" end
  if n < 1024 then return n .. " B" end
  local units, v, i = { "KiB", "MiB", "GiB", "TiB" }, n / 1024, 1
  while v >= 1024 and i < #units do v, i = v / 1024, i + 1 end
  return string.format("%.1f %s", v, units[i])
end

-- One line saying what an operation does.
local function describe(op)
  local new, base = op.new or {}, op.base or {}
  local replaced = base.exists and base.type ~= (new.type or base.type)
    and string.format(", replaces a %s", base.type) or ""
  if op.kind == "write" then
    if base.exists and base.type == "file" then
      return string.format("modified, %s -> %s, %s", size(base.size), size(new.size), octal(new.mode))
    end
    return string.format("new file, %s, %s %s%s", size(new.size), octal(new.mode), owner(new), replaced)
  elseif op.kind == "mkdir" then
    return string.format("new directory, %s %s%s", octal(new.mode), owner(new), replaced)
  elseif op.kind == "replace_dir" then
    return string.format("directory emptied and made anew, %s %s", octal(new.mode), owner(new))
  elseif op.kind == "symlink" then
    return string.format("-> %s%s", text.inert(new.link or "?"), replaced)
  elseif op.kind == "delete" then
    return base.type == "dir" and "directory and everything in it" or ("a " .. tostring(base.type))
  elseif op.kind == "chmod" then
    return string.format("%s -> %s", octal(base.mode), octal(new.mode))
  elseif op.kind == "chown" then
    return string.format("%s -> %s", owner(base), owner(new))
  end
  return ""
end

local function verdict(op)
  return string.format("%-7s %-7s", op.decision or "review", op.danger or "?")
end

local function op_line(op)
  local line
  if op.kind == "exec" then
    line = string.format("%4d  %s %-11s %s  (in %s)", op.id, verdict(op), "exec",
      text.inert(text.command_line(op.argv or {})), text.inert(op.cwd or "?"))
  else
    line = string.format("%4d  %s %-11s %s  %s", op.id, verdict(op), op.kind, text.inert(op.path or "?"),
      describe(op))
  end
  if op.reason then line = line .. "\n      " .. text.inert(op.reason) end
  return line
end

local function blob(blobs, hash)
  if not hash then return nil end
  local store = require("shannot.store")
  return store.read(blobs, hash, require("shannot.diff").MAX_BYTES)
end

-- The diff of one write, or a line saying why there is none.
local function op_diff(s, op)
  local diff = require("shannot.diff")
  local blobs = assert(session.dir(s.id)) .. "/blobs"
  local old, oerr
  if op.base and op.base.exists and op.base.type == "file" then
    if not op.base.stored then
      return string.format("  (the old file, %s, is too large to diff)\n", size(op.base.size))
    end
    old, oerr = blob(blobs, op.base.hash)
  end
  local new, nerr = blob(blobs, op.new.hash)
  if (oerr or nerr) then
    if (op.new.size or 0) > diff.MAX_BYTES or ((op.base or {}).size or 0) > diff.MAX_BYTES then
      return string.format("  (too large to diff: %s -> %s)\n", size((op.base or {}).size), size(op.new.size))
    end
    return string.format("  (cannot show the diff: %s)\n", oerr or nerr)
  end
  local d = diff.describe(old, new, { a_label = "a" .. op.path, b_label = "b" .. op.path })
  if d.kind == "text" then return d.text end
  return "  (" .. d.summary .. ")\n"
end

local function render(s, with_diff)
  local lines = {
    string.format("session %s  %s (expires %s)", s.id, s.status, s.expires_at),
    string.format("command  %s", text.inert(text.command_line(s.command or {}))),
    string.format("profile  %s   exit code %s   created %s", tostring(s.profile),
      s.exit_code == json.null and "none" or tostring(s.exit_code), s.created_at),
    string.format("operations (%d):  id  decision danger  kind  path", #s.operations),
  }
  cli.out(table.concat(lines, "\n"), "\n")
  for _, op in ipairs(s.operations) do
    cli.out(op_line(op), "\n")
    if with_diff and op.kind == "write" then cli.out(op_diff(s, op)) end
  end
end

function M.run(opts, args)
  if #args ~= 1 then return nil, err.usage("show: give one session id; usage: %s", M.usage) end
  local s, e = session.load(args[1], { config = opts.config })
  if not s then return nil, e end
  if opts.json then
    cli.out(json.encode(s, { indent = "  " }), "\n")
  else
    render(s, opts.diff)
  end
  return const.EXIT.OK
end

return M
