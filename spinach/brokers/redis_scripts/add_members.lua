-- add_members: add members to an expiring set, each until a time; drop expired members.
--
-- KEYS[1] members  zset  member -> time until which it is in the set
-- ARGV[1] now, seconds since the epoch (the broker's clock)
-- ARGV[2..] two per member: until (seconds since the epoch), member
-- Returns the number of members left.
local k = {members = KEYS[1]}

for i = 2, #ARGV, 2 do
  redis.call('ZADD', k.members, ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYSCORE', k.members, '-inf', ARGV[1])
return redis.call('ZCARD', k.members)
