-- hash_set: set a field of a hash and, when asked, when the whole hash expires.
--
-- KEYS[1] hash  hash  field -> value
-- ARGV[1] field
-- ARGV[2] value
-- ARGV[3] milliseconds the hash lives after this call, or "" to leave its expiry
-- Returns 1.
local k = {hash = KEYS[1]}

redis.call('HSET', k.hash, ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('PEXPIRE', k.hash, ARGV[3]) end
return 1
