-- make install / uninstall into a DESTDIR and the man pages (issue 18.1,
-- 18.2): exactly the expected files, nothing left after uninstall, one
-- page per listed command written from its help, no groff warning.
local cli = require("shannot.cli")
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")

local function have(cmd)
  return proc.run({ "sh", "-c", "command -v " .. cmd }).code == 0
end

local function make(target, dest)
  local r = assert(proc.run({ "make", "-s", target, "DESTDIR=" .. dest, "PREFIX=/usr" },
    { cwd = h.ROOT, timeout = 600 }))
  assert.equal(0, r.code, r.stdout .. r.stderr)
  return r
end

-- every path below root (files and directories, or only those of a
-- find -type), relative, sorted
local function tree(root, type)
  local r = assert(proc.run({ "find", root, "-mindepth", "1", type and "-type" or nil, type }))
  local out = {}
  for p in r.stdout:gmatch("[^\n]+") do out[#out + 1] = p:sub(#root + 1) end
  table.sort(out)
  return out
end

local function expected_files()
  local files = { "/usr/bin/shannot", "/usr/lib/shannot/shannot-enter", "/usr/share/man/man1/shannot.1",
    "/usr/share/man/man5/shannot-config.5", "/usr/share/man/man5/shannot-profile.5",
    "/usr/share/shannot/install-manifest" }
  for _, c in ipairs(cli.commands()) do files[#files + 1] = "/usr/share/man/man1/shannot-" .. c[1] .. ".1" end
  for _, p in ipairs(assert(fs.readdir(h.ROOT .. "/profiles"))) do
    if p:match("%.json$") then files[#files + 1] = "/usr/share/shannot/profiles/" .. p end
  end
  local completions = {
    ["shannot.bash"] = "/usr/share/bash-completion/completions/shannot",
    ["_shannot"] = "/usr/share/zsh/vendor-completions/_shannot",
    ["shannot.fish"] = "/usr/share/fish/vendor_completions.d/shannot.fish",
  }
  for src, dst in pairs(completions) do
    if fs.exists(h.ROOT .. "/completions/" .. src) then files[#files + 1] = dst end
  end
  table.sort(files)
  return files
end

-- make man checks every page with groff
local function need_man()
  return h.need(have("groff") and have("man"), "groff and man (apt-get install groff-base man-db)")
end

describe("make install", function()
  after_each(h.cleanup)

  it("writes exactly its files below DESTDIR/PREFIX, and uninstall removes them all", function()
    if not need_man() then return end
    local dest = h.tmpdir()
    make("install", dest)
    local files = tree(dest, "f")
    assert.same(expected_files(), files)
    local manifest = assert(fs.read_file(dest .. "/usr/share/shannot/install-manifest"))
    assert.matches("\nd /usr/lib/shannot\n", manifest)
    local modes = assert(proc.run({ "stat", "-c", "%a", dest .. "/usr/bin/shannot",
      dest .. "/usr/share/man/man1/shannot-run.1" })).stdout
    assert.equal("755\n644\n", modes)

    -- man finds the pages under the DESTDIR, and groff has nothing to say
    local r = assert(proc.run({ "man", "-P", "cat", "shannot-run" },
      { env = h.env({ MANPATH = dest .. "/usr/share/man", MANWIDTH = "80" }) }))
    assert.equal(0, r.code, r.stderr)
    assert.matches("shannot%-run %- run a script", r.stdout)
    assert.matches("%-%-profile P", r.stdout)
    for _, p in ipairs(files) do
      if p:match("/man/man%d/") then
        local g = assert(proc.run({ "groff", "-ww", "-z", "-man", dest .. p }))
        assert.equal("", g.stderr, p)
        assert.equal(0, g.code, p)
      end
    end

    -- a second install over the first lists the same, then nothing is left
    make("install", dest)
    assert.same(manifest, assert(fs.read_file(dest .. "/usr/share/shannot/install-manifest")))
    make("uninstall", dest)
    assert.same({}, tree(dest))
  end)

  it("leaves directories it did not make", function()
    if not need_man() then return end
    local dest = h.tmpdir()
    assert(fs.mkdir_p(dest .. "/usr/share/man/man1"))
    h.write(dest .. "/usr/share/man/man1/other.1", ".TH OTHER 1\n")
    make("install", dest)
    make("uninstall", dest)
    assert.same({ "/usr", "/usr/share", "/usr/share/man", "/usr/share/man/man1", "/usr/share/man/man1/other.1" },
      tree(dest))
  end)
end)

describe("the man pages", function()
  after_each(h.cleanup)

  it("say what shannot help says, escaped for roff", function()
    local dir = h.tmpdir()
    local r = assert(proc.run({ h.BIN, "lua", h.ROOT .. "/scripts/man.lua", dir }))
    assert.equal(0, r.code, r.stderr)
    local run = assert(fs.read_file(dir .. "/shannot-run.1"))
    assert.matches('^%.TH "SHANNOT\\%-RUN" "1"', run)
    assert.matches("\n%.SH NAME\nshannot%-run \\%- run a script", run)
    assert.matches("\n%.SH SYNOPSIS\nshannot run %[\\%-\\%-profile P%]", run)
    assert.matches("\n%.SH OPTIONS\n", run)
    assert.matches("\n%.TP\n\\fB\\%-\\%-max\\%-output SIZE\\fR\n", run)
    -- a backslash of the help text is \e; no text line starts a request
    local repl = assert(fs.read_file(dir .. "/shannot-repl.1"))
    assert.matches("printf '1+1\\en'", repl, 1, true)
    for _, page in ipairs(assert(fs.readdir(dir))) do
      local text = assert(fs.read_file(dir .. "/" .. page))
      for l in text:gmatch("[^\n]+") do
        if l:match("^[.']") then
          assert.matches("^%.%a%a?$", l:match("^%S+"), nil, page .. ": " .. l)
        end
      end
    end
    -- every listed command has its page, and only those
    local want = { "shannot-config.5", "shannot-profile.5", "shannot.1" }
    for _, c in ipairs(cli.commands()) do want[#want + 1] = "shannot-" .. c[1] .. ".1" end
    table.sort(want)
    local got = assert(fs.readdir(dir))
    table.sort(got)
    assert.same(want, got)
  end)
end)
