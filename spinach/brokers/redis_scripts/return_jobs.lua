-- return_jobs: give back fetched jobs that never started, to the front of their queue in
-- the order given, without counting a retry. A job this worker does not run any more, in
-- that attempt (recovery took it from a worker declared dead: queued again, or failed and
-- reported so), is a late report: nothing is stored. A call sent again (same call id) does
-- nothing and returns the first reply.
--
-- KEYS[1] queues           set   names of the queues that ever held a payload
-- KEYS[2] queued_ids       hash  job id -> number of its payloads waiting in queues
-- KEYS[3] future           zset  job ids due later, scored by due time
-- KEYS[4] running          hash  job id -> payload of a running job
-- KEYS[5] running_meta     hash  job id -> JSON {w: worker id, t: task name, q: queue}
-- KEYS[6] running_by_task  hash  task name -> number of its running jobs
-- KEYS[7] running_owners   hash  worker id -> number of its running jobs
-- KEYS[8] replies          hash  call id -> JSON of its reply
-- KEYS[9] replies_at       zset  call ids, scored by call time
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] worker id of the caller
-- ARGV[7..] four per job, in queue order: job id, queue, payload, id of the fetch that
--           started the attempt ("": any attempt)
-- Returns where each job is after the call: "QUEUED", "WAITING" or "RUNNING"; "NOT_SET"
-- for a late report.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], future = KEYS[3],
  running = KEYS[4], running_meta = KEYS[5], running_by_task = KEYS[6],
  running_owners = KEYS[7], replies = KEYS[8], replies_at = KEYS[9],
}
local worker = ARGV[6]

local earlier = earlier_reply(k, ARGV[3])
if earlier then return earlier end

local count = (#ARGV - 6) / 4
local statuses = {}
for n = count, 1, -1 do -- last first, so the first ends at the front
  local i = 7 + (n - 1) * 4
  local id, queue, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local where = 'NOT_SET' -- a late report: recovery took the job already
  if release(k, id, worker, ARGV[i + 3]) then
    where = location(k, id)
    if not where then
      push(k, queue, payload, id, true)
      where = 'QUEUED'
    end
  end
  statuses[n] = where
end
notify(ARGV[5])
return keep_reply(k, ARGV[3], statuses, ARGV[2], ARGV[4])
