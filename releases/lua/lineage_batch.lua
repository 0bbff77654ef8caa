-- Write a batch of lineage records in one command: KEYS[i] := the i-th line of ARGV[1], with
-- expiry ARGV[2]. The records come as one newline-joined argument (JSON never holds a raw
-- newline): the client packs one argument instead of one per record, the largest part of its
-- cost per record (benchmarks/RESULTS.md).
-- Only on a single server: on Cluster the keys of a batch live in many slots.
local records, ttl = ARGV[1], ARGV[2]
local start = 1
for _, key in ipairs(KEYS) do
  local stop = string.find(records, "\n", start, true) or (#records + 1)
  redis.call("SET", key, string.sub(records, start, stop - 1), "EX", ttl)
  start = stop + 1
end
return #KEYS
