-- register_periodic_tasks: make the periodic tasks among a worker's tasks fire once per
-- period. A new task (or one whose period changed) is first due now; a task registered
-- again with the same period keeps its schedule, so every worker may register its tasks at
-- start. A task the worker knows but that is not periodic (any more) stops firing; periodic
-- tasks the worker does not know are left alone: another kind of worker of the namespace
-- (the Celery facade's beat entries, another service) owns them.
--
-- KEYS[1] periodic        zset  periodic task names, scored by next run
-- KEYS[2] periodic_tasks  hash  task name -> JSON {period, queue, tail}
-- ARGV[1] now, seconds since the epoch
-- ARGV[2] number N of periodic tasks that follow
-- ARGV[3..3N+2] three per periodic task: name, period in seconds, JSON {period, queue, tail}
-- ARGV[3N+3..] names of the worker's tasks that are not periodic
-- Returns the number of periodic tasks registered.
local k = {periodic = KEYS[1], periodic_tasks = KEYS[2]}
local count = tonumber(ARGV[2])
local last = 2 + 3 * count

for i = last + 1, #ARGV do
  redis.call('HDEL', k.periodic_tasks, ARGV[i])
  redis.call('ZREM', k.periodic, ARGV[i])
end

for i = 3, last, 3 do
  local name, period, task = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local old = redis.call('HGET', k.periodic_tasks, name)
  local scheduled = redis.call('ZSCORE', k.periodic, name)
  if not (old and scheduled and cjson.decode(old).period == period) then
    redis.call('ZADD', k.periodic, ARGV[1], name)
  end
  redis.call('HSET', k.periodic_tasks, name, task)
end
return count
