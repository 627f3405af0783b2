"""The bridge's Lua scripts; each is run with spinach's ``_common.lua`` helpers prepended.

Celery's lists and the namespace's keys must be on one Redis server and db (Celery has no
Redis Cluster support, so they are): the scripts touch both.
"""

from __future__ import annotations

import importlib.resources

#: take: move up to ARGV[1] messages from Celery's lists of one queue, highest priority
#: first, to that queue's processing list, each atomically. Returns the messages moved.
#:
#: KEYS[1]     processing  list  messages taken from Celery, not yet in the native store
#: KEYS[2..5]  celery      list  Celery's lists of the queue: '<q>', '<q>\x06\x163',
#:                               '<q>\x06\x166', '<q>\x06\x169' (kombu LPUSHes, we RPOP)
#: ARGV[1] most messages to move
TAKE = """
local left, moved = tonumber(ARGV[1]), {}
for i = 2, #KEYS do
  while left > 0 do
    local message = redis.call('RPOPLPUSH', KEYS[i], KEYS[1])
    if not message then break end
    moved[#moved + 1] = message
    left = left - 1
  end
end
return moved
"""

#: commit: store converted messages in the native store and take each out of the
#: processing list, in one step. A message no longer in the processing list was committed
#: already (a command sent again, or another bridge recovering it): it is skipped, so a
#: message is stored once. A job whose id is already queued, waiting or running is not
#: stored again (as enqueue).
#:
#: KEYS[1]  processing     list   messages taken from Celery, not yet in the native store
#: KEYS[2]  queues         set    names of the queues that ever held a payload
#: KEYS[3]  queued_ids     hash   job id -> number of its payloads waiting in queues
#: KEYS[4]  future         zset   job ids due later, scored by due time
#: KEYS[5]  future_jobs    hash   job id -> payload of a future job
#: KEYS[6]  future_queues  hash   job id -> queue of a future job
#: KEYS[7]  running        hash   job id -> payload of a running job
#: KEYS[8]  dead           hash   dead letter id -> payload
#: KEYS[9]  dead_queue     hash   dead letter id -> queue it came from
#: KEYS[10] dead_reason    hash   dead letter id -> why it cannot run
#: KEYS[11] dead_order     zset   dead letter ids, scored by arrival (oldest first)
#: KEYS[12] dead_time      hash   dead letter id -> failure time
#: KEYS[13] dead_seq       string counter of dead letter arrivals
#: ARGV[1] key prefix of the namespace, "{<namespace>}/"
#: ARGV[2] now, seconds since the epoch
#: ARGV[3] notification channel of the namespace
#: ARGV[4] native queue
#: ARGV[5..] six per message: the message, job or dead letter id, due time, payload,
#:           reason ("" for a job), dead letter id to use if the id is taken
#: Returns {jobs stored, dead letters stored}.
COMMIT = """
local k = {
  prefix = ARGV[1], queues = KEYS[2], queued_ids = KEYS[3], future = KEYS[4],
  future_jobs = KEYS[5], future_queues = KEYS[6], running = KEYS[7], dead = KEYS[8],
  dead_queue = KEYS[9], dead_reason = KEYS[10], dead_order = KEYS[11],
  dead_time = KEYS[12], dead_seq = KEYS[13],
}
local now, queue, stored, buried = tonumber(ARGV[2]), ARGV[4], 0, 0
for i = 5, #ARGV, 6 do
  local message, id, at, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local reason, fresh = ARGV[i + 4], ARGV[i + 5]
  if redis.call('LREM', KEYS[1], -1, message) == 1 then
    if reason ~= '' then
      add_dead_letter(k, id, queue, payload, reason, ARGV[2], fresh)
      buried = buried + 1
    elseif not location(k, id) then
      if tonumber(at) <= now then
        push(k, queue, payload, id, false)
      else
        schedule(k, id, queue, at, payload)
      end
      stored = stored + 1
    end
  end
end
if stored > 0 then notify(ARGV[3]) end
return {stored, buried}
"""

#: The fixed native keys ``COMMIT`` takes after the processing list, in order.
COMMIT_KEYS = (
    "queues", "queued_ids", "future", "future_jobs", "future_queues", "running", "dead",
    "dead_queue", "dead_reason", "dead_order", "dead_time", "dead_seq",
)  # fmt: skip


def with_helpers(source: str) -> str:
    """``source`` after spinach's ``_common.lua`` helpers."""
    directory = importlib.resources.files("spinach.brokers") / "redis_scripts"
    return (directory / "_common.lua").read_text(encoding="utf-8") + "\n" + source
