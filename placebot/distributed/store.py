"""The job store in Redis: every operation the bots and the workers need, each one command or
one script (scripts.py), so that any number of processes can share it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import cast

import redis.asyncio as redis
from redis.exceptions import ResponseError
from redis.typing import StreamIdT

from pipeline.params import MODEL_KEYS, RenderJob
from placebot import texts
from placebot.distributed import keys, scripts
from placebot.distributed.codec import (
    Event,
    InvalidJob,
    MalformedEntry,
    encode_render,
    entry_job_id,
    parse_event,
    text,
)
from placebot.distributed.entries import Entry, Malformed, ReservationExpired, Taken
from placebot.distributed.pipelining import AutoPipeline
from placebot.distributed.timeline import TIMELINE_KEPT
from placebot.jobs.backend import DuplicateInteraction
from placebot.jobs.jobqueue import CooldownActive, QueueFull, UserLimitReached

log = logging.getLogger(__name__)


# An interaction's id is remembered this long (its token lives 15 minutes; a duplicate
# delivery comes within seconds)
INTERACTION_KEPT_S = 15 * 60.0
DEAD_LETTERS_KEPT = 10_000  # the dead-letter stream is trimmed to about this many entries
ACK_CHUNK = 1000  # entries acknowledged in one script call (Lua's unpack has a limit)



class RedisJobStore:
    """Every call may come from many tasks at once: the short ones share round trips
    (pipelining.AutoPipeline), so a burst costs a few round trips, not one per job."""

    def __init__(self, client: redis.Redis, timings: keys.Timings | None = None):
        self.redis = client
        self.timings = timings or keys.Timings()
        self.pipe = AutoPipeline(client, {name: getattr(scripts, name) for name in (
            "RESERVE", "ENQUEUE", "RELEASE", "TAKE", "FINISH", "REQUEUE", "CANCEL",
            "PUBLISH", "APPLY", "APPLIED", "ACK_EVENTS", "DEAD_LETTER", "ABANDONED")})

    async def _run(self, name: str, *args) -> object:
        """The script's reply as redis-py gives it: a Lua string as bytes, a number as int,
        a table as a list (each caller casts it to the shape its script returns)."""
        return await self.pipe.script(name, keys.PREFIX, *args)

    @property
    def _keep_ms(self) -> int:
        return int(self.timings.keep_ended_s * 1000)

    async def ensure_groups(self) -> None:
        """Create the consumer groups (and their streams) unless they exist; called at every
        (re)connection, since a server restarted without its AOF has lost them."""
        for name, group in [*((s, keys.WORKER_GROUP) for s in keys.STREAMS),
                            (keys.EVENTS, keys.BOT_GROUP)]:
            try:
                await self.redis.xgroup_create(name, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        await self.pipe.load_scripts()

    # ----- admission (bot side)
    async def reserve(self, job_id: str, user_id: int, *, user_max: int, queue_max: int,
                      cooldown_s: float = 0.0, key: str | None = None,
                      delivery: Mapping | None = None) -> int:
        """Hold a place for a job being prepared, or raise the QueueRefusal that applies;
        return the 1-based place it will take in the line, as of now. `cooldown_s` counts from
        the user's last accepted job, whichever cooldown that one had (a server may set a
        longer one than the owner); this one counts as accepted from here (given back with
        the place if the job never comes). `key` (the interaction's id) is admitted once
        across every bot: DuplicateInteraction after. `delivery` is kept until the job is
        queued or the place given back; should neither come, a bot answers it (abandoned)."""
        reply = await self._run("RESERVE", job_id, user_id, user_max, queue_max,
                                int(self.timings.reservation_s * 1000), int(cooldown_s * 1000),
                                int(keys.KEEP_ACCEPTED_S * 1000), key or "",
                                int(INTERACTION_KEPT_S * 1000),
                                json.dumps(dict(delivery)) if delivery is not None else "")
        status, number = cast("tuple[bytes, int]", reply)  # {status, number}
        outcome = text(status)
        if outcome == "duplicate":
            raise DuplicateInteraction(key)
        if outcome == "user":
            raise UserLimitReached(user_max)
        if outcome == "full":
            raise QueueFull(queue_max)
        if outcome == "cooldown":
            raise CooldownActive(int(number) / 1000)
        return int(number)

    async def enqueue(self, job_id: str, user_id: int, render: RenderJob, context: dict, *,
                      shown: bool = True) -> int:
        """Queue a reserved job; return its 1-based position among all waiting jobs.
        ReservationExpired when its reservation ran out first. `shown=False`: the bot tells
        the user that the job was accepted, then calls `shown`; until then the other bots
        hold their words on the job back (the first word must come first)."""
        reply = await self._run(
            "ENQUEUE", job_id, user_id, render.model, encode_render(render), json.dumps(context),
            int(shown))
        status, position = cast("tuple[bytes, int]", reply)  # {status, position}
        if text(status) != "ok":
            raise ReservationExpired(self.timings.reservation_s)
        return int(position)

    async def abandoned(self, count: int = 20) -> list[tuple[str, int, dict]]:
        """Reservations that ran out, their job never queued, each with its user and its
        delivery: now this bot's to answer (no other bot gets them)."""
        flat = cast("list[bytes]", await self._run("ABANDONED", count))
        found = []
        for job_id, user_id, delivery in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
            try:
                found.append((text(job_id), int(user_id), json.loads(text(delivery))))
            except ValueError:
                log.warning("the kept delivery of reservation %r cannot be read", job_id)
        return found

    async def shown(self, job_id: str) -> None:
        """The job's user has read that it was accepted (or never will: its bot gave up)."""
        await self.pipe.command("HSET", keys.job(job_id), "shown", "1")

    async def is_shown(self, job_id: str) -> bool:
        return bool(await self.pipe.command("HEXISTS", keys.job(job_id), "shown"))

    async def release(self, job_id: str, user_id: int) -> None:
        """Give a reservation back (and withdraw a job stored under it that its user was
        never told of)."""
        await self._run("RELEASE", job_id, user_id, keys.WORKER_GROUP)

    async def cancel(self, job_id: str, user_id: int, reason: str) -> str:
        reply = await self._run("CANCEL", keys.WORKER_GROUP, job_id, user_id, reason,
                                self._keep_ms)
        return text(cast(bytes, reply))  # the outcome, a Lua string

    # ----- what the bot shows
    async def position(self, job_id: str) -> int:
        """1-based place among waiting jobs; 0 once taken or ended."""
        rank = await self.pipe.command("ZRANK", keys.WAITING, job_id)
        return 0 if rank is None else rank + 1

    async def counts(self) -> tuple[int, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.WAITING)
            pipe.zcard(keys.RUNNING)
            waiting, running = await pipe.execute()
        return int(waiting), int(running)

    async def states(self, job_ids: Sequence[str]) -> list[str]:
        """Each job's state ('queued', 'running', an ending, or '' once forgotten)."""
        answers = await asyncio.gather(*(self.pipe.command("HGET", keys.job(job_id), "state")
                                         for job_id in job_ids))
        return [text(answer) for answer in answers]

    async def job(self, job_id: str) -> dict[str, str]:
        """The job's record; InvalidJob when it is not text (tampered with)."""
        # redis-py's stubs type a command for both clients; this one is the asyncio client's
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(keys.job(job_id)))
        try:
            return {text(k): text(v) for k, v in raw.items()}
        except UnicodeDecodeError as exc:
            raise InvalidJob(f"its record is not valid UTF-8 ({exc})") from None

    async def workers(self) -> list[dict]:
        """The workers that beat within their time to live, each one's latest facts."""
        now_ms = time.time() * 1000
        await self.redis.zremrangebyscore(keys.WORKERS, "-inf",
                                          now_ms - self.timings.worker_ttl_s * 1000)
        names = await self.redis.zrange(keys.WORKERS, 0, -1)
        facts = []
        for name in names:
            raw = await self.redis.get(keys.worker(text(name)))
            if raw:
                facts.append(json.loads(raw))
        return facts

    # ----- the worker's side
    async def beat(self, name: str, facts: dict) -> None:
        ttl_ms = int(self.timings.worker_ttl_s * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.worker(name), json.dumps({**facts, "name": name, "beat": time.time()}),
                     px=ttl_ms)
            pipe.zadd(keys.WORKERS, {name: time.time() * 1000})
            await pipe.execute()

    async def read(self, consumer: str, streams: Sequence[str], count: int,
                   block_ms: int | None) -> list[Entry]:
        """New entries for this worker, up to `count` from each stream (a malformed one is
        moved to the dead-letter stream instead)."""
        if not streams:
            return []
        answer = await self.redis.xreadgroup(keys.WORKER_GROUP, consumer,
                                             {s: ">" for s in streams}, count=count,
                                             block=block_ms)
        entries: list[Entry] = []
        for stream, messages in answer or []:
            entries += await self._job_entries(text(stream), messages)
        return entries

    async def claim_stale(self, consumer: str, count: int,
                          streams: Sequence[str] = keys.STREAMS) -> list[Entry]:
        """Entries that a silent worker held past claim_idle_s, now this worker's."""
        idle_ms = int(self.timings.claim_idle_s * 1000)
        claimed: list[Entry] = []
        for stream in streams:
            answer = await self.redis.xautoclaim(stream, keys.WORKER_GROUP, consumer, idle_ms,
                                                 "0-0", count=count)
            claimed += await self._job_entries(stream, answer[1])
            for deleted in answer[2] if len(answer) > 2 else []:  # XDEL'd while pending
                await self.redis.xack(stream, keys.WORKER_GROUP, deleted)
        return claimed

    async def _job_entries(self, stream: str, messages) -> list[Entry]:
        entries = []
        for raw_id, fields in messages:
            if not fields:  # deleted while pending
                continue
            entry_id = text(raw_id)
            try:
                entries.append(Entry(stream, entry_id, entry_job_id(fields)))
            except MalformedEntry as exc:
                await self.dead_letter(Malformed(stream, keys.WORKER_GROUP, entry_id,
                                                 fields, str(exc)))
        return entries

    async def dead_letter(self, entry: Malformed) -> None:
        """Move a malformed entry to the dead-letter stream (with its stream, id and the
        reason), acknowledged and deleted where it was; logged once, here."""
        flat: list[bytes | str] = []
        for name, value in entry.fields.items():
            flat += [name, value]
        await self._run("DEAD_LETTER", entry.stream, entry.group, entry.entry_id, entry.reason,
                        DEAD_LETTERS_KEPT, *flat)
        log.error("entry %s of %s is malformed (%s); moved to %s", entry.entry_id,
                  entry.stream, entry.reason, keys.DEAD)

    async def keep_alive(self, consumer: str, entries: Iterable[Entry]) -> None:
        """Reset the idle time of the entries this live worker holds (not their count)."""
        by_stream: dict[str, list[StreamIdT]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        # One XCLAIM a stream, through redis-py's own method: its justid flag is what tells
        # the reply parser that the answer is ids, not entries (a raw "JUSTID" argument, as
        # the automatic pipeline would send, gets the answer parsed as entries and fails).
        for stream, entry_ids in by_stream.items():
            await self.redis.xclaim(stream, keys.WORKER_GROUP, consumer, 0, entry_ids,
                                    justid=True)

    async def take(self, consumer: str, entries: Sequence[Entry]) -> list[Taken]:
        if not entries:
            return []
        args: list[str] = [keys.WORKER_GROUP, consumer, str(self.timings.max_deliveries),
                           # the TAKE script fills in {n}, the job's delivery count
                           str(self._keep_ms), texts.DROPPED_BY_WORKERS]
        for entry in entries:
            args += [entry.stream, entry.entry_id, entry.job_id]
        # per entry {job_id, status, render, context, user_id, deliveries, alone}
        rows = cast("list[tuple[bytes, bytes, bytes, bytes, bytes, int, int]]",
                    await self._run("TAKE", *args))
        return [Taken(entry, text(row[1]), row[2], row[3], row[4], int(row[5]), bool(row[6]))
                for entry, row in zip(entries, rows, strict=True)]

    async def finish(self, job_id: str, outcome: str,
                     fields: dict[str, bytes | str]) -> str | None:
        """End a job and store its event for delivery, acknowledging its entry, atomically.
        Returns the outcome stored (`cancelled` for a result whose user cancelled it while
        it ran), or None if the job had already ended."""
        flat: list[bytes | str] = []
        for name, value in fields.items():
            flat += [name, value]
        stored = await self._run("FINISH", keys.WORKER_GROUP, job_id, outcome,
                                 self._keep_ms, *flat)
        return text(cast("bytes", stored)) or None

    async def requeue(self, job_id: str, alone: bool = False) -> bool:
        """A running job back to the queue (its delivery count starts again); `alone`: it
        is rendered in a batch of its own from now on."""
        return bool(await self._run("REQUEUE", keys.WORKER_GROUP, job_id, int(alone)))

    async def publish(self, job_id: str, kind: str, fields: dict | None = None, *,
                      worker: str = "") -> bool:
        """Send a word on a running job (numbered in the job's sequence); False when the job
        has ended, or (`worker` given) is no longer that worker's: nothing is sent then."""
        flat: list[bytes | str] = []
        for name, value in (fields or {}).items():
            flat += [name, value]
        return bool(await self._run("PUBLISH", job_id, worker, kind, *flat))

    async def note_batch(self, moments: str) -> None:
        """Keep a batch's timeline (placebot/distributed/timeline.py), the latest ones only."""
        await self.pipe.command("XADD", keys.TIMELINE, "MAXLEN", "~", TIMELINE_KEPT, "*",
                                "batch", moments)

    async def batch_timelines(self) -> list[dict]:
        """Every batch's timeline kept (oldest first)."""
        return [json.loads(text(fields[b"batch"]))
                for _id, fields in await self.redis.xrange(keys.TIMELINE)]

    async def cancel_requests(self, job_ids: Sequence[str]) -> dict[str, str]:
        answers = await asyncio.gather(*(self.pipe.command("HGET", keys.job(job_id), "cancel")
                                         for job_id in job_ids))
        return {job_id: text(a) for job_id, a in zip(job_ids, answers, strict=True) if a}

    async def oldest_unread_ms(self, stream: str) -> int | None:
        """Server time (ms) at which the oldest entry no worker has read yet was added."""
        groups = await self.redis.xinfo_groups(stream)
        group = next((g for g in groups if text(g["name"]) == keys.WORKER_GROUP), None)
        if group is None:
            return None
        last = text(group["last-delivered-id"])
        after = await self.redis.xrange(stream, min=f"({last}", count=1)
        return int(text(after[0][0]).split("-")[0]) if after else None

    async def server_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # ----- the events (bot side)
    async def read_events(self, consumer: str, count: int, block_ms: int | None) -> list[Event]:
        answer = await self.redis.xreadgroup(keys.BOT_GROUP, consumer, {keys.EVENTS: ">"},
                                             count=count, block=block_ms)
        return await self._events([m for _stream, messages in answer or [] for m in messages])

    async def claim_events(self, consumer: str, idle_s: float, count: int) -> list[Event]:
        answer = await self.redis.xautoclaim(keys.EVENTS, keys.BOT_GROUP, consumer,
                                             int(idle_s * 1000), "0-0", count=count)
        for deleted in answer[2] if len(answer) > 2 else []:
            await self.redis.xack(keys.EVENTS, keys.BOT_GROUP, deleted)
        return await self._events(answer[1])

    async def _events(self, messages) -> list[Event]:
        events = []
        for raw_id, fields in messages:
            if not fields:
                continue
            entry_id = text(raw_id)
            try:
                events.append(parse_event(entry_id, fields))
            except MalformedEntry as exc:
                await self.dead_letter(Malformed(keys.EVENTS, keys.BOT_GROUP, entry_id, fields,
                                                 str(exc)))
        return events

    async def keep_events_alive(self, consumer: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self.redis.xclaim(keys.EVENTS, keys.BOT_GROUP, consumer, 0, list(entry_ids),
                                    justid=True)

    async def apply(self, event: Event) -> str:
        """Whether a bot may apply this event now: 'apply' (this bot has it: each event of a
        job is applied at most once, in order, and none after the job's answer; an event that
        is not an ending is then held until `applied`), 'wait' (another bot is applying an
        event of the job: ask again shortly), 'old', 'delivered' or 'unknown'."""
        answer = await self._run("APPLY", event.job_id, event.seq, int(event.ending),
                                 event.entry_id, int(self.timings.applying_lease_s * 1000))
        return text(cast(bytes, answer))

    async def applied(self, event: Event) -> None:
        """The event (not an ending) is applied: the next event of its job may go."""
        await self._run("APPLIED", event.job_id, event.entry_id)

    async def ack_events(self, entry_ids: Sequence[str], delivered: Sequence[str] = ()) -> None:
        """The events are handled; the jobs in `delivered` had their ending delivered (their
        job id is the idempotency key: a claimed copy of the event is then skipped)."""
        entries, jobs = list(entry_ids), list(delivered)
        while entries or jobs:
            chunk, entries = entries[:ACK_CHUNK], entries[ACK_CHUNK:]
            done, jobs = jobs[:ACK_CHUNK], jobs[ACK_CHUNK:]
            await self._run("ACK_EVENTS", keys.BOT_GROUP, len(done), *done, *chunk)


def model_streams(models: Iterable[str] = MODEL_KEYS) -> list[str]:
    return [keys.stream(model) for model in models]
