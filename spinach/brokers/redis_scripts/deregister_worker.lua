-- deregister_worker: remove a worker process from the live ones, after a clean stop, with
-- its fetch cache and idle registration. Jobs it still runs become orphans, recovered by
-- the other workers.
--
-- KEYS[1] workers     hash  worker id -> JSON of its WorkerInfo (without last_heartbeat)
-- KEYS[2] heartbeats  zset  worker ids, scored by last heartbeat
-- KEYS[3] fetchers    set   worker ids that may have a fetch cache
-- KEYS[4] idle        hash  worker id -> JSON of its idle registration (_common.lua)
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] worker id
local k = {
  prefix = ARGV[1], workers = KEYS[1], heartbeats = KEYS[2], fetchers = KEYS[3], idle = KEYS[4],
}

redis.call('HDEL', k.workers, ARGV[2])
redis.call('ZREM', k.heartbeats, ARGV[2])
redis.call('DEL', k.prefix .. 'fetched/' .. ARGV[2])
redis.call('SREM', k.fetchers, ARGV[2])
unregister_idle(k, ARGV[2])
return 1
