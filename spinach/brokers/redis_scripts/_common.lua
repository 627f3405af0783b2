-- _common.lua: helpers for the scripts of this directory; not a script itself. Each script
-- gets those it calls, directly or through another (redis.script_source): a helper is a
-- closure Redis builds at every call. One paragraph per helper (a comment, then its
-- `local function`), paragraphs separated by blank lines: that is how they are told apart.
--
-- Every script starts with `local k = {...}` naming its KEYS; the helpers below read key
-- names from that table. Keys that depend on data (a queue, a worker) are built from the
-- namespace prefix k.prefix ("{<namespace>}/"): they share the hash tag of the declared
-- KEYS, so every script still touches a single Redis Cluster slot.
--
-- JOB_FIELDS ({name, JSON type} of the required fields of a job payload), JOB_NONEMPTY
-- and JOB_HEAD come from spinach/job_codec.py (lua_declarations), prepended before these
-- helpers: no script spells a job field.

-- The job id of a decoded payload, or nil when it has no usable one.
local function payload_id(data)
  if type(data) == 'table' and type(data.id) == 'string' and data.id ~= '' then
    return data.id
  end
  return nil
end

-- Whether `value` has the JSON type `kind` (cjson cannot tell [] from {}: both pass).
local function has_type(value, kind)
  if kind == 'integer' then
    return type(value) == 'number' and value % 1 == 0
  end
  if kind == 'array' or kind == 'object' then
    if type(value) ~= 'table' then return false end
    for key in pairs(value) do
      if (kind == 'array') ~= (type(key) == 'number') then return false end
    end
    return true
  end
  return type(value) == kind
end

-- Decode a payload and check it as Job.deserialize does: the job, or nil, why not, and
-- whatever could be decoded (to read an id from).
local function decode_job(payload)
  local ok, data = pcall(cjson.decode, payload)
  if not ok then return nil, 'payload is not valid JSON: ' .. tostring(data), nil end
  if type(data) ~= 'table' or data[1] ~= nil then
    return nil, 'payload is not a JSON object', nil
  end
  for _, field in ipairs(JOB_FIELDS) do
    local value = data[field[1]]
    if value == nil then
      return nil, "payload has no '" .. field[1] .. "' field", data
    end
    if not has_type(value, field[2]) then
      return nil, "payload field '" .. field[1] .. "' has the wrong type", data
    end
  end
  for _, name in ipairs(JOB_NONEMPTY) do
    if data[name] == '' then return nil, 'payload has an empty task name or id', data end
  end
  return data, nil, data
end

-- The payload of a job built from a template (job_codec.template: the payload without its
-- JOB_HEAD fields, id and due time) and the values of those fields, in that order; `at` is
-- a JSON number already.
local function job_from_template(template, id, at)
  local head = {cjson.encode(JOB_HEAD[1]) .. ':' .. cjson.encode(id)}
  head[2] = cjson.encode(JOB_HEAD[2]) .. ':' .. at
  return '{' .. table.concat(head, ',') .. ',' .. template
end

-- Run `command key items...` in as few calls as Lua's unpack allows: an even number of
-- items per call, so field/value and score/member pairs stay whole.
local function call_many(command, key, items)
  for first = 1, #items, 4000 do
    redis.call(command, key, unpack(items, first, math.min(first + 3999, #items)))
  end
end

-- Wake the arbiters of the namespace.
local function notify(channel)
  redis.call('PUBLISH', channel, '1')
end

-- Append a payload to its queue (prepend with `front`), counting its job id as queued.
local function push(k, queue, payload, id, front)
  redis.call(front and 'LPUSH' or 'RPUSH', k.prefix .. 'queue/' .. queue, payload)
  redis.call('SADD', k.queues, queue)
  if id then redis.call('HINCRBY', k.queued_ids, id, 1) end
end

-- Where a job id is stored, as the status it has there; nil when nowhere. Queued means a
-- count above 0 (fetch deletes the counts it zeroed at the end of a queue's scan). `empty`
-- (optional) names keys the caller knows empty, not searched: {future = true, running = true}.
local function location(k, id, empty)
  if tonumber(redis.call('HGET', k.queued_ids, id) or '0') > 0 then return 'QUEUED' end
  empty = empty or {}
  if not empty.future and redis.call('ZSCORE', k.future, id) then return 'WAITING' end
  if not empty.running and redis.call('HEXISTS', k.running, id) == 1 then return 'RUNNING' end
  return nil
end

-- Store a job due later.
local function schedule(k, id, queue, at, payload)
  redis.call('ZADD', k.future, at, id)
  redis.call('HSET', k.future_jobs, id, payload)
  redis.call('HSET', k.future_queues, id, queue)
end

-- Mark jobs running under `worker`, counting them against their tasks' concurrency, with
-- one call per key for all; `jobs` holds {id, payload, task, queue} of each. `attempt` is
-- the id of the fetch that started them: reports of another attempt of a job (a worker
-- declared dead that fetched its recovered job again) leave this one alone.
local function start_running(k, jobs, worker, now, attempt)
  if #jobs == 0 then return end
  local payloads, metas, scored, per_task = {}, {}, {}, {}
  for _, job in ipairs(jobs) do
    local id, task = job[1], job[3]
    payloads[#payloads + 1], payloads[#payloads + 2] = id, job[2]
    local meta = {w = worker, t = task, q = job[4], a = attempt}
    metas[#metas + 1], metas[#metas + 2] = id, cjson.encode(meta)
    scored[#scored + 1], scored[#scored + 2] = now, id
    per_task[task] = (per_task[task] or 0) + 1
  end
  call_many('HSET', k.running, payloads)
  call_many('HSET', k.running_meta, metas)
  for task, count in pairs(per_task) do redis.call('HINCRBY', k.running_by_task, task, count) end
  redis.call('HINCRBY', k.running_owners, worker, #jobs)
  call_many('ZADD', k.prefix .. 'running_of/' .. worker, scored)
end

-- The metas ({w, t, q, a}) of the jobs of `ids` that `worker` runs, each in the attempt
-- `attempts` names at its position (the id of the fetch that started it; any attempt when
-- nil or ""), by job id: one HMGET per 4,000 ids.
local function owned_metas(k, worker, ids, attempts)
  local raws, owned = {}, {}
  for first = 1, #ids, 4000 do
    local last = math.min(first + 3999, #ids)
    local part = redis.call('HMGET', k.running_meta, unpack(ids, first, last))
    for n = 1, last - first + 1 do raws[first + n - 1] = part[n] end
  end
  for n, id in ipairs(ids) do
    local meta, attempt = raws[n] and not owned[id] and cjson.decode(raws[n]), attempts[n]
    local any = not attempt or attempt == '' or not (meta and meta.a)
    if meta and meta.w == worker and (any or meta.a == attempt) then owned[id] = meta end
  end
  return owned
end

-- Take the jobs of `owned_metas` out of running, freeing their concurrency slots, with one
-- call per key for all; the others are left alone (a no-op). Returns the metas of those
-- taken out by job id, and their ids.
local function release_all(k, worker, ids, attempts)
  local owned, gone, per_task = owned_metas(k, worker, ids, attempts), {}, {}
  for id, meta in pairs(owned) do
    gone[#gone + 1] = id
    per_task[meta.t] = (per_task[meta.t] or 0) + 1
  end
  if #gone == 0 then return owned, gone end
  call_many('HDEL', k.running, gone)
  call_many('HDEL', k.running_meta, gone)
  for task, count in pairs(per_task) do
    if redis.call('HINCRBY', k.running_by_task, task, -count) <= 0 then
      redis.call('HDEL', k.running_by_task, task)
    end
  end
  if redis.call('HINCRBY', k.running_owners, worker, -#gone) <= 0 then
    redis.call('HDEL', k.running_owners, worker)
  end
  call_many('ZREM', k.prefix .. 'running_of/' .. worker, gone)
  return owned, gone
end

-- `release_all` of one job: its meta, or nil when `worker` does not run it in `attempt`.
local function release(k, id, worker, attempt)
  local owned = release_all(k, worker, {id}, {attempt})
  return owned[id]
end

-- Unique jobs: the string key k.prefix .. 'unique/' .. <unique key> holds "<expiry> <job id>"
-- of the job holding the key (expiry: the broker time the key is released at, "" for none;
-- the key also expires in Redis a second after, to clean up); k.unique_of maps that job id
-- back to its key, so the scripts ending a job release the key. A hold for `ttl` seconds
-- also keeps "<ttl> <job id>" in k.prefix .. 'unique_ttl/' .. <unique key> (as long), for a
-- dead letter's retry to hold the key as long again; a separate key, so that workers of an
-- earlier release read the holds as they did.

-- The id of the job holding a unique key (expired or not) and its expiry ("": none).
local function unique_entry(k, key)
  local value = redis.call('GET', k.prefix .. 'unique/' .. key)
  if not value then return nil, '' end
  local expiry, id = string.match(value, '^(%S*) (.*)$')
  return id, expiry
end

-- The status and id of the job holding a unique key at `now`, "<status>/<id>", while that
-- job is stored (queued, waiting or running) and its hold not expired; nil when free.
local function unique_holder(k, key, now)
  local id, expiry = unique_entry(k, key)
  local expired = expiry ~= '' and tonumber(expiry) <= now
  local where = id and not expired and location(k, id)
  if where then return where .. '/' .. id end
  return nil
end

-- Let job `id` hold a unique key at `now`, for `ttl` seconds at most ("": while it lives).
local function hold_unique(k, id, key, now, ttl)
  local name = k.prefix .. 'unique/' .. key
  if ttl == '' then
    redis.call('SET', name, ' ' .. id)
  else
    local seconds = tonumber(ttl)
    local expiry = string.format('%.17g', now + seconds)
    local lasts = math.ceil(seconds * 1000) + 1000
    redis.call('SET', name, expiry .. ' ' .. id, 'PX', lasts)
    redis.call('SET', k.prefix .. 'unique_ttl/' .. key, ttl .. ' ' .. id, 'PX', lasts)
  end
  redis.call('HSET', k.unique_of, id, key)
end

-- The seconds job `id` holds unique key `key` for, to hold it as long again on a dead
-- letter's retry: "" while it lives, "0" when its hold lapsed (expired, or taken by another
-- job since); a hold taken without its ttl kept (an earlier release) gives the seconds left.
local function held_for(k, key, id, now)
  local holder, expiry = unique_entry(k, key)
  if holder ~= id or (expiry ~= '' and tonumber(expiry) <= now) then return '0' end
  if expiry == '' then return '' end
  local kept = redis.call('GET', k.prefix .. 'unique_ttl/' .. key)
  local ttl, of = string.match(kept or '', '^(%S+) (.*)$')
  if of == id then return ttl end
  return string.format('%.17g', tonumber(expiry) - now)
end

-- Release the unique key a job that ended holds, if any.
local function release_unique(k, id)
  local key = redis.call('HGET', k.unique_of, id)
  if not key then return end
  redis.call('HDEL', k.unique_of, id)
  if unique_entry(k, key) == id then
    redis.call('DEL', k.prefix .. 'unique/' .. key, k.prefix .. 'unique_ttl/' .. key)
  end
end

-- Keep a dead letter; a different payload under a known id gets `fresh_id` instead. The
-- same payload under the same id only gets the new reason and time, keeping its place,
-- so a call sent twice leaves one dead letter. Returns the id it is stored under.
local function add_dead_letter(k, id, queue, payload, reason, now, fresh_id)
  local existing = redis.call('HGET', k.dead, id)
  if existing and existing ~= payload then
    id = fresh_id
    existing = redis.call('HGET', k.dead, id)
  end
  if existing ~= payload then
    redis.call('HSET', k.dead, id, payload)
    redis.call('HSET', k.dead_queue, id, queue)
    redis.call('ZADD', k.dead_order, redis.call('INCR', k.dead_seq), id)
  end
  redis.call('HSET', k.dead_reason, id, reason)
  redis.call('HSET', k.dead_time, id, now)
  return id
end

-- Forget a dead letter.
local function remove_dead_letter(k, id)
  redis.call('HDEL', k.dead, id)
  redis.call('HDEL', k.dead_queue, id)
  redis.call('HDEL', k.dead_reason, id)
  redis.call('HDEL', k.dead_time, id)
  redis.call('ZREM', k.dead_order, id)
  if k.dead_unique then redis.call('HDEL', k.dead_unique, id) end
  if k.dead_unique_ttl then redis.call('HDEL', k.dead_unique_ttl, id) end
end

-- Dead letter ids, in arrival order: every one when `mode` is 'all', else those of
-- ARGV[first..] that exist.
local function dead_letter_ids(k, mode, first)
  if mode == 'all' then return redis.call('ZRANGE', k.dead_order, 0, -1) end
  local found, seen = {}, {}
  for i = first, #ARGV do
    local id = ARGV[i]
    local score = redis.call('ZSCORE', k.dead_order, id)
    if score and not seen[id] then
      seen[id] = true
      found[#found + 1] = {tonumber(score), id}
    end
  end
  table.sort(found, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local ids = {}
  for i, entry in ipairs(found) do ids[i] = entry[2] end
  return ids
end

-- Replies kept for calls sent again. redis-py sends a command again when its reply is
-- lost; the scripts whose second run could store something again (a job run and finished
-- in between would be enqueued twice) or would reply differently keep their reply under
-- the call id the client made, for `window` seconds, and a call whose id is known returns
-- that reply without doing anything.

-- The reply of the call `call_id` when it already ran, else nil.
local function earlier_reply(k, call_id)
  local reply = redis.call('HGET', k.replies, call_id)
  if reply then return cjson.decode(reply) end
  return nil
end

-- Keep the reply of call `call_id`, forgetting (a bounded number of) expired ones.
local function keep_reply(k, call_id, reply, now, window)
  local expired = redis.call(
    'ZRANGEBYSCORE', k.replies_at, '-inf', tonumber(now) - tonumber(window), 'LIMIT', 0, 100
  )
  for _, old in ipairs(expired) do
    redis.call('HDEL', k.replies, old)
    redis.call('ZREM', k.replies_at, old)
  end
  redis.call('HSET', k.replies, call_id, cjson.encode(reply))
  redis.call('ZADD', k.replies_at, now, call_id)
  return reply
end

-- Idle registrations (the job handed over with its wake-up, see redis.py): k.idle maps a
-- worker id to the JSON {f: the id of its next fetch, n: how many jobs it may be handed,
-- e: broker time the registration lapses at, q: the queues it serves}; the sorted set
-- k.prefix .. 'idle_for/' .. <queue> lists the workers registered for that queue, scored
-- by registration time (the oldest first). Any fetch of a worker ends its registration.

-- The jobs handed over under a registered fetch id are kept in the worker's fetch cache
-- k.prefix .. 'fetched/' .. <worker id>, under that fetch id, as JSON strings joined by
-- commas ("<job id>","<payload>",...): a hand-over appends one pair without decoding the
-- others (the cost stays the same whatever the registration's room), a fetch decodes them
-- all at once.

-- Add job `id` (`payload`) to the jobs handed over under `fetch_id` in `cache`; returns
-- the pair added, JSON-encoded: "<job id>","<payload>" (the hand-over's message reuses it).
local function add_handed(cache, fetch_id, id, payload)
  local pair = cjson.encode(id) .. ',' .. cjson.encode(payload)
  local kept = redis.call('HGET', cache, fetch_id)
  redis.call('HSET', cache, fetch_id, kept and kept .. ',' .. pair or pair)
  return pair
end

-- The jobs handed over under `fetch_id` in `cache`: job id, payload, job id, payload...
-- ({} when none).
local function handed_to(cache, fetch_id)
  local kept = redis.call('HGET', cache, fetch_id)
  if not kept then return {} end
  return cjson.decode('[' .. kept .. ']')
end

-- End `registration` (decoded), the registration of `worker` read by the caller.
local function drop_registration(k, worker, registration)
  redis.call('HDEL', k.idle, worker)
  for _, queue in ipairs(registration.q) do
    redis.call('ZREM', k.prefix .. 'idle_for/' .. queue, worker)
  end
end

-- End the registration of `worker`, if any; returns it (decoded) or nil.
local function unregister_idle(k, worker)
  local raw = redis.call('HGET', k.idle, worker)
  if not raw then return nil end
  local registration = cjson.decode(raw)
  drop_registration(k, worker, registration)
  return registration
end
