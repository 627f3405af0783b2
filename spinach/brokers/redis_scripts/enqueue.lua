-- enqueue: store jobs, due ones at the end of their queue, later ones in the future set.
-- A job id already queued, waiting or running is not stored again. With from_failure each
-- job is first taken out of running, freeing its concurrency slot, before being stored
-- again; a job the caller's worker does not run any more (recovery took it from a worker
-- declared dead: it was queued again or failed) is a late report: nothing is stored,
-- wherever the job is. A call sent again (same call id) does nothing and returns the first
-- reply, even if the jobs ran and finished in between. A unique job whose key a stored job
-- holds is not stored: the reply gives that job's status and id instead.
--
-- KEYS[1]  queues           set   names of the queues that ever held a payload
-- KEYS[2]  queued_ids       hash  job id -> number of its payloads waiting in queues
-- KEYS[3]  future           zset  job ids due later, scored by due time
-- KEYS[4]  future_jobs      hash  job id -> payload of a future job
-- KEYS[5]  future_queues    hash  job id -> queue of a future job
-- KEYS[6]  running          hash  job id -> payload of a running job
-- KEYS[7]  running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[8]  running_by_task  hash  task name -> number of its running jobs
-- KEYS[9]  running_owners   hash  worker id -> number of its running jobs
-- KEYS[10] replies          hash  call id -> JSON of its reply
-- KEYS[11] replies_at       zset  call ids, scored by call time
-- KEYS[12] unique_of        hash  job id -> unique key it holds
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] "1" when the jobs come back from a failed attempt, else "0"
-- ARGV[7] worker id of the caller
-- ARGV[8..] seven per job: job id, queue, due time, payload, with from_failure the id of
--           the fetch that started the failed attempt ("": any attempt), its unique key
--           ("": not unique) and the seconds it holds the key at most ("": while it lives)
-- Returns where each job is after the call: "QUEUED", "WAITING" or "RUNNING"; "NOT_SET"
-- for a late report (from_failure, not the caller's job any more); "<status>/<id>" for a
-- unique job not stored, the key being held by job <id>.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], future = KEYS[3],
  future_jobs = KEYS[4], future_queues = KEYS[5], running = KEYS[6],
  running_meta = KEYS[7], running_by_task = KEYS[8], running_owners = KEYS[9],
  replies = KEYS[10], replies_at = KEYS[11], unique_of = KEYS[12],
}
local now, channel, from_failure, worker = tonumber(ARGV[2]), ARGV[5], ARGV[6] == '1', ARGV[7]

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

-- With several jobs, keys known empty are not searched for each (the future set fills as
-- jobs are scheduled; nothing here adds to running); payloads are pushed in one RPUSH per
-- queue at the end, their ids counted at once (a job id given twice is stored once), each
-- queue named once.
local several = #ARGV >= 7 + 3 * 7
local empty = {
  future = several and redis.call('EXISTS', k.future) == 0,
  running = several and redis.call('EXISTS', k.running) == 0,
}
local pushes, queue_order = {}, {}

-- Store a job unless it is stored already, or its unique key is held; where it is then.
local function store(id, queue, at, payload, unique, ttl)
  local where = location(k, id, empty)
  if where then return where end
  if unique ~= '' then
    local holder = unique_holder(k, unique, now)
    if holder then return holder end
    hold_unique(k, id, unique, now, ttl)
  end
  if tonumber(at) <= now then
    if not pushes[queue] then
      pushes[queue] = {}
      queue_order[#queue_order + 1] = queue
    end
    table.insert(pushes[queue], payload)
    redis.call('HINCRBY', k.queued_ids, id, 1)
    return 'QUEUED'
  end
  schedule(k, id, queue, at, payload)
  empty.future = false
  return 'WAITING'
end

local statuses = {}
for i = 8, #ARGV, 7 do
  local id, queue, at, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if from_failure and not release(k, id, worker, ARGV[i + 4]) then
    statuses[#statuses + 1] = 'NOT_SET' -- a late report: recovery took the job already
  else
    statuses[#statuses + 1] = store(id, queue, at, payload, ARGV[i + 5], ARGV[i + 6])
  end
end
for _, queue in ipairs(queue_order) do
  call_many('RPUSH', k.prefix .. 'queue/' .. queue, pushes[queue])
  redis.call('SADD', k.queues, queue)
end
notify(channel)
return keep_reply(k, ARGV[3], statuses, ARGV[2], ARGV[4])
