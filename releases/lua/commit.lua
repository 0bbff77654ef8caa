-- Apply one registry change atomically, or nothing.
-- KEYS: every key the change touches (declared for Cluster; all share one hash tag).
-- ARGV[1]: the plan, JSON:
--   check  [[k, field, expected]]  field "" reads the string key; expected "" means absent
--   exists [[k, field]]            each field must exist in hash KEYS[k]
--   hset   [[k, field, value]]   hdel [[k, field]]   set [[k, value]]   rpush [[k, value]]
--   incr   k                      the change counter, bumped once
--   publish [channel, text]        published as "<counter> <text>"
--   receipt k                      this commit's receipt: if present, the commit already
--                                  applied (a resend); answer its counter and change nothing
-- Returns {"ok", counter} | {"stale", i} (check i failed) | {"missing", field}.
local plan = cjson.decode(ARGV[1])

if plan.receipt then
  local applied = redis.call("GET", KEYS[plan.receipt])
  if applied then
    return {"ok", tonumber(applied)}
  end
end

for i, c in ipairs(plan.check or {}) do
  local current
  if c[2] == "" then
    current = redis.call("GET", KEYS[c[1]])
  else
    current = redis.call("HGET", KEYS[c[1]], c[2])
  end
  if (current or "") ~= c[3] then
    return {"stale", i}
  end
end

for _, e in ipairs(plan.exists or {}) do
  if redis.call("HEXISTS", KEYS[e[1]], e[2]) == 0 then
    return {"missing", e[2]}
  end
end

for _, h in ipairs(plan.hset or {}) do redis.call("HSET", KEYS[h[1]], h[2], h[3]) end
for _, h in ipairs(plan.hdel or {}) do redis.call("HDEL", KEYS[h[1]], h[2]) end
for _, s in ipairs(plan.set or {}) do redis.call("SET", KEYS[s[1]], s[2]) end
for _, r in ipairs(plan.rpush or {}) do redis.call("RPUSH", KEYS[r[1]], r[2]) end

local counter = redis.call("INCR", KEYS[plan.incr])
redis.call("PUBLISH", plan.publish[1], counter .. " " .. plan.publish[2])
if plan.receipt then
  redis.call("SET", KEYS[plan.receipt], counter, "EX", 3600)
end
return {"ok", counter}
