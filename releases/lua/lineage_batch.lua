-- Write a batch of lineage records in one command: KEYS[i] := ARGV[i] with expiry ARGV[#ARGV].
-- One script call costs the client a fraction of a pipeline of SETs (benchmarks/RESULTS.md).
-- Only on a single server: on Cluster the keys of a batch live in many slots.
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[i], "EX", ttl)
end
return #KEYS
