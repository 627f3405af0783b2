-- enqueue: store jobs, due ones at the end of their queue, later ones in the future set.
-- A job id already queued, waiting or running is not stored again. With from_failure each
-- job is first taken out of running, freeing its concurrency slot, before being stored
-- again; a job the caller's worker does not run any more (recovery took it from a worker
-- declared dead: it was queued again or failed) is a late report: nothing is stored,
-- wherever the job is. A call sent again (same call id) does nothing and returns the first
-- reply, even if the jobs ran and finished in between. A unique job whose key a stored job
-- holds is not stored: the reply gives that job's status and id instead.
--
-- The job handed over with its wake-up: a new job (not one coming back from a failed
-- attempt, which is queued and notified as before) due now whose queue (or the queue whose
-- priority band it is) an idle worker registered for (fetch.lua), and whose task has
-- neither a max_concurrency nor a rate limit, is not queued: this script does that
-- worker's registered fetch for it (marks it running under the worker, in the attempt of
-- the registered fetch id; adds it to the jobs handed over under that fetch id in the
-- worker's fetch cache, which its next fetch collects: add_handed), takes one job off the
-- registration, and publishes [fetch id, job id, payload] on the worker's channel
-- {ns}/handed/<worker id>. Its status is still "QUEUED" (accepted to run now). A
-- registration past its lapse time, or whose worker has no subscriber on its channel (the
-- process died, or is reconnecting), is removed.
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
-- KEYS[13] limits           hash  task name -> max_concurrency
-- KEYS[14] rate_limits      hash  task name -> JSON [interval, tolerance] of its GCRA
-- KEYS[15] idle             hash  worker id -> JSON of its idle registration (_common.lua)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] "1" when the jobs come back from a failed attempt, else "0"
-- ARGV[7] worker id of the caller
-- ARGV[8..] eight per job: job id, queue, due time, payload, with from_failure the id of
--           the fetch that started the failed attempt ("": any attempt), its unique key
--           ("": not unique), the seconds it holds the key at most ("": while it lives)
--           and its task name
-- Returns where each job is after the call: "QUEUED", "WAITING" or "RUNNING"; "NOT_SET"
-- for a late report (from_failure, not the caller's job any more); "<status>/<id>" for a
-- unique job not stored, the key being held by job <id>.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], future = KEYS[3],
  future_jobs = KEYS[4], future_queues = KEYS[5], running = KEYS[6],
  running_meta = KEYS[7], running_by_task = KEYS[8], running_owners = KEYS[9],
  replies = KEYS[10], replies_at = KEYS[11], unique_of = KEYS[12], limits = KEYS[13],
  rate_limits = KEYS[14], idle = KEYS[15],
}
local now, channel, from_failure, worker = tonumber(ARGV[2]), ARGV[5], ARGV[6] == '1', ARGV[7]

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

-- With several jobs, keys known empty are not searched for each (the future set fills as
-- jobs are scheduled; nothing here adds to running); payloads are pushed in one RPUSH per
-- queue at the end, their ids counted at once (a job id given twice is stored once), each
-- queue named once.
local several = #ARGV >= 7 + 3 * 8
local empty = {
  future = several and redis.call('EXISTS', k.future) == 0,
  running = several and redis.call('EXISTS', k.running) == 0,
}
local pushes, queue_order = {}, {}
local handed, quiet = false, true -- a job handed over; nothing else to wake workers for
local no_idle = {} -- queues found with no live registration during this call

-- Whether the subscriber of `worker` listens on its channel: a process that died closed its
-- connection (Redis counts the subscribers of its own node: the namespace's, where a
-- worker's subscriber listens, its channels having the namespace's hash tag).
local function listens(worker)
  local reply = redis.call('PUBSUB', 'NUMSUB', k.prefix .. 'handed/' .. worker)
  return tonumber(reply[2]) > 0
end

-- A live registration serving `queue` (the oldest registered first): its worker and the
-- registration; those past their lapse time, or whose worker does not listen, are removed
-- on the way.
local function registration_for(queue)
  if no_idle[queue] then return nil end
  local key = k.prefix .. 'idle_for/' .. queue
  while true do
    local worker = redis.call('ZRANGE', key, 0, 0)[1]
    if not worker then break end
    local raw = redis.call('HGET', k.idle, worker)
    local registration = raw and cjson.decode(raw)
    local live = registration and tonumber(registration.e) > now and listens(worker)
    if live then return worker, registration end
    if registration then
      drop_registration(k, worker, registration)
    else
      redis.call('ZREM', key, worker)
    end
  end
  no_idle[queue] = true
  return nil
end

-- An idle worker that may be handed a job of `task` due now on `queue`, with its
-- registration; nil when none (or the task is limited: the fetch's checks stay its own).
local function taker(queue, task)
  local worker, registration = registration_for(queue)
  local band = string.find(queue, '\6\22', 1, true)
  if not worker and band then
    worker, registration = registration_for(string.sub(queue, 1, band - 1))
  end
  if not worker then return nil end
  if redis.call('HEXISTS', k.limits, task) == 1 then return nil end
  if redis.call('HEXISTS', k.rate_limits, task) == 1 then return nil end
  return worker, registration
end

-- Do the registered fetch of `worker` for one job (see the header).
local function hand_over(worker, registration, id, queue, payload, task)
  local fetch_id, cache = registration.f, k.prefix .. 'fetched/' .. worker
  start_running(k, {{id, payload, task, queue}}, worker, now, fetch_id)
  -- the fetch that registered the worker added it to the fetchers (caches cleaned up)
  local pair = add_handed(cache, fetch_id, id, payload)
  if registration.n <= 1 then
    drop_registration(k, worker, registration)
  else
    registration.n = registration.n - 1
    redis.call('HSET', k.idle, worker, cjson.encode(registration))
  end
  empty.running, handed = false, true
  -- the message [fetch id, job id, payload], its job's part encoded once, by add_handed
  local message = '[' .. cjson.encode(fetch_id) .. ',' .. pair .. ']'
  redis.call('PUBLISH', k.prefix .. 'handed/' .. worker, message)
end

-- Store a job unless it is stored already, or its unique key is held; where it is then.
local function store(id, queue, at, payload, unique, ttl, task)
  local where = location(k, id, empty)
  if where then
    quiet = false
    return where
  end
  if unique ~= '' then
    local holder = unique_holder(k, unique, now)
    if holder then
      quiet = false
      return holder
    end
    hold_unique(k, id, unique, now, ttl)
  end
  local due = tonumber(at) <= now
  local worker, registration
  if due and not from_failure then worker, registration = taker(queue, task) end
  if worker then
    hand_over(worker, registration, id, queue, payload, task)
    return 'QUEUED'
  end
  quiet = false
  if due then
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
for i = 8, #ARGV, 8 do
  local id, queue, at, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if from_failure and not release(k, id, worker, ARGV[i + 4]) then
    statuses[#statuses + 1] = 'NOT_SET' -- a late report: recovery took the job already
  else
    local status = store(id, queue, at, payload, ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
    statuses[#statuses + 1] = status
  end
end
for _, queue in ipairs(queue_order) do
  call_many('RPUSH', k.prefix .. 'queue/' .. queue, pushes[queue])
  redis.call('SADD', k.queues, queue)
end
-- no wake-up when the jobs were only handed over (a failed attempt freed a slot, though)
if not (handed and quiet) or from_failure then notify(channel) end
return keep_reply(k, ARGV[3], statuses, ARGV[2], ARGV[4])
