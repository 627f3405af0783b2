-- set_concurrency_keys: record the limits of tasks, max_concurrency and global rate
-- limit; a task given without one loses it. Running jobs are counted per task whether
-- limited or not, so a limit set while jobs run takes them into account at once.
--
-- KEYS[1] limits       hash  task name -> max_concurrency
-- KEYS[2] rate_limits  hash  task name -> JSON [interval, tolerance] of its GCRA, seconds
-- ARGV[1] notification channel of the namespace
-- ARGV[2..] four per task: name, max_concurrency or "" for none, GCRA interval and
--           tolerance or "" for no rate limit (spinach/rate_limit.py)
-- Returns the number of tasks.
local k = {limits = KEYS[1], rate_limits = KEYS[2]}

for i = 2, #ARGV, 4 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', k.limits, ARGV[i])
  else
    redis.call('HSET', k.limits, ARGV[i], ARGV[i + 1])
  end
  if ARGV[i + 2] == '' then
    redis.call('HDEL', k.rate_limits, ARGV[i])
  else
    local rate = {tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])}
    redis.call('HSET', k.rate_limits, ARGV[i], cjson.encode(rate))
  end
end
redis.call('PUBLISH', ARGV[1], '1') -- a raised limit may let queued jobs run
return (#ARGV - 1) / 4
