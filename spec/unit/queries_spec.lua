-- Which command lines are questions the host answers during a capture
-- (capture/queries.lua): read-only forms only, every option whole.
local queries = require("shannot.capture.queries")

describe("questions to the host", function()
  it("takes the read-only forms", function()
    for _, argv in ipairs({
      { "systemctl", "is-active", "nginx" }, { "systemctl", "is-active", "--quiet", "nginx.service" },
      { "/usr/bin/systemctl", "status", "--no-pager", "-l", "a@b.service" },
      { "systemctl", "show", "--property=ActiveState,SubState", "--value", "x" },
      { "systemctl", "list-units", "--type=service", "--state=running", "--plain", "--no-legend" },
      { "systemctl", "is-system-running" }, { "service", "nginx", "status" },
      { "invoke-rc.d", "--query", "nginx", "start" },
    }) do
      assert.is_true(queries.allowed(argv), table.concat(argv, " "))
    end
  end)

  it("refuses anything that may change something or reach elsewhere", function()
    for _, argv in ipairs({
      { "systemctl", "-p", "is-active", "start", "foo.service" },  -- -p takes the next word
      { "systemctl", "-qHroot@otherhost", "is-active", "x" }, { "systemctl", "--hos=x", "is-active", "y" },
      { "systemctl", "--roo=/", "status" }, { "systemctl", "--ima=/tmp/disk.img", "status" },
      { "systemctl", "--user", "is-active", "x" }, { "systemctl", "start", "x" },
      { "systemctl", "is-active", "x", "y;rm" }, { "systemctl" }, { "service", "-x", "status" },
      { "service", "nginx", "restart" }, { "service", "../../tmp/x", "status" },
      { "invoke-rc.d", "nginx", "start" }, { "invoke-rc.d", "--query", "nginx", "start;x" },
      { "sh", "-c", "systemctl is-active x" }, {}, { 1, 2 },
    }) do
      assert.is_false(queries.allowed(argv), table.concat(argv, " "))
    end
  end)
end)
