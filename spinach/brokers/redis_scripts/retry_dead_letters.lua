-- retry_dead_letters: put dead letters back at the end of the queue they came from, in
-- arrival order. A bad payload retried is dead-lettered again by the next fetch. The job of
-- a dead letter that held a unique key takes it again, for as long as its job held it (its
-- unique_ttl; not when its hold had lapsed; while the job lives for a dead letter stored
-- before the ttl was kept); while another stored job holds that key, the dead letter stays,
-- untouched. A call sent again (same call id) does nothing and returns the first
-- reply.
--
-- KEYS[1]  queues       set   names of the queues that ever held a payload
-- KEYS[2]  queued_ids   hash  job id -> number of its payloads waiting in queues
-- KEYS[3]  dead         hash  dead letter id -> payload
-- KEYS[4]  dead_queue   hash  dead letter id -> queue it came from
-- KEYS[5]  dead_reason  hash  dead letter id -> why it cannot run
-- KEYS[6]  dead_order   zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[7]  dead_time    hash  dead letter id -> failure time
-- KEYS[8]  replies      hash  call id -> JSON of its reply
-- KEYS[9]  replies_at   zset  call ids, scored by call time
-- KEYS[10] future       zset  job ids due later, scored by due time
-- KEYS[11] running      hash  job id -> payload of a running job
-- KEYS[12] unique_of    hash  job id -> unique key it holds
-- KEYS[13] dead_unique  hash  dead letter id -> unique key its job held
-- KEYS[14] dead_unique_ttl hash dead letter id -> seconds its job held that key for
--                               ("0": its hold had lapsed; none: while it lived)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] "all" for every dead letter, else "some"
-- ARGV[7..] ids of the dead letters to retry (with "some"); unknown ones are ignored
-- Returns the number of dead letters retried, then three per dead letter kept: its id, its
-- unique key and "<status>/<id>" of the job holding that key.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], dead = KEYS[3],
  dead_queue = KEYS[4], dead_reason = KEYS[5], dead_order = KEYS[6], dead_time = KEYS[7],
  replies = KEYS[8], replies_at = KEYS[9], future = KEYS[10], running = KEYS[11],
  unique_of = KEYS[12], dead_unique = KEYS[13], dead_unique_ttl = KEYS[14],
}
local now = tonumber(ARGV[2])

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local reply = {0}
for _, id in ipairs(dead_letter_ids(k, ARGV[6], 7)) do
  local payload = redis.call('HGET', k.dead, id)
  local ok, data = pcall(cjson.decode, payload)
  local job_id = ok and payload_id(data) or nil
  local unique = job_id and redis.call('HGET', k.dead_unique, id)
  local holder = unique and unique_holder(k, unique, now)
  if holder and string.sub(holder, -#job_id - 1) ~= '/' .. job_id then
    reply[#reply + 1], reply[#reply + 2], reply[#reply + 3] = id, unique, holder
  else
    local ttl = unique and not holder and (redis.call('HGET', k.dead_unique_ttl, id) or '')
    if ttl and ttl ~= '0' then hold_unique(k, job_id, unique, now, ttl) end
    push(k, redis.call('HGET', k.dead_queue, id), payload, job_id, false)
    remove_dead_letter(k, id)
    reply[1] = reply[1] + 1
  end
end
if reply[1] > 0 then notify(ARGV[5]) end
return keep_reply(k, ARGV[3], reply, ARGV[2], ARGV[4])
