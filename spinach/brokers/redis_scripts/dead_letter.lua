-- dead_letter: set aside a fetched job that cannot run, with why, freeing its concurrency
-- slot. Only a job running under the caller's worker id is dead-lettered: a late worker's
-- job (recovery took it from a worker declared dead: queued again, rerun or failed) is
-- left where it is, and a call sent twice finds nothing to do the second time.
--
-- KEYS[1] running          hash  job id -> payload of a running job
-- KEYS[2] running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[3] running_by_task  hash  task name -> number of its running jobs
-- KEYS[4] running_owners   hash  worker id -> number of its running jobs
-- KEYS[5] dead             hash  dead letter id -> payload
-- KEYS[6] dead_queue       hash  dead letter id -> queue it came from
-- KEYS[7] dead_reason      hash  dead letter id -> why it cannot run
-- KEYS[8] dead_order       zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[9] dead_time        hash  dead letter id -> failure time
-- KEYS[10] dead_seq        string counter of dead letter arrivals
-- KEYS[11] unique_of       hash  job id -> unique key it holds (released here)
-- KEYS[12] dead_unique     hash  dead letter id -> unique key its job held (taken again
--                                by retry_dead_letters)
-- KEYS[13] dead_unique_ttl hash  dead letter id -> seconds its job held that key for
--                                ("0": its hold had lapsed; none: while it lived)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] notification channel of the namespace
-- ARGV[4] worker id of the caller
-- ARGV[5] job id
-- ARGV[6] payload
-- ARGV[7] reason
-- ARGV[8] id to use instead when another payload is dead-lettered under the job id
-- ARGV[9] id of the fetch that started the attempt ("": any attempt)
-- Returns the id of the dead letter, or nil when the caller's worker does not run the job.
local k = {
  prefix = ARGV[1], running = KEYS[1], running_meta = KEYS[2], running_by_task = KEYS[3],
  running_owners = KEYS[4], dead = KEYS[5], dead_queue = KEYS[6], dead_reason = KEYS[7],
  dead_order = KEYS[8], dead_time = KEYS[9], dead_seq = KEYS[10], unique_of = KEYS[11],
  dead_unique = KEYS[12], dead_unique_ttl = KEYS[13],
}
local now = tonumber(ARGV[2])

local meta = release(k, ARGV[5], ARGV[4], ARGV[9])
if not meta then return nil end -- a late report, or a call sent again: nothing to do
local unique = redis.call('HGET', k.unique_of, ARGV[5])
local ttl = unique and held_for(k, unique, ARGV[5], now)
release_unique(k, ARGV[5])
local id = add_dead_letter(k, ARGV[5], meta.q, ARGV[6], ARGV[7], ARGV[2], ARGV[8])
if unique then redis.call('HSET', k.dead_unique, id, unique) end
if ttl and ttl ~= '' then redis.call('HSET', k.dead_unique_ttl, id, ttl) end
notify(ARGV[3]) -- a concurrency slot is free
return id
