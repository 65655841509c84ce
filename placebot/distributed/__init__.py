"""The distributed mode's job queue: Redis (or Valkey) Streams with consumer groups.

Used when PLACE_REDIS_URL is set: bot processes admit jobs and deliver results (through
placebot/distributed/backend.py), GPU worker processes (`python -m placebot.gpu_worker`) render
them. Commands that concurrent tasks issue share round trips (pipelining.py). Redis's own
semantics carry the guarantees:

- a job is a hash (`place:job:<id>`) plus an entry in its model's stream
  (`place:jobs:<model>`); workers pull with XREADGROUP (COUNT = PLACE_MAX_BATCH) in the
  consumer group `workers`, so one read takes a whole batch;
- admission (queue bound, per-user limit, cooldown) is one Lua script: atomic across any
  number of bot processes;
- a job is acknowledged (XACK) in the same script that stores its result (or failure) in the
  events stream for delivery; a dead worker's unacknowledged entries are taken over with
  XAUTOCLAIM once idle for Timings.claim_idle_s, and the stream's own delivery counter drops a job
  that keeps killing workers after Timings.max_deliveries tries (its user is told);
- results, progress and other events go to the stream `place:events`, read by the bot
  processes in the consumer group `bots`: each event is handled by one bot, acknowledged
  once delivered, and claimed by another bot if its reader dies; the job id makes a second
  delivery of a result a no-op.

Keys are built from one prefix inside the scripts, so this needs a single Redis/Valkey
server (with AOF for durability), not a Redis Cluster.
"""
