-- What verification reads, in one atomic step:
-- KEYS = audit list, audit head, releases hash, eval results hash.
-- Returns {entries oldest first, head or "", releases as id, record, id, record...,
-- eval result records}.
return {
  redis.call("LRANGE", KEYS[1], 0, -1),
  redis.call("GET", KEYS[2]) or "",
  redis.call("HGETALL", KEYS[3]),
  redis.call("HVALS", KEYS[4]),
}
