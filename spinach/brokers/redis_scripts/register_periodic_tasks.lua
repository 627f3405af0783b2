-- register_periodic_tasks: make these tasks the periodic tasks of the namespace; tasks
-- left out are removed. A new task (or one whose period changed) is first due now; a task
-- registered again with the same period keeps its schedule, so every worker may register
-- its tasks at start.
--
-- KEYS[1] periodic        zset  periodic task names, scored by next run
-- KEYS[2] periodic_tasks  hash  task name -> JSON {period, queue, tail}
-- ARGV[1] now, seconds since the epoch
-- ARGV[2..] three per task: name, period in seconds, JSON {period, queue, tail}
-- Returns the number of periodic tasks.
local k = {periodic = KEYS[1], periodic_tasks = KEYS[2]}

local wanted = {}
for i = 2, #ARGV, 3 do wanted[ARGV[i]] = true end
for _, name in ipairs(redis.call('HKEYS', k.periodic_tasks)) do
  if not wanted[name] then redis.call('HDEL', k.periodic_tasks, name) end
end
for _, name in ipairs(redis.call('ZRANGE', k.periodic, 0, -1)) do
  if not wanted[name] then redis.call('ZREM', k.periodic, name) end
end

for i = 2, #ARGV, 3 do
  local name, period, task = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local old = redis.call('HGET', k.periodic_tasks, name)
  local scheduled = redis.call('ZSCORE', k.periodic, name)
  if not (old and scheduled and cjson.decode(old).period == period) then
    redis.call('ZADD', k.periodic, ARGV[1], name)
  end
  redis.call('HSET', k.periodic_tasks, name, task)
end
return (#ARGV - 1) / 3
