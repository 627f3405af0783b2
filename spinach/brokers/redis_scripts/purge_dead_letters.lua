-- purge_dead_letters: delete dead letters for good. A call sent again (same call id)
-- does nothing and returns the first reply.
--
-- KEYS[1] dead         hash  dead letter id -> payload
-- KEYS[2] dead_queue   hash  dead letter id -> queue it came from
-- KEYS[3] dead_reason  hash  dead letter id -> why it cannot run
-- KEYS[4] dead_order   zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[5] dead_time    hash  dead letter id -> failure time
-- KEYS[6] replies      hash  call id -> JSON of its reply
-- KEYS[7] replies_at   zset  call ids, scored by call time
-- KEYS[8] dead_unique  hash  dead letter id -> unique key its job held
-- KEYS[9] dead_unique_ttl hash dead letter id -> seconds its job held that key for
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] "all" for every dead letter, else "some"
-- ARGV[6..] ids of the dead letters to delete (with "some"); unknown ones are ignored
-- Returns the number of dead letters deleted.
local k = {
  dead = KEYS[1], dead_queue = KEYS[2], dead_reason = KEYS[3], dead_order = KEYS[4],
  dead_time = KEYS[5], replies = KEYS[6], replies_at = KEYS[7], dead_unique = KEYS[8],
  dead_unique_ttl = KEYS[9],
}

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local ids = dead_letter_ids(k, ARGV[5], 6)
for _, id in ipairs(ids) do remove_dead_letter(k, id) end
return keep_reply(k, ARGV[3], #ids, ARGV[2], ARGV[4])
