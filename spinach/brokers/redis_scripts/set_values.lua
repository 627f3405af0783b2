-- set_values: store values, each expiring after the same time, all at once.
--
-- KEYS[1] value  string  the first value's key
-- KEYS[2..] the other values' keys, one per value of ARGV[3..], in order
-- ARGV[1] milliseconds each value lives
-- ARGV[2..] the values, one per key
-- Returns the number of values stored.
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS
