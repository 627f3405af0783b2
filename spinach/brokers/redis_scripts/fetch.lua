-- fetch: take up to N runnable jobs from queues, in the order given, marking them running
-- under the caller's worker id.
--
-- Each payload is decoded and checked (in pcall) before it leaves its queue: a bad one
-- goes to the dead letters, a job whose task is at its max_concurrency stays in place. A
-- job whose task is over its global rate limit (GCRA, spinach/rate_limit.py) is deferred:
-- the first one goes to the future jobs at the time one may start, the others stay in
-- place until then (that job's move wakes the workers).
-- At most ARGV[6] payloads of each queue are looked at, so a queue full of jobs at their
-- limit does not make the script long.
--
-- A call sent twice (the reply was lost, redis-py sent it again) must not take new jobs
-- and strand the first ones: the reply is kept in the worker's cache under the fetch id
-- and a call with a cached fetch id returns it. The client acknowledges a reply by
-- listing its fetch id in its next fetch, which deletes it.
--
-- Idle registration (the job handed over with its wake-up): a fetch first ends the
-- caller's registration, and moves the jobs enqueue handed over to it (kept under the
-- registered fetch id ARGV[7]) into its own reply; a fetch that took fewer jobs than it
-- asked for and names a next fetch id (ARGV[8]) registers the caller as idle under it,
-- for as many jobs as it had room left (less those already handed to that id), until
-- ARGV[9]: enqueue may then do this script's work for a job due now, and publish it on
-- the worker's channel {ns}/handed/<worker id>.
--
-- KEYS[1]  queues           set   names of the queues that ever held a payload
-- KEYS[2]  queued_ids       hash  job id -> number of its payloads waiting in queues
-- KEYS[3]  running          hash  job id -> payload of a running job
-- KEYS[4]  running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue,
--                                  a: id of the fetch that started it}
-- KEYS[5]  running_by_task  hash  task name -> number of its running jobs
-- KEYS[6]  running_owners   hash  worker id -> number of its running jobs
-- KEYS[7]  limits           hash  task name -> max_concurrency
-- KEYS[8]  dead             hash  dead letter id -> payload
-- KEYS[9]  dead_queue       hash  dead letter id -> queue it came from
-- KEYS[10] dead_reason      hash  dead letter id -> why it cannot run
-- KEYS[11] dead_order       zset  dead letter ids, scored by arrival (oldest first)
-- KEYS[12] fetchers         set   worker ids that may have a fetch cache
-- KEYS[13] dead_time        hash  dead letter id -> failure time
-- KEYS[14] dead_seq         string counter of dead letter arrivals
-- KEYS[15] future           zset  job ids due later, scored by due time
-- KEYS[16] future_jobs      hash  job id -> payload of a future job
-- KEYS[17] future_queues    hash  job id -> queue of a future job
-- KEYS[18] rate_limits      hash  task name -> JSON [interval, tolerance] of its GCRA
-- KEYS[19] rate_tat         hash  task name -> its GCRA's theoretical arrival time
-- KEYS[20] rate_deferred    hash  task name -> due time of its job deferred last
-- KEYS[21] unique_of        hash  job id -> unique key it holds (released with a payload
--                                  dead-lettered whose job is stored nowhere else)
-- KEYS[22] idle             hash  worker id -> JSON of its idle registration (_common.lua)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] worker id of the caller
-- ARGV[4] fetch id, unique per fetch (the same when a fetch is sent again)
-- ARGV[5] maximum number of jobs to take
-- ARGV[6] maximum number of payloads to look at per queue
-- ARGV[7] the fetch id the caller registered with its last fetch ("": none)
-- ARGV[8] the fetch id to register the caller under if idle after this fetch ("": none)
-- ARGV[9] broker time that registration lapses at
-- ARGV[10] how many of the jobs handed to ARGV[7] the worker has already (heard): the
--          others count against ARGV[5]
-- ARGV[11] number n of acknowledged fetch ids that follow
-- ARGV[12 .. 11+n] acknowledged fetch ids, whose cached replies are deleted
-- ARGV[12+n ..] queue names, in priority order; each queue's priority bands
--               (spinach/priority.py) that ever held a job and are not named are scanned
--               right after it
-- Returns {taken, dead, handed}: taken is job id, payload, job id, payload... of the jobs
-- taken; dead is dead letter id, payload... of the payloads dead-lettered; handed is job
-- id, payload... of the jobs handed over to ARGV[7] (running in that attempt).
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], running = KEYS[3],
  running_meta = KEYS[4], running_by_task = KEYS[5], running_owners = KEYS[6],
  limits = KEYS[7], dead = KEYS[8], dead_queue = KEYS[9], dead_reason = KEYS[10],
  dead_order = KEYS[11], fetchers = KEYS[12], dead_time = KEYS[13], dead_seq = KEYS[14],
  future = KEYS[15], future_jobs = KEYS[16], future_queues = KEYS[17],
  rate_limits = KEYS[18], rate_tat = KEYS[19], rate_deferred = KEYS[20], unique_of = KEYS[21],
  idle = KEYS[22],
}
local now, worker, fetch_id = ARGV[2], ARGV[3], ARGV[4]
local left, scan_limit, acks = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[11])
local registered, next_id, lapse = ARGV[7], ARGV[8], ARGV[9]
local cache = k.prefix .. 'fetched/' .. worker

for i = 12, 11 + acks do redis.call('HDEL', cache, ARGV[i]) end
local cached = redis.call('HGET', cache, fetch_id)
if cached then return cjson.decode(cached) end

-- The registration ends here; what it was handed comes with this reply.
unregister_idle(k, worker)
local handed = {}
if registered ~= '' then
  handed = handed_to(cache, registered)
  if #handed > 0 then redis.call('HDEL', cache, registered) end
end
left = left - math.max(0, #handed / 2 - tonumber(ARGV[10])) -- they take free workers too

local taken, dead = {}, {}

-- The jobs started, written to running (start_running) in one call per key once
-- a queue is scanned, before they leave it: pending holds {id, payload, task, queue} of
-- each, started[task] their count, taken_ids all those this fetch took; emptied the job
-- ids no payload in a queue counts any more (one HDEL).
local pending, started, taken_ids, emptied = {}, {}, {}, {}

local function unqueue(id)
  if id and redis.call('HINCRBY', k.queued_ids, id, -1) <= 0 then emptied[#emptied + 1] = id end
end

local function write_started()
  call_many('HDEL', k.queued_ids, emptied)
  start_running(k, pending, worker, now, fetch_id)
  emptied, pending, started = {}, {}, {}
end

-- Whether `task` is at its max_concurrency (its limit read once per fetch).
local limits = {}
local function at_limit(task)
  if limits[task] == nil then
    limits[task] = tonumber(redis.call('HGET', k.limits, task)) or false
  end
  local limit = limits[task]
  if not limit then return false end
  local running = tonumber(redis.call('HGET', k.running_by_task, task) or '0')
  return running + (started[task] or 0) >= limit
end

-- Global rate limits: the GCRA {interval, tolerance} of a task, false without one (read
-- once per task and fetch; nothing at all when no task has a limit).
local now_n, any_rate = tonumber(now), redis.call('EXISTS', k.rate_limits) == 1
local rates, over = {}, {}
local function rate_of(task)
  if not any_rate then return false end
  if rates[task] == nil then
    local raw = redis.call('HGET', k.rate_limits, task)
    rates[task] = raw and cjson.decode(raw) or false
  end
  return rates[task]
end

-- One GCRA check of `task` now: true when a job may start (counted), else false and the
-- time one may. A task over its limit stays so for the rest of the fetch.
local function within_rate(task, rate)
  if over[task] then return false, over[task] end
  local tat = tonumber(redis.call('HGET', k.rate_tat, task) or '0')
  if tat < now_n then tat = now_n end
  if tat - now_n > rate[2] then
    over[task] = tat - rate[2]
    return false, over[task]
  end
  redis.call('HSET', k.rate_tat, task, tat + rate[1])
  return true
end

-- A job over its task's rate limit: the first goes to the future jobs at `at` (true: it
-- left its queue) unless one is deferred already; the others stay in place (false).
local function defer(queue, id, payload, task, at)
  if tonumber(redis.call('HGET', k.rate_deferred, task) or '0') > now_n then return false end
  redis.call('HSET', k.rate_deferred, task, at)
  unqueue(id)
  schedule(k, id, queue, at, payload)
  return true
end

local function bury(queue, payload, id, reason)
  local fresh = fetch_id .. '/' .. (#dead / 2 + 1)
  unqueue(id)
  local dead_id = add_dead_letter(k, id or fresh, queue, payload, reason, now, fresh)
  dead[#dead + 1] = dead_id
  dead[#dead + 1] = payload
  -- its job ends here unless stored elsewhere (taken by this fetch, or a job it copies)
  if id and not taken_ids[id] and not location(k, id) then release_unique(k, id) end
end

-- Handle one queued payload; true when it leaves its queue.
local function visit(queue, payload)
  local job, reason, data = decode_job(payload)
  local id = payload_id(data)
  if job and (taken_ids[id] or redis.call('HEXISTS', k.running, id) == 1) then
    job, reason = nil, 'job ' .. id .. ' is already running'
  end
  if not job then
    bury(queue, payload, id, reason)
    return true
  end
  if at_limit(job.task_name) then return false end
  local rate = rate_of(job.task_name)
  if rate then
    local allowed, at = within_rate(job.task_name, rate)
    if not allowed then return defer(queue, id, payload, job.task_name, at) end
  end
  unqueue(id)
  pending[#pending + 1] = {id, payload, job.task_name, queue}
  started[job.task_name] = (started[job.task_name] or 0) + 1
  taken_ids[id] = true
  taken[#taken + 1] = id
  taken[#taken + 1] = payload
  left = left - 1
  return true
end

-- Take out the payloads at `indexes` (ascending, 0-based) of a queue.
local function remove_indexes(key, indexes)
  local n = #indexes
  if n == 0 then return end
  if indexes[n] == n - 1 then -- the first n: trim them off
    redis.call('LTRIM', key, n, -1)
    return
  end
  local marker = '\0spinach:taken:' .. fetch_id
  for _, index in ipairs(indexes) do redis.call('LSET', key, index, marker) end
  redis.call('LREM', key, n, marker)
end

local function scan(queue)
  local key = k.prefix .. 'queue/' .. queue
  local removed, position, chunk = {}, 0, math.max(left, 8)
  while left > 0 and position < scan_limit do
    local last = math.min(position + chunk, scan_limit) - 1
    local payloads = redis.call('LRANGE', key, position, last)
    for i, payload in ipairs(payloads) do
      if visit(queue, payload) then removed[#removed + 1] = position + i - 1 end
      if left == 0 then break end
    end
    if #payloads < last - position + 1 then break end -- the end of the queue
    position, chunk = last + 1, chunk * 2
  end
  write_started()
  remove_indexes(key, removed)
end

-- The priority bands of `queue` that ever held a job, most urgent first: one SMISMEMBER
-- (Redis 6.2+), else one SISMEMBER per band (an older server refuses SMISMEMBER).
local function bands_of(queue)
  local stem, held = queue .. '\6\22', {} -- levels spelled out: cheaper than tostring
  local bands = {stem .. '1', stem .. '2', stem .. '3', stem .. '4', stem .. '5', stem .. '6',
           stem .. '7', stem .. '8', stem .. '9'}
  local found = redis.pcall('SMISMEMBER', k.queues, unpack(bands))
  if type(found) ~= 'table' or found.err then
    found = {}
    for level = 1, 9 do found[level] = redis.call('SISMEMBER', k.queues, bands[level]) end
  end
  for level = 1, 9 do
    if found[level] == 1 then held[#held + 1] = bands[level] end
  end
  return held
end

local named, serves = {}, {}
for i = 12 + acks, #ARGV do
  named[ARGV[i]] = true
  serves[#serves + 1] = ARGV[i]
end
for _, queue in ipairs(serves) do
  if left <= 0 then break end
  scan(queue)
  if left > 0 then
    for _, band in ipairs(bands_of(queue)) do
      if left > 0 and not named[band] then scan(band) end
    end
  end
end

-- Idle with room left: register under the next fetch id (a call sent again counts the
-- jobs handed to that id since its first run).
if next_id ~= '' and left > 0 and #serves > 0 then
  left = left - #handed_to(cache, next_id) / 2
  if left > 0 then
    redis.call('HSET', k.idle, worker, cjson.encode({f = next_id, n = left, e = lapse, q = serves}))
    redis.call('SADD', k.fetchers, worker) -- the jobs handed over go to its cache
    for _, queue in ipairs(serves) do
      redis.call('ZADD', k.prefix .. 'idle_for/' .. queue, now, worker)
    end
  end
end

local reply = {taken, dead, handed}
if #taken > 0 or #handed > 0 then
  redis.call('HSET', cache, fetch_id, cjson.encode(reply))
  redis.call('SADD', k.fetchers, worker)
end
return reply
