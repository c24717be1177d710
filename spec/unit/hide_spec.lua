-- sandbox/hide.lua against a fake file system (what SFTP gives a remote
-- run: readdir, lstat, readlink, no realpath), and the covers bwrap.lua
-- lays over what it found.
local bwrap = require("shannot.sandbox.bwrap")
local hide = require("shannot.sandbox.hide")
local profile = require("shannot.sandbox.profile")

-- A tree: path -> "dir" | "file" | {link = target}
local function fake(tree)
  local api = {}
  function api.lstat(path)
    local t = tree[path]
    if t == nil then return nil, path .. ": No such file or directory", "ENOENT" end
    if type(t) == "table" then return { type = "link" } end
    return { type = t }
  end
  function api.readlink(path)
    local t = tree[path]
    return type(t) == "table" and t.link or nil
  end
  function api.readdir(dir)
    local real = hide.resolve(api, dir)
    if not real or tree[real] ~= "dir" then return nil end
    local out = {}
    for path in pairs(tree) do
      local parent, name = path:match("^(.*)/([^/]+)$")
      if (parent == "" and "/" or parent) == real then out[#out + 1] = name end
    end
    return out
  end
  return api
end

local TREE = {
  ["/"] = "dir", ["/etc"] = "dir", ["/etc/shadow"] = "file", ["/etc/ssh"] = "dir",
  ["/etc/ssh/ssh_host_rsa_key"] = "file", ["/etc/ssh/ssh_host_rsa_key.pub"] = "file",
  ["/etc/ssh/ssh_host_ed25519_key"] = "file",
  ["/home"] = "dir", ["/home/a"] = "dir", ["/home/a/.ssh"] = "dir", ["/home/b"] = "dir",
  ["/home/.hidden"] = "dir", ["/home/.hidden/.ssh"] = "dir",
  ["/root"] = "dir", ["/root/.ssh"] = "dir",
  ["/srv"] = "dir", ["/srv/secret-link"] = { link = "../data/real" }, ["/data"] = "dir", ["/data/real"] = "file",
  ["/srv/loop"] = { link = "/srv/loop" }, ["/srv/secret-root"] = { link = "/" },
}

describe("hidden paths", function()
  it("expands globs component by component, dot files too, resolving symlinks", function()
    local out = assert(hide.expand({ "/etc/shadow", "/etc/ssh/ssh_host_*_key", "/home/*/.ssh", "/root",
      "/root/.ssh", "/srv/secret*", "/srv/loop", "/nothing/*" }, fake(TREE)))
    local got = {}
    for _, e in ipairs(out) do
      got[#got + 1] = e.path .. (e.dir and "/" or "") .. (e.name and (" <- " .. e.name) or "")
    end
    assert.same({
      "/data/real <- /srv/secret-link", "/etc/shadow", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key",
      "/home/.hidden/.ssh/", "/home/a/.ssh/", "/root/",  -- /root/.ssh is inside /root; "/" is never hidden
    }, got)
  end)

  it("checks a glob: absolute, whole components, no **", function()
    assert.equal("/srv/x*", hide.check("/srv/x*"))
    for _, bad in ipairs({ "srv/x", "/srv/**", "/srv/../etc", "/", "/./x" }) do
      assert.is_nil(hide.check(bad), bad)
    end
  end)

  it("covers a directory with a read-only tmpfs, a file with the empty file, where the sandbox shows them", function()
    local p = assert(profile.load("readonly"))
    local hidden = { { path = "/etc/shadow" }, { path = "/root", dir = true }, { path = "/tmp/x" },
      { path = "/var/tmp/y" } }
    local plan = { cwd = "/", seccomp_fds = { 3 }, hide = { empty = "/S/empty", paths = hidden } }
    local args = bwrap.args(p, plan, "local")
    local text = table.concat(args, " ")
    assert.matches("%-%-ro%-bind /S/empty /etc/shadow %-%-tmpfs /root %-%-remount%-ro /root %-%-unshare", text)
    assert.is_nil(text:find("/tmp/x", 1, true))  -- a fresh /tmp: not the host's
    assert.is_nil(text:find("/var/tmp/y", 1, true))  -- the profile's tmpfs
  end)
end)
