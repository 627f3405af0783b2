-- finish: forget a job that ended, freeing its concurrency slot. A no-op when the caller's
-- worker does not run the job (already finished, or recovered from a worker declared dead).
--
-- KEYS[1] running          hash  job id -> payload of a running job
-- KEYS[2] running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[3] running_by_task  hash  task name -> number of its running jobs
-- KEYS[4] running_owners   hash  worker id -> number of its running jobs
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] notification channel of the namespace
-- ARGV[3] worker id of the caller
-- ARGV[4] job id
-- Returns 1 when the job was released, 0 for a no-op.
local k = {
  prefix = ARGV[1], running = KEYS[1], running_meta = KEYS[2], running_by_task = KEYS[3],
  running_owners = KEYS[4],
}

if not release(k, ARGV[4], ARGV[3]) then return 0 end
notify(ARGV[2]) -- a concurrency slot is free
return 1
