-- increment: add to a counter and make it expire. A call sent again (same call id) counts
-- once and returns the first reply.
--
-- KEYS[1] counter     string  the count, expiring ARGV[5] ms after the last increment
-- KEYS[2] replies     hash    call id -> JSON of its reply
-- KEYS[3] replies_at  zset    call ids, scored by call time
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] milliseconds the counter lives after this call
-- ARGV[6] amount to add (negative to subtract)
-- Returns the new count.
local k = {counter = KEYS[1], replies = KEYS[2], replies_at = KEYS[3]}

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local count = redis.call('INCRBY', k.counter, ARGV[6])
redis.call('PEXPIRE', k.counter, ARGV[5])
return keep_reply(k, ARGV[3], count, ARGV[2], ARGV[4])
