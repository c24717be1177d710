-- session/view.lua: what a person reads about a session.
local view = require("shannot.session.view")

describe("the session view", function()
  it("says what the run made that no operation holds, and a failed run (issue 14.2, 14.8)", function()
    local s = { id = "20261130-000000-x-abcd", operations = { { id = 1, kind = "write", path = "/etc/x" } },
      counts = { write = 1 }, exit_code = 0, skipped = { { path = "/srv/sock", type = "socket" } } }
    local text = view.summary(s)
    assert.matches("captured 1 operation %(1 write%)", text)
    assert.matches("not captured: /srv/sock, a socket", text)
    assert.is_nil(text:find("FAILED RUN", 1, true))
    s.skipped, s.exit_code = nil, 2
    text = view.summary(s)
    assert.matches("FAILED RUN: the command exited with code 2", text)
    assert.matches("approve 20261130%-000000%-x%-abcd %-%-allow%-failed", text)
    assert.is_nil(text:find("not captured", 1, true))
  end)

  it("describes a FIFO", function()
    assert.equal("new FIFO (named pipe), 0640 0:0", view.describe({ kind = "mkfifo", path = "/p",
      new = { type = "fifo", mode = 416, uid = 0, gid = 0 }, base = { exists = false } }))
  end)
end)
