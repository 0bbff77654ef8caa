-- Give a lease back only if this holder still has it (never delete another's lease).
-- KEYS[1]: the lease key. ARGV[1]: the holder's token. Returns 1 when released, else 0.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
