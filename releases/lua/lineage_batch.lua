-- Write a batch of lineage records in one command: KEYS[i] := the i-th line of ARGV[1], with
-- expiry ARGV[2]. The records come as one newline-joined argument (JSON never holds a raw
-- newline): the client packs one argument instead of one per record, the largest part of its
-- cost per record (benchmarks/RESULTS.md).
-- With ARGV[3] = "sink", the last key is a Postgres sink stream: the whole batch is also
-- appended to it as one entry, in the same step, so no record is in one and not the other.
-- Only on a single server: on Cluster the keys of a batch live in many slots.
local records, ttl = ARGV[1], ARGV[2]
local count = #KEYS
if ARGV[3] == "sink" then
  count = count - 1
  redis.call("XADD", KEYS[#KEYS], "*", "r", records)
end
local start = 1
for i = 1, count do
  local stop = string.find(records, "\n", start, true) or (#records + 1)
  redis.call("SET", KEYS[i], string.sub(records, start, stop - 1), "EX", ttl)
  start = stop + 1
end
return count
