"""The Lua scripts: each state change of a job is one script, so it is atomic across every
bot and worker process (never check-then-act from two processes).

ARGV[1] is always the key prefix; key names are built here as in keys.py.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
_COMMON = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Every event of a job carries the next number of the job's own sequence: a bot applies an
-- event only if it is newer than the last one applied (a replayed copy never rewinds).
local function event(job_id, kind, ...)
  local seq = redis.call('HINCRBY', P .. 'job:' .. job_id, 'events', 1)
  return redis.call('XADD', P .. 'events', '*', 'job', job_id, 'kind', kind, 'seq', seq, ...)
end
-- A reservation records when its user's last job was accepted (so that two at once cannot
-- both pass a cooldown), under its job id, with the time before it; each reservation checks
-- that time against its own cooldown (a server's may be longer than the owner's). A
-- reservation given back, or run out, puts the time before it back.
local function drop_cooldown(job_id, user_id)
  local key = P .. 'accepted:' .. user_id
  if redis.call('HGET', key, 'job') ~= job_id then return end
  local before = redis.call('HGET', key, 'before')
  if before and before ~= '' then
    redis.call('HSET', key, 'at', before, 'job', '', 'before', '')
  else
    redis.call('DEL', key)
  end
end
-- A reservation's delivery, kept until its job is queued or the reservation given back.
local function unhold(job_id)
  redis.call('ZREM', P .. 'holding', job_id)
  redis.call('HDEL', P .. 'held', job_id)
  redis.call('HDEL', P .. 'held_user', job_id)
end
local function forget(job_id, user_id)
  redis.call('ZREM', P .. 'waiting', job_id)
  redis.call('ZREM', P .. 'running', job_id)
  redis.call('ZREM', P .. 'user:' .. user_id, job_id)
end
"""

# ARGV: prefix, job id, user id, user max, queue max, reservation ms, cooldown ms, how long
#       the time of a user's last accepted job is kept (ms: the longest cooldown there is),
#       interaction id ('' for none), how long it is remembered (ms), delivery json ('' for
#       none: kept while the job is prepared, for a bot to answer if none queues the job)
# → {'ok', the place the job will take}, {'user'|'full'|'cooldown', number}, or
#   {'duplicate', 0}: that interaction was admitted already (delivered to two bots)
RESERVE = _COMMON + """
local job_id, user_id = ARGV[2], ARGV[3]
if ARGV[9] ~= '' and not redis.call('SET', P .. 'interaction:' .. ARGV[9], job_id, 'NX',
    'PX', tonumber(ARGV[10])) then
  return {'duplicate', 0}
end
local now = now_ms()
local user_key = P .. 'user:' .. user_id
redis.call('ZREMRANGEBYSCORE', P .. 'reserved', '-inf', now)
redis.call('ZREMRANGEBYSCORE', user_key, '-inf', now)
if redis.call('ZCARD', user_key) >= tonumber(ARGV[4]) then return {'user', 0} end
local held = redis.call('ZCARD', P .. 'waiting') + redis.call('ZCARD', P .. 'reserved')
if held >= tonumber(ARGV[5]) then return {'full', 0} end
local accepted_key = P .. 'accepted:' .. user_id
local last = redis.call('HGET', accepted_key, 'at')
if last then
  local left = tonumber(last) + tonumber(ARGV[7]) - now
  if left > 0 then return {'cooldown', left} end
end
local expiry = now + tonumber(ARGV[6])
redis.call('ZADD', P .. 'reserved', expiry, job_id)
redis.call('ZADD', user_key, expiry, job_id)
redis.call('HSET', accepted_key, 'at', now, 'job', job_id, 'before', last or '')
redis.call('PEXPIRE', accepted_key, tonumber(ARGV[8]))
if ARGV[11] ~= '' then
  redis.call('ZADD', P .. 'holding', expiry, job_id)
  redis.call('HSET', P .. 'held', job_id, ARGV[11])
  redis.call('HSET', P .. 'held_user', job_id, user_id)
end
return {'ok', redis.call('ZCARD', P .. 'waiting') + 1}
"""

# ARGV: prefix, job id, user id, model, render json, context json, shown (1: its user needs
# no first word from the bot; 0: the bot sets `shown` once it has told them)
# → {'ok', position} or {'expired', 0} when the reservation ran out
ENQUEUE = _COMMON + """
local job_id, user_id = ARGV[2], ARGV[3]
local now = now_ms()
local reserved = redis.call('ZSCORE', P .. 'reserved', job_id)
redis.call('ZREM', P .. 'reserved', job_id)
unhold(job_id)
if not reserved or tonumber(reserved) < now then
  redis.call('ZREM', P .. 'user:' .. user_id, job_id)
  drop_cooldown(job_id, user_id)
  return {'expired', 0}
end
redis.call('ZADD', P .. 'user:' .. user_id, 'inf', job_id)
local seq = redis.call('INCR', P .. 'seq')
local stream = P .. 'jobs:' .. ARGV[4]
local entry = redis.call('XADD', stream, '*', 'job', job_id)
redis.call('HSET', P .. 'job:' .. job_id, 'id', job_id, 'user', user_id, 'model', ARGV[4],
  'render', ARGV[5], 'context', ARGV[6], 'state', 'queued', 'seq', seq, 'stream', stream,
  'entry', entry, 'submitted', now)
if ARGV[7] == '1' then redis.call('HSET', P .. 'job:' .. job_id, 'shown', '1') end
redis.call('ZADD', P .. 'waiting', seq, job_id)
return {'ok', redis.call('ZRANK', P .. 'waiting', job_id) + 1}
"""

# A reservation given back: its place and the cooldown it started. A job stored under it
# whose user was never told (its bot did not hear the answer of ENQUEUE, and told them it
# was refused) is withdrawn too, without a word, while no worker has taken it.
# ARGV: prefix, job id, user id, group → 1 if a reservation (or such a job) was given back
RELEASE = _COMMON + """
local job_id, user_id = ARGV[2], ARGV[3]
local key = P .. 'job:' .. job_id
redis.call('ZREM', P .. 'user:' .. user_id, job_id)
drop_cooldown(job_id, user_id)
unhold(job_id)
if redis.call('HGET', key, 'state') == 'queued' and redis.call('HEXISTS', key, 'shown') == 0
    and redis.call('HGET', key, 'user') == user_id then
  local stream, entry = redis.call('HGET', key, 'stream'), redis.call('HGET', key, 'entry')
  redis.call('XACK', stream, ARGV[4], entry)
  redis.call('XDEL', stream, entry)
  redis.call('DEL', key)
  forget(job_id, user_id)
  return 1
end
return redis.call('ZREM', P .. 'reserved', job_id)
"""

# ARGV: prefix, group, consumer, max deliveries, keep ms, dropped message,
#       then (stream, entry id, job id) triples.
# → per triple {job id, 'take'|'skip'|'dropped', render, context, user, deliveries, alone}
TAKE = _COMMON + """
local group, consumer = ARGV[2], ARGV[3]
local max_deliveries, keep = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {}
for i = 7, #ARGV, 3 do
  local stream, entry, job_id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = P .. 'job:' .. job_id
  local state = redis.call('HGET', key, 'state')
  local current = redis.call('HGET', key, 'entry')
  if (state ~= 'queued' and state ~= 'running') or current ~= entry then
    -- ended, cancelled or re-queued under a new entry: this entry is spent
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
    table.insert(out, {job_id, 'skip', '', '', '', 0, 0})
  else
    local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
    local deliveries = 1
    if pending[1] then deliveries = tonumber(pending[1][4]) end
    local user_id = redis.call('HGET', key, 'user')
    if deliveries > max_deliveries then
      redis.call('HSET', key, 'state', 'failed', 'ended', now)
      redis.call('PEXPIRE', key, keep)
      redis.call('XACK', stream, group, entry)
      redis.call('XDEL', stream, entry)
      forget(job_id, user_id)
      event(job_id, 'failed', 'error', (string.gsub(ARGV[6], '{n}', tostring(deliveries - 1))))
      table.insert(out, {job_id, 'dropped', '', '', user_id, deliveries, 0})
    else
      redis.call('HSET', key, 'state', 'running', 'worker', consumer, 'started', now,
        'deliveries', deliveries)
      redis.call('ZREM', P .. 'waiting', job_id)
      redis.call('ZADD', P .. 'running', now, job_id)
      local alone = 0
      if redis.call('HGET', key, 'alone') == '1' then alone = 1 end
      table.insert(out, {job_id, 'take', redis.call('HGET', key, 'render'),
        redis.call('HGET', key, 'context'), user_id, deliveries, alone})
    end
  end
end
return out
"""

# ARGV: prefix, group, job id, outcome (done|failed|cancelled), keep ms, then the event's
# field/value pairs → the outcome stored if the job ended now, '' if it had already ended
# (nothing sent). A result that comes back after its user's Cancel was answered "stopping"
# (the worker had not heard of it yet) ends the job `cancelled`: the user was told it stops.
FINISH = _COMMON + """
local group, job_id, outcome, keep = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = P .. 'job:' .. job_id
local state = redis.call('HGET', key, 'state')
if state ~= 'queued' and state ~= 'running' then return '' end
local first_field = 6
if outcome == 'done' then
  local cancel = redis.call('HGET', key, 'cancel')
  if cancel and cancel ~= '' then outcome, first_field = 'cancelled', #ARGV + 1 end
end
local stream, entry = redis.call('HGET', key, 'stream'), redis.call('HGET', key, 'entry')
redis.call('HSET', key, 'state', outcome, 'ended', now_ms())
redis.call('PEXPIRE', key, keep)
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
forget(job_id, redis.call('HGET', key, 'user'))
local fields = {}
for i = first_field, #ARGV do table.insert(fields, ARGV[i]) end
event(job_id, outcome, unpack(fields))
return outcome
"""

# A worker stopping gracefully gives its running job back: a fresh stream entry (its
# delivery count starts again: the stop was not the job's fault), same place in the line.
# A job of a batch that wedged its engine comes back marked to run alone.
# ARGV: prefix, group, job id, alone (1/0) → 1 if re-queued
REQUEUE = _COMMON + """
local group, job_id = ARGV[2], ARGV[3]
local key = P .. 'job:' .. job_id
if redis.call('HGET', key, 'state') ~= 'running' then return 0 end
local stream, entry = redis.call('HGET', key, 'stream'), redis.call('HGET', key, 'entry')
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
local fresh = redis.call('XADD', stream, '*', 'job', job_id)
redis.call('HSET', key, 'state', 'queued', 'entry', fresh, 'worker', '')
if ARGV[4] == '1' then redis.call('HSET', key, 'alone', '1') end
redis.call('ZREM', P .. 'running', job_id)
redis.call('ZADD', P .. 'waiting', redis.call('HGET', key, 'seq'), job_id)
event(job_id, 'restarting')
return 1
"""

# ARGV: prefix, group, job id, user id, reason, keep ms
# → 'cancelled' (was waiting: gone now), 'stopping' (running: stops within a step),
#   'ended', 'unknown' or 'not_yours'
CANCEL = _COMMON + """
local group, job_id, user_id = ARGV[2], ARGV[3], ARGV[4]
local key = P .. 'job:' .. job_id
local state = redis.call('HGET', key, 'state')
if not state then return 'unknown' end
if redis.call('HGET', key, 'user') ~= user_id then return 'not_yours' end
if state == 'queued' then
  local stream, entry = redis.call('HGET', key, 'stream'), redis.call('HGET', key, 'entry')
  redis.call('HSET', key, 'state', 'cancelled', 'ended', now_ms(), 'cancel', ARGV[5])
  redis.call('PEXPIRE', key, tonumber(ARGV[6]))
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  forget(job_id, user_id)
  event(job_id, 'cancelled')
  return 'cancelled'
end
if state == 'running' then
  redis.call('HSET', key, 'cancel', ARGV[5])
  return 'stopping'
end
return 'ended'
"""

# A worker's word on a job it renders (loading, started, progress), numbered as every event.
# ARGV: prefix, job id, worker ('' for any), kind, then the event's field/value pairs
# → 1 if sent; 0 if the job has ended, or is no longer this worker's (taken over, given back)
PUBLISH = _COMMON + """
local key = P .. 'job:' .. ARGV[2]
local state = redis.call('HGET', key, 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', key, 'worker') ~= ARGV[3] then return 0 end
local fields = {}
for i = 5, #ARGV do table.insert(fields, ARGV[i]) end
event(ARGV[2], ARGV[4], unpack(fields))
return 1
"""

# A bot about to apply an event: each event of a job is applied at most once, in the job's
# order across every bot, and nothing after the job's ending. The number is taken before the
# event is applied (a bot that dies applying it does not get it applied twice), except that
# an ending whose bot died before the job was marked delivered may be applied again by the
# bot that takes it over: a job's one answer may not be lost. While a bot applies an event
# that is not an ending (a Discord edit), it holds the job's `applying` lease: another bot
# with a later event of the job waits for it ('wait'), so that no edit lands out of order.
# ARGV: prefix, job id, seq, 1 for an ending, holder (the entry id), lease ms
# → 'apply', 'wait', 'old' (a newer event was applied), 'delivered' (the job has its
#   answer) or 'unknown' (no such job, or forgotten)
APPLY = _COMMON + """
local key = P .. 'job:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 'unknown' end
if redis.call('HEXISTS', key, 'delivered') == 1 then return 'delivered' end
local seq = tonumber(ARGV[3])
local applied = tonumber(redis.call('HGET', key, 'applied') or '0')
if seq < applied or (seq == applied and ARGV[4] ~= '1') then return 'old' end
local lease = P .. 'applying:' .. ARGV[2]
local holder = redis.call('GET', lease)
if holder and holder ~= ARGV[5] then return 'wait' end
redis.call('HSET', key, 'applied', seq)
if ARGV[4] ~= '1' then redis.call('SET', lease, ARGV[5], 'PX', tonumber(ARGV[6])) end
return 'apply'
"""

# ARGV: prefix, job id, holder → 1 if the lease was this holder's and is given back
APPLIED = _COMMON + """
local lease = P .. 'applying:' .. ARGV[2]
if redis.call('GET', lease) == ARGV[3] then return redis.call('DEL', lease) end
return 0
"""

# ARGV: prefix, group, the number of delivered jobs n, their ids, then the event entry ids
# → the number of entries acknowledged. A job's hash gone meanwhile is not made again.
ACK_EVENTS = _COMMON + """
local group, n = ARGV[2], tonumber(ARGV[3])
for i = 4, 3 + n do
  local key = P .. 'job:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'delivered', '1') end
end
local entries = {}
for i = 4 + n, #ARGV do table.insert(entries, ARGV[i]) end
if #entries == 0 then return 0 end
local acked = redis.call('XACK', P .. 'events', group, unpack(entries))
redis.call('XDEL', P .. 'events', unpack(entries))
return acked
"""

# A malformed entry leaves its stream for the dead-letter stream, with where it was and why,
# acknowledged and deleted in the same step (so that no reader meets it again).
# ARGV: prefix, stream, group, entry id, reason, keep (entries), then its field/value pairs
DEAD_LETTER = _COMMON + """
local stream, group, entry = ARGV[2], ARGV[3], ARGV[4]
local copy = {'stream', stream, 'entry', entry, 'reason', ARGV[5]}
for i = 7, #ARGV, 2 do
  table.insert(copy, 'field:' .. ARGV[i])
  table.insert(copy, ARGV[i + 1] or '')
end
redis.call('XADD', P .. 'dead', 'MAXLEN', '~', ARGV[6], '*', unpack(copy))
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
return 1
"""

# Reservations that ran out with their delivery still kept: their bot stopped before it
# queued the job (killed while it answered Discord, say). Each is handed to one bot, to tell
# its user that nothing was queued.
# ARGV: prefix, at most this many → {job id, delivery json} pairs, flat
ABANDONED = _COMMON + """
local out = {}
for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'holding', '-inf', now_ms(), 'LIMIT',
    0, tonumber(ARGV[2]))) do
  local delivery = redis.call('HGET', P .. 'held', job_id)
  local user = redis.call('HGET', P .. 'held_user', job_id)
  unhold(job_id)
  if delivery and user then
    table.insert(out, job_id)
    table.insert(out, user)
    table.insert(out, delivery)
  end
end
return out
"""
