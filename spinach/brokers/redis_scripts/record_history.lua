-- record_history: keep the records of finished jobs (spinach.history), newest last, then
-- trim the history to its retention and size, and count the jobs finished per minute and
-- queue (the dashboard's rates). A call sent again (same call id) does nothing and
-- returns the first reply.
--
-- KEYS[1] history          zset  job id, scored by the time it finished
-- KEYS[2] history_jobs     hash  job id -> JSON of its record
-- KEYS[3] finished_counts  hash  "<minute> <queue>" -> jobs of queue finished that minute
-- KEYS[4] finished_fields  zset  the fields of finished_counts, scored by their minute
-- KEYS[5] replies          hash  call id -> JSON of its reply
-- KEYS[6] replies_at       zset  call ids, scored by call time
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] seconds a record is kept
-- ARGV[6] most records kept
-- ARGV[7] minutes of counts kept
-- ARGV[8..] for each record: job id, finished at (seconds since the epoch), queue, JSON
-- Returns the number of records kept by this call.
local k = {
  history = KEYS[1], history_jobs = KEYS[2], finished_counts = KEYS[3],
  finished_fields = KEYS[4], replies = KEYS[5], replies_at = KEYS[6],
}

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local now = tonumber(ARGV[2])
-- One call per command for the whole batch, the counts summed per field first.
local scored, records, counts, fields = {}, {}, {}, {}
for i = 8, #ARGV, 4 do
  local id, finished_at, queue = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  scored[#scored + 1], scored[#scored + 2] = finished_at, id
  records[#records + 1], records[#records + 2] = id, ARGV[i + 3]
  local minute = math.floor(finished_at / 60)
  local field = minute .. ' ' .. queue
  if not counts[field] then
    fields[#fields + 1], fields[#fields + 2] = minute, field
  end
  counts[field] = (counts[field] or 0) + 1
end
local added = #records / 2
if added > 0 then
  call_many('ZADD', k.history, scored)
  call_many('HSET', k.history_jobs, records)
  for field, count in pairs(counts) do redis.call('HINCRBY', k.finished_counts, field, count) end
  call_many('ZADD', k.finished_fields, fields)
end

local cutoff = now - tonumber(ARGV[5])
call_many('HDEL', k.history_jobs, redis.call('ZRANGEBYSCORE', k.history, '-inf', '(' .. cutoff))
redis.call('ZREMRANGEBYSCORE', k.history, '-inf', '(' .. cutoff)
local over = redis.call('ZCARD', k.history) - tonumber(ARGV[6])
if over > 0 then
  call_many('HDEL', k.history_jobs, redis.call('ZRANGE', k.history, 0, over - 1))
  redis.call('ZREMRANGEBYRANK', k.history, 0, over - 1)
end

local oldest_minute = math.floor(now / 60) - tonumber(ARGV[7])
local old_fields = redis.call('ZRANGEBYSCORE', k.finished_fields, '-inf', '(' .. oldest_minute)
call_many('HDEL', k.finished_counts, old_fields)
redis.call('ZREMRANGEBYSCORE', k.finished_fields, '-inf', '(' .. oldest_minute)
return keep_reply(k, ARGV[3], added, ARGV[2], ARGV[4])
