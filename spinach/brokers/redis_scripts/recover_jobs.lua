-- recover_jobs: second step of the recovery of dead workers' jobs (see
-- expire_dead_workers). Each job still running under the worker named, if that worker is
-- still not registered, leaves running and its concurrency slot is freed; then:
--   retry: its payload (with one more retry) goes to the end of its queue;
--   fail:  it is dropped (at-most-once: it never runs twice);
--   dead:  its payload goes to the dead letters (it cannot be decoded).
-- A job handled already (another worker recovering it first) or whose worker came back
-- is skipped. A call sent again (same call id) does nothing and returns the first reply,
-- so the jobs recovered are reported once.
--
-- KEYS[1]  workers          hash  worker id -> JSON of its WorkerInfo
-- KEYS[2]  queues           set   names of the queues that ever held a payload
-- KEYS[3]  queued_ids       hash  job id -> number of its payloads waiting in queues
-- KEYS[4]  running          hash  job id -> payload of a running job
-- KEYS[5]  running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[6]  running_by_task  hash  task name -> number of its running jobs
-- KEYS[7]  running_owners   hash  worker id -> number of its running jobs
-- KEYS[8]  dead             hash  dead letter id -> payload
-- KEYS[9]  dead_queue       hash  dead letter id -> queue it came from
-- KEYS[10] dead_reason      hash  dead letter id -> why it cannot run
-- KEYS[11] dead_order       zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[12] fetchers         set   worker ids that may have a fetch cache
-- KEYS[13] dead_time        hash  dead letter id -> failure time
-- KEYS[14] dead_seq         string counter of dead letter arrivals
-- KEYS[15] replies          hash  call id -> JSON of its reply
-- KEYS[16] replies_at       zset  call ids, scored by call time
-- KEYS[17] unique_of        hash  job id -> unique key it holds (kept by a job queued
--                                  again, released by one that ends)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6..] six per job: job id, worker id, action ("retry", "fail" or "dead"), queue,
--           payload (with one more retry for "retry"), reason (for "dead")
-- Returns the ids of the jobs recovered.
local k = {
  prefix = ARGV[1], workers = KEYS[1], queues = KEYS[2], queued_ids = KEYS[3],
  running = KEYS[4], running_meta = KEYS[5], running_by_task = KEYS[6],
  running_owners = KEYS[7], dead = KEYS[8], dead_queue = KEYS[9], dead_reason = KEYS[10],
  dead_order = KEYS[11], fetchers = KEYS[12], dead_time = KEYS[13], dead_seq = KEYS[14],
  replies = KEYS[15], replies_at = KEYS[16], unique_of = KEYS[17],
}

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local recovered, owners, requeued = {}, {}, false
for i = 6, #ARGV, 6 do
  local id, owner, action = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local queue, payload, reason = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local meta = redis.call('HEXISTS', k.workers, owner) == 0 and release(k, id, owner)
  if meta then
    if action == 'retry' then
      push(k, queue, payload, id, false)
      requeued = true
    else
      release_unique(k, id)
      if action == 'dead' then
        add_dead_letter(k, id, meta.q, payload, reason, ARGV[2], id .. '/' .. owner)
      end
    end
    recovered[#recovered + 1] = id
    owners[owner] = true
  end
end

for owner in pairs(owners) do -- a worker gone for good needs no fetch cache
  if redis.call('HEXISTS', k.running_owners, owner) == 0 then
    redis.call('DEL', k.prefix .. 'fetched/' .. owner)
    redis.call('SREM', k.fetchers, owner)
  end
end
if requeued then notify(ARGV[5]) end
return keep_reply(k, ARGV[3], recovered, ARGV[2], ARGV[4])
