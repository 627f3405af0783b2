-- claim: take a key for a while if nobody holds it (set-if-absent with expiry). The value
-- is the caller's token, unique per call: a call sent again after its reply was lost finds
-- its own token and still reports the claim as its own.
--
-- KEYS[1] claim  string  the token of whoever holds it, expiring with the claim
-- ARGV[1] token, unique per call (the same when a call is sent again)
-- ARGV[2] milliseconds the claim lasts
-- Returns 1 when the caller holds the claim, else 0.
local k = {claim = KEYS[1]}

if redis.call('SET', k.claim, ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', k.claim) == ARGV[1] then return 1 end
return 0
