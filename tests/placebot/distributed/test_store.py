"""The Redis job store on a real server: admission, cancel, drop after repeated deliveries."""

from __future__ import annotations

import asyncio
import random

import pytest

from pipeline.params import RenderRequest
from placebot.discord_side.attachments import DECODE_LINE_S, DECODE_TIMEOUT_S, DOWNLOAD_TIMEOUT_S
from placebot.distributed import keys
from placebot.distributed.codec import Event
from placebot.distributed.entries import ReservationExpired
from placebot.jobs.jobqueue import (
    CooldownActive,
    QueueFull,
    QueueRefusal,
    UserLimitReached,
    new_job_id,
)

RENDER = RenderRequest(steps=4, strength=0.5, recursions=1).resolve(random.Random(7))


async def admit(store, user_id, **limits):
    job_id = new_job_id()
    await store.reserve(job_id, user_id, **limits)
    await store.enqueue(job_id, user_id, RENDER, {"user_id": user_id})
    return job_id


async def test_per_user_limit_holds_across_two_bot_processes(store, second_store):
    """50 simultaneous submissions of one user through two clients: exactly user_max pass."""
    attempts = [admit(s, 42, user_max=2, queue_max=100) for s in (store, second_store) * 25]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, str)]
    assert len(accepted) == 2
    assert all(isinstance(o, UserLimitReached) for o in outcomes if not isinstance(o, str))


async def test_queue_bound_holds_under_concurrent_submissions(store, second_store):
    """60 users at once against a bound of 20: 20 wait, 40 hear that the queue is full."""
    attempts = [admit((store, second_store)[u % 2], u, user_max=1, queue_max=20)
                for u in range(60)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(isinstance(o, str) for o in outcomes) == 20
    assert sum(isinstance(o, QueueFull) for o in outcomes) == 40
    assert await store.counts() == (20, 0)


async def test_cooldown_refuses_the_next_job_until_it_passes(store):
    """An accepted job starts the user's cooldown; the next reservation is refused."""
    job_id = new_job_id()
    await store.reserve(job_id, 7, user_max=5, queue_max=10, cooldown_s=60)
    await store.enqueue(job_id, 7, RENDER, {})
    with pytest.raises(CooldownActive, match="cooldown"):
        await store.reserve(new_job_id(), 7, user_max=5, queue_max=10, cooldown_s=60)


async def test_two_reservations_at_once_cannot_both_pass_the_cooldown(store, second_store):
    """Two /place of one user at once through two bots (limit 2): the cooldown lets one in."""
    attempts = [s.reserve(new_job_id(), 8, user_max=2, queue_max=10, cooldown_s=60)
                for s in (store, second_store)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["CooldownActive", "int"]


async def test_a_released_reservation_gives_its_cooldown_back(store):
    """A job that never came (its preparation failed) does not hold its user's cooldown."""
    job_id = new_job_id()
    await store.reserve(job_id, 12, user_max=1, queue_max=10, cooldown_s=60)
    await store.release(job_id, 12)
    assert await store.reserve(new_job_id(), 12, user_max=1, queue_max=10, cooldown_s=60) == 1


async def test_a_servers_longer_cooldown_counts_from_the_last_job_wherever_it_was(store):
    """A job accepted without a cooldown (the owner's 0) still starts a stricter server's:
    a reservation under a 60 s cooldown is refused, one under none passes; a reservation
    given back puts the earlier job's time back, not nothing."""
    await admit(store, 31, user_max=5, queue_max=10)
    with pytest.raises(CooldownActive, match="cooldown"):
        await store.reserve(new_job_id(), 31, user_max=5, queue_max=10, cooldown_s=60)
    given_back = new_job_id()
    await store.reserve(given_back, 31, user_max=5, queue_max=10)
    await store.release(given_back, 31)
    with pytest.raises(CooldownActive, match="cooldown"):
        await store.reserve(new_job_id(), 31, user_max=5, queue_max=10, cooldown_s=60)


def test_a_place_is_held_longer_than_a_picture_can_take_to_prepare():
    """A /dream whose picture downloads and decodes as slowly as allowed still keeps its place."""
    assert keys.Timings().reservation_s > DOWNLOAD_TIMEOUT_S + DECODE_LINE_S + DECODE_TIMEOUT_S


async def test_a_reservation_that_ran_out_is_a_refusal_not_an_outage(store):
    """Storing a job whose reservation expired meanwhile raises a QueueRefusal that says so,
    not an OSError (which the bot would take for Redis out of reach)."""
    job_id = new_job_id()
    await store.reserve(job_id, 13, user_max=1, queue_max=10, cooldown_s=60)
    await store.redis.zadd(keys.RESERVED, {job_id: 0})  # its time ran out long ago
    with pytest.raises(ReservationExpired, match="ran out") as refused:
        await store.enqueue(job_id, 13, RENDER, {})
    assert isinstance(refused.value, QueueRefusal) and not isinstance(refused.value, OSError)
    assert await store.reserve(new_job_id(), 13, user_max=1, queue_max=10) == 1  # cooldown gone


async def test_released_reservation_frees_the_users_place(store):
    """A job whose preparation failed gives its place back."""
    job_id = new_job_id()
    await store.reserve(job_id, 9, user_max=1, queue_max=10)
    await store.release(job_id, 9)
    await store.reserve(new_job_id(), 9, user_max=1, queue_max=10)  # no QueueRefusal


async def test_positions_follow_admission_order(store):
    """Three jobs: positions 1, 2, 3, and 1, 2 once the first is cancelled."""
    ids = [await admit(store, user, user_max=1, queue_max=10) for user in (1, 2, 3)]
    assert [await store.position(i) for i in ids] == [1, 2, 3]
    assert await store.cancel(ids[0], 1, "test") == "cancelled"
    assert [await store.position(i) for i in ids] == [0, 1, 2]


async def test_cancelled_waiting_job_is_never_handed_to_a_worker(store):
    """Cancel while waiting: its stream entry is gone, and a 'cancelled' event is stored."""
    job_id = await admit(store, 5, user_max=1, queue_max=10)
    assert await store.cancel(job_id, 6, "forged") == "not_yours"
    assert await store.cancel(job_id, 5, "by its requester") == "cancelled"
    assert await store.read("w", [keys.stream(RENDER.model)], 10, None) == []
    events = await store.read_events("bot", 10, None)
    assert [(e.job_id, e.kind) for e in events] == [(job_id, "cancelled")]


async def test_a_job_that_keeps_killing_workers_is_dropped_and_its_user_told(store):
    """Handed out max_deliveries times without an ending: the next take drops it, with a
    'failed' event naming why, and frees its user's place."""
    await admit(store, 11, user_max=1, queue_max=10)
    stream = keys.stream(RENDER.model)
    entries = await store.read("w0", [stream], 1, None)
    taken = await store.take("w0", entries)
    for attempt in range(1, store.timings.max_deliveries + 1):  # each worker "dies"
        await store.redis.xclaim(stream, keys.WORKER_GROUP, f"w{attempt}", 0,
                                 [entries[0].entry_id])
        taken = await store.take(f"w{attempt}", entries)
    assert taken[0].status == "dropped"
    events = await store.read_events("bot", 10, None)
    assert events[-1].kind == "failed"
    assert "dropped" in events[-1].error
    await store.reserve(new_job_id(), 11, user_max=1, queue_max=10)


async def test_refusals_are_queue_refusals_written_for_users(store):
    """The store's refusals reach the user through the same QueueRefusal type as today's."""
    await admit(store, 3, user_max=1, queue_max=10)
    with pytest.raises(QueueRefusal, match="you already have 1 job waiting"):
        await store.reserve(new_job_id(), 3, user_max=1, queue_max=10)


async def test_keep_alive_resets_the_idle_time_of_held_entries(store):
    """A live worker's heartbeat keeps the entries it holds from looking abandoned: after
    keep_alive their idle time starts again, and they are still this worker's."""
    await admit(store, 21, user_max=1, queue_max=10)
    await admit(store, 22, user_max=1, queue_max=10)
    stream = keys.stream(RENDER.model)
    entries = await store.read("w0", [stream], 10, None)
    await store.take("w0", entries)
    hour_ms = 3_600_000
    for entry in entries:  # as if held for an hour without a beat
        await store.redis.xclaim(stream, keys.WORKER_GROUP, "w0", 0, [entry.entry_id],
                                 idle=hour_ms, justid=True)
    await store.keep_alive("w0", entries)
    after = await store.redis.xpending_range(stream, keys.WORKER_GROUP, "-", "+", 10)
    assert [p["consumer"] for p in after] == [b"w0", b"w0"]
    assert all(p["time_since_delivered"] < hour_ms / 2 for p in after)


def event(job_id: str, kind: str, seq: int, entry_id: str = "1-0") -> Event:
    return Event(entry_id, job_id, kind, seq, {})


async def test_each_event_of_a_job_is_applied_at_most_once_in_order_and_none_after_its_end(
        store):
    """The job's events are numbered; a bot may apply one only if it is newer than the last
    applied (a copy taken over from a dead bot is 'old'), and nothing once the job's ending
    was delivered; an ending taken over before it was delivered may be applied again."""
    job_id = await admit(store, 31, user_max=1, queue_max=10)
    assert await store.apply(event(job_id, "started", 1)) == "apply"
    await store.applied(event(job_id, "started", 1))
    assert await store.apply(event(job_id, "progress", 3)) == "apply"
    await store.applied(event(job_id, "progress", 3))
    assert await store.apply(event(job_id, "progress", 2)) == "old"
    assert await store.apply(event(job_id, "started", 1)) == "old"
    assert await store.apply(event(job_id, "done", 4)) == "apply"
    assert await store.apply(event(job_id, "done", 4)) == "apply"  # its bot died: taken over
    await store.ack_events([], delivered=[job_id])
    assert await store.apply(event(job_id, "done", 4)) == "delivered"
    assert await store.apply(event(job_id, "progress", 5)) == "delivered"
    assert await store.apply(event("0123456789ab", "started", 1)) == "unknown"


async def test_a_bot_applying_an_event_holds_the_jobs_later_events_back(store):
    """While one bot applies a job's event (a Discord edit), another bot's later event of
    that job waits; it goes once the first is applied."""
    job_id = await admit(store, 32, user_max=1, queue_max=10)
    first, second = event(job_id, "started", 1, "1-0"), event(job_id, "done", 2, "2-0")
    assert await store.apply(first) == "apply"
    assert await store.apply(second) == "wait"
    await store.applied(first)
    assert await store.apply(second) == "apply"


async def test_a_word_from_a_worker_that_no_longer_holds_the_job_is_not_sent(store):
    """A worker publishes progress only while the job is running on it: once it ended (or
    another worker holds it) nothing is sent."""
    job_id = await admit(store, 33, user_max=1, queue_max=10)
    stream = keys.stream(RENDER.model)
    await store.take("w0", await store.read("w0", [stream], 1, None))
    assert await store.publish(job_id, "progress", {"pass": "1"}, worker="w1") is False
    assert await store.publish(job_id, "progress", {"pass": "1"}, worker="w0") is True
    assert await store.finish(job_id, "done", {})
    assert await store.publish(job_id, "progress", {"pass": "1"}, worker="w0") is False
    events = await store.read_events("bot", 10, None)
    assert [(e.kind, e.seq) for e in events] == [("progress", 1), ("done", 2)]
