-- Everything a replica serves from, read in one atomic step (all keys share one slot).
-- KEYS: change counter, channels hash, API keys hash, releases hash.
-- Returns {counter, channels (flat field/value list), keys (flat), release ids}.
return {
  redis.call("GET", KEYS[1]) or "0",
  redis.call("HGETALL", KEYS[2]),
  redis.call("HGETALL", KEYS[3]),
  redis.call("HKEYS", KEYS[4]),
}
