-- flush: delete every key of the namespace (tests and tooling). The keys built from data
-- (queues, fetch caches, running sets) are found through the sets that name them, never
-- with KEYS or SCAN.
--
-- KEYS[1..] every fixed key of the namespace; among them, by name:
-- KEYS[1] queues          set   names of the queues that ever held a payload
-- KEYS[2] fetchers        set   worker ids that may have a fetch cache
-- KEYS[3] running_owners  hash  worker id -> number of its running jobs
-- KEYS[4] unique_of       hash  job id -> unique key it holds
-- KEYS[5] idle            hash  worker id -> JSON of its idle registration (_common.lua)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- Returns the number of keys deleted.
local k = {
  prefix = ARGV[1], queues = KEYS[1], fetchers = KEYS[2], running_owners = KEYS[3],
  unique_of = KEYS[4], idle = KEYS[5],
}

local deleted = 0
local function delete(key) deleted = deleted + redis.call('DEL', key) end

for _, queue in ipairs(redis.call('SMEMBERS', k.queues)) do
  delete(k.prefix .. 'queue/' .. queue)
end
for _, worker in ipairs(redis.call('SMEMBERS', k.fetchers)) do
  delete(k.prefix .. 'fetched/' .. worker)
end
for _, worker in ipairs(redis.call('HKEYS', k.running_owners)) do
  delete(k.prefix .. 'running_of/' .. worker)
end
for _, key in ipairs(redis.call('HVALS', k.unique_of)) do
  delete(k.prefix .. 'unique/' .. key)
  delete(k.prefix .. 'unique_ttl/' .. key)
end
for _, worker in ipairs(redis.call('HKEYS', k.idle)) do unregister_idle(k, worker) end
for _, key in ipairs(KEYS) do delete(key) end
return deleted
