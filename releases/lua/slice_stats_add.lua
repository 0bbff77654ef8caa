-- Add one flush of slice statistics in one command: for each KEYS[k] (a channel's minute),
-- its whole-number fields with HINCRBY and the others with HINCRBYFLOAT, then its expiry.
-- ARGV[1] is the expiry in seconds; then, for each key in turn, the number of HINCRBY pairs,
-- the number of HINCRBYFLOAT pairs, and the pairs (field, amount). One command instead of one
-- per field: the client's cost of the flush was per command (benchmarks/RESULTS.md).
-- As the pipeline it replaces, a field that refuses its increment stops nothing else: every
-- other increment and expiry is made, then the first error is answered.
local ttl = ARGV[1]
local at = 2
local failed = nil
local function add(command, key)
  local field, amount = ARGV[at], ARGV[at + 1]
  local reply = redis.pcall(command, key, field, amount)
  if command == "HINCRBY" and type(reply) == "table" and reply.err
      and string.find(reply.err, "not an integer", 1, true) then
    -- The field holds a fraction and this sum happens to be whole (costs or scores of 0 or
    -- 1): add it as a fraction. HINCRBY refused it, which failed the whole flush and made the
    -- collector add everything in it again with the next one.
    reply = redis.pcall("HINCRBYFLOAT", key, field, amount)
  end
  if failed == nil and type(reply) == "table" and reply.err then
    failed = reply
  end
  at = at + 2
end
for k = 1, #KEYS do
  local whole, fractional = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  at = at + 2
  for _ = 1, whole do
    add("HINCRBY", KEYS[k])
  end
  for _ = 1, fractional do
    add("HINCRBYFLOAT", KEYS[k])
  end
  redis.call("EXPIRE", KEYS[k], ttl)
end
if failed ~= nil then
  return failed
end
return #KEYS
