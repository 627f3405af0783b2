-- publish_value: store a value unless the stored one is to be kept, then publish it on a
-- channel named after its key (where watches, and Celery's result clients, listen).
--
-- KEYS[1] value  string  the value, often a JSON object with a "status"
-- ARGV[1] the value
-- ARGV[2] milliseconds it lives, 0 to keep it forever
-- ARGV[3] the "status" of a stored JSON object that is kept, or "" to always store
-- Returns 1 when the value is stored (also when a call sent again finds its own value kept),
-- 0 when a kept value was there.
local k = {value = KEYS[1]}

local current = redis.call('GET', k.value)
if current and ARGV[3] ~= '' then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and stored['status'] == ARGV[3] then
    if current == ARGV[1] then return 1 end
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', k.value, ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', k.value, ARGV[1])
end
redis.call('PUBLISH', k.value, ARGV[1])
return 1
