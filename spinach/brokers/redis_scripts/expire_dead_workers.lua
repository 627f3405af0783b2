-- expire_dead_workers: first step of the recovery of dead workers' jobs. Removes the
-- workers silent since before the deadline (never the caller) with their fetch caches
-- and idle registrations (a job handed over to one is running under it: listed below),
-- then lists the running jobs whose worker is not registered: those of the workers just
-- removed, and orphans left by workers that deregistered or never registered.
--
-- Nothing moves the jobs here: the client adds a retry to each payload (JSON is rebuilt
-- in Python, not in Lua) and hands them to recover_jobs. Running it twice only lists the
-- same jobs again.
--
-- KEYS[1] workers         hash  worker id -> JSON of its WorkerInfo
-- KEYS[2] heartbeats      zset  worker ids, scored by last heartbeat
-- KEYS[3] running         hash  job id -> payload of a running job
-- KEYS[4] running_owners  hash  worker id -> number of its running jobs
-- KEYS[5] fetchers        set   worker ids that may have a fetch cache
-- KEYS[6] idle            hash  worker id -> JSON of its idle registration (_common.lua)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] deadline: a last heartbeat strictly before it is too old
-- ARGV[3] worker id of the caller
-- Returns job id, worker id, payload... of the running jobs of unregistered workers,
-- oldest fetch first for each worker.
local k = {
  prefix = ARGV[1], workers = KEYS[1], heartbeats = KEYS[2], running = KEYS[3],
  running_owners = KEYS[4], fetchers = KEYS[5], idle = KEYS[6],
}
local caller = ARGV[3]

for _, worker in ipairs(redis.call('ZRANGEBYSCORE', k.heartbeats, '-inf', '(' .. ARGV[2])) do
  if worker ~= caller then
    redis.call('HDEL', k.workers, worker)
    redis.call('ZREM', k.heartbeats, worker)
    redis.call('DEL', k.prefix .. 'fetched/' .. worker)
    redis.call('SREM', k.fetchers, worker)
    unregister_idle(k, worker)
  end
end

local lost = {}
for _, owner in ipairs(redis.call('HKEYS', k.running_owners)) do
  if owner ~= caller and redis.call('HEXISTS', k.workers, owner) == 0 then
    for _, id in ipairs(redis.call('ZRANGE', k.prefix .. 'running_of/' .. owner, 0, -1)) do
      local payload = redis.call('HGET', k.running, id)
      if payload then
        lost[#lost + 1] = id
        lost[#lost + 1] = owner
        lost[#lost + 1] = payload
      end
    end
  end
end
return lost
