-- [policy] deny/review/auto_approve path globs as decide() applies them:
-- tried by top directory (policy/init.lua's globs), the first glob of each
-- list that matches is the one named, exactly as a plain loop over the
-- list finds it, for globs of every shape and random paths.
local glob = require("shannot.glob")
local policy = require("shannot.policy")
local h = require("support.h")

-- the rule as a loop over the list
local function first_glob(list, path)
  for _, p in ipairs(list) do
    if glob.match(p, path) or (p:sub(-3) == "/**" and path == p:sub(1, -4)) then return p end
  end
end

local PARTS = { "etc", "opt", "usr", "e*", "*", "?tc", "[eo]pt", "**", "a", "ssh", ".ssh", "x.conf", "*.conf" }

local function random_glob(rng)
  local parts = {}
  for i = 1, rng(1, 4) do parts[i] = PARTS[rng(1, #PARTS)] end
  local g = "/" .. table.concat(parts, "/")
  if rng(1, 5) == 1 then g = g:sub(2) end  -- not absolute
  return g
end

local NAMES = { "etc", "opt", "usr", "a", "ssh", ".ssh", "x.conf", "etcx", "" }

local function random_path(rng)
  local parts = {}
  for i = 1, rng(0, 4) do parts[i] = NAMES[rng(1, #NAMES)] end
  return "/" .. table.concat(parts, "/")
end

describe("policy path globs", function()
  it("name the first glob of each list that matches, as a loop over the list does", function()
    local rng, seed = h.seeded()
    for _ = 1, 200 do
      local lists = { deny = {}, review = {}, auto_approve = {} }
      for _, l in pairs(lists) do
        for i = 1, rng(0, 8) do l[i] = random_glob(rng) end
      end
      lists.review[#lists.review + 1] = "/"
      local cfg = { values = { policy = lists, profile = { always_deny = {}, auto_approve = {} } } }
      local ctx = policy.context(cfg, { id = "x", command = {} })
      for _ = 1, 50 do
        local path = random_path(rng)
        local op = { id = 1, kind = "write", path = path, new = { type = "file", mode = 420, content = "text" } }
        local decision, _, reason = policy.decide(op, cfg, ctx)
        local deny, review, approve = first_glob(lists.deny, path), first_glob(lists.review, path),
          first_glob(lists.auto_approve, path)
        local want
        if deny then
          want = string.format('path matches [policy] deny "%s"', deny)
        elseif review then
          want = string.format('path matches [policy] review "%s"', review)
        elseif approve then
          want = string.format('path matches [policy] auto_approve "%s"', approve)
        end
        if want and reason ~= want and not (approve and not deny and not review and decision == "review") then
          error(string.format("seed %d: %s: %s, not %s", seed, path, tostring(reason), want))
        end
        if not want and reason and reason:find("[policy]", 1, true) then
          error(string.format("seed %d: %s: %s, matching no glob", seed, path, reason))
        end
      end
    end
  end)
end)
