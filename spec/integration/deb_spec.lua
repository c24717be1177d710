-- make deb (issue 18.4): the package builds, lintian finds no error, dpkg
-- installs it on this machine, the installed shannot works, and dpkg -r
-- takes every file it brought away again.  Root only (dpkg -i); it
-- removes the package whatever happens.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local sys = require("shannot.core.sys")
local h = require("support.h")

local function have(cmd)
  return proc.run({ "sh", "-c", "command -v " .. cmd }).code == 0
end

local function status()
  local r = assert(proc.run({ "dpkg-query", "-W", "-f", "${Status}", "shannot" }))
  return r.code == 0 and r.stdout or nil
end

local function dpkg(args)
  local argv = { "dpkg" }
  table.move(args, 1, #args, 2, argv)
  return assert(proc.run(argv, { timeout = 300 }))
end

describe("make deb", function()
  it("builds a package dpkg installs and removes without a trace", function()
    if not h.need(sys.ids().euid == 0, "root (dpkg -i)") then return end
    if not h.need(have("dpkg-deb") and have("dpkg-shlibdeps"), "dpkg-dev") then return end
    if status() ~= nil then
      pending("a shannot package is installed here already; not touching it")
      return
    end
    local r = assert(proc.run({ "make", "-s", "deb" }, { cwd = h.ROOT, timeout = 900 }))
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local deb = h.ROOT .. "/" .. r.stdout:match("(build/shannot_[^\n]*%.deb)")
    local version = require("shannot.const").VERSION
    local arch = assert(proc.run({ "dpkg", "--print-architecture" })).stdout:match("%S+")
    assert.equal(h.ROOT .. "/build/shannot_" .. version .. "_" .. arch .. ".deb", deb)

    local info = assert(proc.run({ "dpkg-deb", "-f", deb })).stdout
    assert.matches("\nVersion: " .. version:gsub("%p", "%%%0") .. "\n", info)
    local depends = info:match("\nDepends: ([^\n]*)")
    for _, p in ipairs({ "libc6", "zlib1g", "bubblewrap", "libseccomp2", "libssl3" }) do
      assert.matches("%f[%w]" .. p .. "%f[^%w]", depends)
    end
    assert.matches("\nRecommends: libssh%-4", info)
    local contents = assert(proc.run({ "dpkg-deb", "-c", deb })).stdout
    assert.matches("root/root[^\n]* %./usr/share/man/man1/shannot%-run%.1%.gz\n", contents)
    assert.matches("%./usr/share/doc/shannot/copyright\n", contents)
    assert.not_matches("install%-manifest", contents)

    if have("lintian") then
      local l = assert(proc.run({ "lintian", deb }, { timeout = 300 }))
      assert.not_matches("\nE: ", "\n" .. l.stdout, nil, l.stdout)
    end

    local ok, e = pcall(function()
      local i = dpkg({ "-i", deb })
      assert.equal(0, i.code, i.stdout .. i.stderr)
      assert.equal("install ok installed", status())
      local files = {}
      for p in dpkg({ "-L", "shannot" }).stdout:gmatch("[^\n]+") do
        if not fs.is_dir(p) then files[#files + 1] = p end
      end
      assert.is_true(#files > 20)
      local s = assert(proc.run({ "/usr/bin/shannot", "status" }, { env = h.env({ HOME = h.tmpdir() }) }))
      assert.equal(0, s.code, s.stderr)
      assert.matches("sandbox works%s+yes", s.stdout)
      local m = assert(proc.run({ "man", "-w", "shannot-run" }))
      assert.equal("/usr/share/man/man1/shannot-run.1.gz\n", m.stdout)
      local rm = dpkg({ "-r", "shannot" })
      assert.equal(0, rm.code, rm.stdout .. rm.stderr)
      assert.is_nil(status() and status():match("installed$"))
      for _, p in ipairs(files) do assert.is_false(fs.exists(p), p) end
      assert.is_false(fs.exists("/usr/lib/shannot"))
      assert.is_false(fs.exists("/usr/share/doc/shannot"))
    end)
    if status() ~= nil then dpkg({ "--purge", "shannot" }) end
    h.cleanup()
    assert(ok, e)
  end)
end)
