-- retry_dead_letters: put dead letters back at the end of the queue they came from, in
-- arrival order. A bad payload retried is dead-lettered again by the next fetch. A call
-- sent again (same call id) does nothing and returns the first reply.
--
-- KEYS[1] queues       set   names of the queues that ever held a payload
-- KEYS[2] queued_ids   hash  job id -> number of its payloads waiting in queues
-- KEYS[3] dead         hash  dead letter id -> payload
-- KEYS[4] dead_queue   hash  dead letter id -> queue it came from
-- KEYS[5] dead_reason  hash  dead letter id -> why it cannot run
-- KEYS[6] dead_order   zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[7] dead_time    hash  dead letter id -> failure time
-- KEYS[8] replies      hash  call id -> JSON of its reply
-- KEYS[9] replies_at   zset  call ids, scored by call time
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] "all" for every dead letter, else "some"
-- ARGV[7..] ids of the dead letters to retry (with "some"); unknown ones are ignored
-- Returns the number of dead letters retried.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], dead = KEYS[3],
  dead_queue = KEYS[4], dead_reason = KEYS[5], dead_order = KEYS[6], dead_time = KEYS[7],
  replies = KEYS[8], replies_at = KEYS[9],
}

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local ids = dead_letter_ids(k, ARGV[6], 7)
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', k.dead, id)
  local ok, data = pcall(cjson.decode, payload)
  push(k, redis.call('HGET', k.dead_queue, id), payload, ok and payload_id(data) or nil, false)
  remove_dead_letter(k, id)
end
if #ids > 0 then notify(ARGV[5]) end
return keep_reply(k, ARGV[3], #ids, ARGV[2], ARGV[4])
