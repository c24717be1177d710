-- The client build (issue 15.6): shannot without the Linux sandbox, for
-- a workstation that drives Linux hosts over SSH.  Its sources compile as
-- POSIX.1-2008 with no GNU or Linux extension and include no Linux-only
-- header; the binary says to use --target for a local run; the remote
-- specs pass with it.
local fs = require("shannot.fs")
local proc = require("shannot.proc")
local h = require("support.h")

local CLIENT = h.ROOT .. "/build/client/shannot"
local SOURCES = { "main", "loader", "util", "sys", "term", "diff", "tar", "store", "ssh", "fs", "proc" }

local function cflags()
  local r = assert(proc.run({ "pkg-config", "--cflags", "lua5.4", "lua5.4-cjson" }))
  local out = {}
  for w in r.stdout:gmatch("%S+") do out[#out + 1] = w end
  return out
end

describe("the client build", function()
  after_each(h.cleanup)

  it("compiles as plain POSIX: -std=c11 -D_POSIX_C_SOURCE=200809L, no _GNU_SOURCE", function()
    for _, name in ipairs(SOURCES) do
      local argv = { "cc", "-DSH_CLIENT", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
        "-Werror=implicit-function-declaration", "-fsyntax-only", "-Isrc" }
      table.move(cflags(), 1, #cflags(), #argv + 1, argv)
      argv[#argv + 1] = "src/" .. name .. ".c"
      local r = assert(proc.run(argv, { cwd = h.ROOT }))
      assert.equal(0, r.code, name .. ".c: " .. r.stderr)
    end
    -- and a source that asks for GNU is refused by shannot.h itself
    local bad = h.write(h.tmpdir() .. "/gnu.c", '#define _GNU_SOURCE\n#include "shannot.h"\n')
    local r = assert(proc.run({ "cc", "-DSH_CLIENT", "-std=c11", "-fsyntax-only", "-I" .. h.ROOT .. "/src",
      table.unpack(cflags()), bad }))
    assert.not_equal(0, r.code)
    assert.matches("the client build takes POSIX interfaces only", r.stderr)
  end)

  it("includes no Linux-only header, and the check finds one", function()
    local files = {}
    for i, name in ipairs(SOURCES) do files[i] = "src/" .. name .. ".c" end
    files[#files + 1] = "src/shannot.h"
    local r = assert(proc.run({ "scripts/check-client-headers", table.unpack(files) }, { cwd = h.ROOT }))
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local bad = h.write(h.tmpdir() .. "/bad.c", '#ifndef SH_CLIENT\n#include <sys/prctl.h>\n#endif\n' ..
      '#include <stdio.h>\n#include <sys/mount.h>\n#include <linux/openat2.h>\n')
    local b = assert(proc.run({ h.ROOT .. "/scripts/check-client-headers", bad }))
    assert.equal(1, b.code)
    assert.matches("bad.c:5: a Linux%-only header in the client build: <sys/mount.h>", b.stdout)
    assert.matches("bad.c:6: [^\n]*<linux/openat2.h>", b.stdout)
    assert.not_matches("prctl", b.stdout)  -- the Linux build's own, under #ifndef SH_CLIENT
  end)

  it("says to use --target for a local run, and has no local sandbox to report", function()
    if not h.need(fs.stat(CLIENT), "the client build (make client)") then return end
    local home = h.home()
    local r = h.shannot({ "run", "-c", "echo x > /tmp/never" }, { home = home, bin = CLIENT })
    assert.equal(4, r.code)
    assert.is_true(h.one_line_error(r), r.stderr)
    assert.matches("the client build, without the local sandbox: use %-%-target", r.stderr)
    local s = h.shannot({ "status" }, { home = home, bin = CLIENT })
    assert.equal(4, s.code)
    assert.matches("sandbox%s+none here: the client build", s.stdout)
    assert.equal(0, h.shannot({ "sessions" }, { home = home, bin = CLIENT }).code)
  end)

  it("passes the remote specs (run, show, approve, execute, rollback over SSH, an ordinary user too)", function()
    if not h.need(fs.stat(CLIENT), "the client build (make client)") then return end
    if not require("support.cap").ROOT then return pending("the remote specs need root") end
    local env = h.env({ SHANNOT_BIN = CLIENT, SHANNOT_TEST_LUA_PATH = os.getenv("SHANNOT_TEST_LUA_PATH"),
      SHANNOT_TEST_LUA_CPATH = os.getenv("SHANNOT_TEST_LUA_CPATH") })
    local r = assert(proc.run({ h.BIN, "lua", "scripts/busted.lua", "spec/integration/remote_ssh_spec.lua" },
      { cwd = h.ROOT, env = env, timeout = 900, max_capture = 4 * 1024 * 1024 }))
    local passed, failed = r.stdout:match("(%d+) passed, (%d+) failed")
    assert.equal("0", failed, r.stdout:sub(-4000))
    assert.is_true(tonumber(passed) >= 15, r.stdout:sub(-2000))
    assert.equal(0, r.code)
  end)
end)
