-- set_concurrency_keys: record the max_concurrency of tasks; a task given without one
-- loses its limit. Running jobs are counted per task whether limited or not, so a limit
-- set while jobs run takes them into account at once.
--
-- KEYS[1] limits  hash  task name -> max_concurrency
-- ARGV[1] notification channel of the namespace
-- ARGV[2..] two per task: name, max_concurrency or "" for none
-- Returns the number of tasks.
local k = {limits = KEYS[1]}

for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', k.limits, ARGV[i])
  else
    redis.call('HSET', k.limits, ARGV[i], ARGV[i + 1])
  end
end
redis.call('PUBLISH', ARGV[1], '1') -- a raised limit may let queued jobs run
return (#ARGV - 1) / 2
