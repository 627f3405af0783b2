-- move_future_jobs: move due future jobs to the end of their queues, soonest first, and
-- fire the due periodic tasks.
--
-- A periodic task fires one job per call however many periods were missed (no burst
-- after a gap), and its next run becomes the first last_due + k * period strictly after
-- now, so it stays on its grid. Since its schedule moves in the same script, every worker
-- may call this: a task fires once per period for the whole namespace, and a call sent
-- twice fires nothing the second time.
--
-- KEYS[1] queues          set   names of the queues that ever held a payload
-- KEYS[2] queued_ids      hash  job id -> number of its payloads waiting in queues
-- KEYS[3] future          zset  job ids due later, scored by due time
-- KEYS[4] future_jobs     hash  job id -> payload of a future job
-- KEYS[5] future_queues   hash  job id -> queue of a future job
-- KEYS[6] periodic        zset  periodic task names, scored by next run
-- KEYS[7] periodic_tasks  hash  task name -> JSON {period, queue, tail}, where tail is
--                               the job payload without its id and due time (a template
--                               of job_codec, completed by job_from_template)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch, as a JSON number
-- ARGV[3] notification channel of the namespace
-- ARGV[4] maximum number of future jobs to move
-- Returns the number of jobs queued.
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], future = KEYS[3],
  future_jobs = KEYS[4], future_queues = KEYS[5], periodic = KEYS[6],
  periodic_tasks = KEYS[7],
}
local now = tonumber(ARGV[2])

local function move_due_jobs()
  local due = redis.call('ZRANGEBYSCORE', k.future, '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
  for _, id in ipairs(due) do
    local payload = redis.call('HGET', k.future_jobs, id)
    local queue = redis.call('HGET', k.future_queues, id)
    redis.call('ZREM', k.future, id)
    redis.call('HDEL', k.future_jobs, id)
    redis.call('HDEL', k.future_queues, id)
    push(k, queue, payload, id, false)
  end
  return #due
end

-- The first last_due + n * period strictly after now.
local function next_run(last_due, period)
  local next_at = last_due + (math.floor((now - last_due) / period) + 1) * period
  while next_at <= now do next_at = next_at + period end -- float rounding
  return next_at
end

local function fire_periodic_tasks()
  local due = redis.call('ZRANGEBYSCORE', k.periodic, '-inf', ARGV[2], 'WITHSCORES')
  for i = 1, #due, 2 do
    local name, last_due = due[i], tonumber(due[i + 1])
    local task = cjson.decode(redis.call('HGET', k.periodic_tasks, name))
    local id = redis.sha1hex(table.concat({k.prefix, name, due[i + 1], ARGV[2]}, '\0'))
    local payload = job_from_template(task.tail, id, ARGV[2])
    push(k, task.queue, payload, id, false)
    redis.call('ZADD', k.periodic, next_run(last_due, task.period), name)
  end
  return #due / 2
end

local moved = move_due_jobs() + fire_periodic_tasks()
if moved > 0 then notify(ARGV[3]) end
return moved
