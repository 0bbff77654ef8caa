-- What verification reads, in one atomic step:
-- KEYS = audit list, audit head, releases hash, eval results hash, channels hash,
-- API keys hash, API key names hash.
-- Returns {entries oldest first, head or "", releases as id, record, id, record...,
-- eval result records, channels as name, record..., keys as digest, record...,
-- key names as name, digest...}.
return {
  redis.call("LRANGE", KEYS[1], 0, -1),
  redis.call("GET", KEYS[2]) or "",
  redis.call("HGETALL", KEYS[3]),
  redis.call("HVALS", KEYS[4]),
  redis.call("HGETALL", KEYS[5]),
  redis.call("HGETALL", KEYS[6]),
  redis.call("HGETALL", KEYS[7]),
}
