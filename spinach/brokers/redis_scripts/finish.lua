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

local ids, attempts = {}, {}
for i = 4, #ARGV, 2 do
  ids[#ids + 1], attempts[#attempts + 1] = ARGV[i], ARGV[i + 1]
end
local owned, gone = release_all(k, ARGV[3], ids, attempts)
if #gone == 0 then return 0 end
local limited, checked = false, {}
for _, meta in pairs(owned) do
  if not checked[meta.t] then
    checked[meta.t] = true
    limited = limited or redis.call('HEXISTS', k.limits, meta.t) == 1
  end
end
if redis.call('EXISTS', k.unique_of) == 1 then
  for _, id in ipairs(gone) do release_unique(k, id) end
end
-- Only a freed slot of a limited task can unblock a waiting job: other workers need no
-- wake-up for the rest (they fetch when a thread of theirs is free).
if limited then notify(ARGV[2]) end
return #gone
