-- glob.lua: match_path, the "**/" of capture's ignore list (gitignore's
-- zero or more directories); match keeps fnmatch's meaning.
local glob = require("shannot.glob")

describe("glob.match_path", function()
  it("takes /**/ as zero or more directories", function()
    assert.is_true(glob.match_path("/a/**/b", "/a/b"))
    assert.is_true(glob.match_path("/a/**/b", "/a/x/y/b"))
    assert.is_false(glob.match_path("/a/**/b", "/ab"))
    assert.is_false(glob.match_path("/a/**/b", "/a/xb"))
    assert.is_true(glob.match_path("/a/**/b/**/c", "/a/b/c"))
    assert.is_true(glob.match_path("/a/**/b/**/c", "/a/x/b/c"))
    assert.is_true(glob.match_path("/a/**/b/**/c", "/a/b/y/c"))
    assert.is_false(glob.match("/a/**/b", "/a/b"), "match itself is unchanged")
  end)

  it("matches a leading **/ anywhere, the root included", function()
    assert.is_true(glob.match_path("**/__pycache__/**", "/usr/lib/python3/__pycache__/x.pyc"))
    assert.is_true(glob.match_path("**/__pycache__/**", "/__pycache__/x"))
    assert.is_false(glob.match_path("**/__pycache__/**", "/usr/__pycache__"))
    assert.is_false(glob.match_path("**/__pycache__/**", "/usr/__pycache__x/y"))
  end)

  it("takes DIR/** as what lies below DIR, not DIR itself", function()
    assert.is_true(glob.match_path("/var/log/**", "/var/log/apt/history.log"))
    assert.is_false(glob.match_path("/var/log/**", "/var/log"))
    assert.is_false(glob.match_path("/var/log/**", "/var/logs/x"))
    assert.is_true(glob.match_path("/var/log/*.log", "/var/log/dpkg.log"))
    assert.is_false(glob.match_path("/var/log/*.log", "/var/log/apt/x.log"))
  end)

  it("stays linear enough on a long path", function()
    assert.is_true(glob.match_path("/a/**/b/**/c/**/d/**/e", "/a/" .. ("x/"):rep(2000) .. "b/c/d/e"))
    -- past the fourth, a "/**/" stands for one directory or more
    assert.is_false(glob.match_path("/a/**/b/**/c/**/d/**/e/**/f", "/a/b/c/d/e/f"))
    assert.is_true(glob.match_path("/a/**/b/**/c/**/d/**/e/**/f", "/a/b/c/d/e/x/f"))
  end)
end)
