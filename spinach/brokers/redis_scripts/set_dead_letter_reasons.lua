-- set_dead_letter_reasons: replace the reasons of dead letters (the broker's client words
-- them as Job.deserialize does, more precisely than cjson can). A dead letter retried or
-- purged meanwhile, or holding another payload, is left alone.
--
-- KEYS[1] dead         hash  dead letter id -> payload
-- KEYS[2] dead_reason  hash  dead letter id -> why it cannot run
-- ARGV[1..] three per dead letter: id, payload, reason
-- Returns how many reasons were replaced.
local k = {dead = KEYS[1], dead_reason = KEYS[2]}

local replaced = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', k.dead, ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', k.dead_reason, ARGV[i], ARGV[i + 2])
    replaced = replaced + 1
  end
end
return replaced
