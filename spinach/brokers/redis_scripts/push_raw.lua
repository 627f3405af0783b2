-- push_raw: append a payload to a queue as is, unchecked (tests and tooling).
-- Its job id, when it has a readable one, counts as queued so enqueue does not store the
-- job again. A call sent again (same call id) does nothing.
--
-- KEYS[1] queues      set   names of the queues that ever held a payload
-- KEYS[2] queued_ids  hash  job id -> number of its payloads waiting in queues
-- KEYS[3] replies     hash  call id -> JSON of its reply
-- KEYS[4] replies_at  zset  call ids, scored by call time
-- ARGV[1] key prefix of the namespace, "{<namespace>}/"
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] call id, unique per call (the same when a call is sent again)
-- ARGV[4] seconds a reply is kept for a call sent again
-- ARGV[5] notification channel of the namespace
-- ARGV[6] queue name
-- ARGV[7] payload
local k = {
  prefix = ARGV[1], queues = KEYS[1], queued_ids = KEYS[2], replies = KEYS[3],
  replies_at = KEYS[4],
}

if earlier_reply(k, ARGV[3]) then return 1 end
local ok, data = pcall(cjson.decode, ARGV[7])
push(k, ARGV[6], ARGV[7], ok and payload_id(data) or nil, false)
notify(ARGV[5])
return keep_reply(k, ARGV[3], 1, ARGV[2], ARGV[4])
