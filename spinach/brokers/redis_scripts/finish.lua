-- finish: forget jobs that ended, freeing their concurrency slots. A job the caller's
-- worker does not run in that attempt (already finished, or recovered from a worker
-- declared dead, maybe fetched again by it) is skipped, so running the script twice is a no-op the second time.
--
-- KEYS[1] running          hash  job id -> payload of a running job
-- KEYS[2] running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[3] running_by_task  hash  task name -> number of its running jobs
-- KEYS[4] running_owners   hash  worker id -> number of its running jobs
-- KEYS[5] limits           hash  task name -> max_concurrency
-- KEYS[6] unique_of        hash  job id -> unique key it holds (released here)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] notification channel of the namespace
-- ARGV[3] worker id of the caller
-- ARGV[4..] two per job that ended: job id, id of the fetch that started the attempt ("":
--           any attempt)
-- Returns the number of jobs released.
local k = {
  prefix = ARGV[1], running = KEYS[1], running_meta = KEYS[2], running_by_task = KEYS[3],
  running_owners = KEYS[4], limits = KEYS[5], unique_of = KEYS[6],
}

local worker = ARGV[3]

-- The jobs to release: those `worker` runs in the attempt named (one HMGET for all).
local ids = {}
for i = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local metas = {}
for first = 1, #ids, 4000 do
  local last = math.min(first + 3999, #ids)
  local part = redis.call('HMGET', k.running_meta, unpack(ids, first, last))
  for n = 1, last - first + 1 do metas[first + n - 1] = part[n] end
end
local gone, per_task, seen = {}, {}, {}
for n, id in ipairs(ids) do
  local raw, attempt = metas[n], ARGV[3 + 2 * n]
  local meta = raw and not seen[id] and cjson.decode(raw)
  if meta and meta.w == worker and (attempt == '' or not meta.a or meta.a == attempt) then
    seen[id] = true
    gone[#gone + 1] = id
    per_task[meta.t] = (per_task[meta.t] or 0) + 1
  end
end
if #gone == 0 then return 0 end

-- Release them as `release` does, one call per key (and per task) for all.
call_many('HDEL', k.running, gone)
call_many('HDEL', k.running_meta, gone)
local limited = false
for task, count in pairs(per_task) do
  if redis.call('HINCRBY', k.running_by_task, task, -count) <= 0 then
    redis.call('HDEL', k.running_by_task, task)
  end
  limited = limited or redis.call('HEXISTS', k.limits, task) == 1
end
if redis.call('HINCRBY', k.running_owners, worker, -#gone) <= 0 then
  redis.call('HDEL', k.running_owners, worker)
end
call_many('ZREM', k.prefix .. 'running_of/' .. worker, gone)
if redis.call('EXISTS', k.unique_of) == 1 then
  for _, id in ipairs(gone) do release_unique(k, id) end
end
-- Only a freed slot of a limited task can unblock a waiting job: other workers need no
-- wake-up for the rest (they fetch when a thread of theirs is free).
if limited then notify(ARGV[2]) end
return #gone
