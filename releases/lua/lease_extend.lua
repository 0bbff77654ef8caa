-- Extend a lease only while this holder still has it.
-- KEYS[1]: the lease key. ARGV[1]: the holder's token. ARGV[2]: new expiry in ms.
-- Returns 1 when extended, 0 when the lease is gone or held by someone else.
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
