"""Malformed stream entries on a real server: each is acknowledged, moved to the dead-letter
stream with the reason, logged once, and the read goes on (worker and bot, reader and
claimer alike)."""

from __future__ import annotations

import asyncio
import logging
import random

from pipeline.params import RenderRequest
from placebot.distributed import keys
from placebot.distributed.bot_side import RedisBotQueue
from placebot.jobs.jobqueue import Job
from tests.support.redis_harness import RecordingReporter, TrackingRenderer, running_workers

RENDER = RenderRequest(model="1.4", steps=4, strength=0.5, recursions=1).resolve(
    random.Random(5))
NOT_UTF8 = b"\xff\xfe\xfa"
HOUR_MS = 3_600_000


def malformed_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is malformed" in r.getMessage()]


async def dead_letters(store) -> list[dict]:
    return [{k.decode(): v for k, v in fields.items()}
            for _id, fields in await store.redis.xrange(keys.DEAD)]


async def pending(store, stream: str, group: str) -> int:
    return (await store.redis.xpending(stream, group))["pending"]


async def test_a_job_entry_that_is_not_utf8_does_not_stall_the_jobs_behind_it(
        store, valkey, caplog):
    """An entry whose job id is not UTF-8, added ahead of a real job: the real job is
    rendered and answered, the bad entry is in the dead-letter stream with its reason and
    nothing is left pending; it is logged once."""
    caplog.set_level(logging.ERROR)
    stream = keys.stream("1.4")
    bad = (await store.redis.xadd(stream, {"job": NOT_UTF8})).decode()
    reporter = RecordingReporter()
    bot = RedisBotQueue(store, reporter, user_max=1, queue_max=10)
    bot.start()
    try:
        job = Job(user_id=1, render=RENDER)
        await bot.submit(job, {"user_id": 1})
        async with running_workers(valkey.url, [TrackingRenderer()]):
            await reporter.wait_ended(1)
    finally:
        await bot.stop()
    assert reporter.endings[job.id] == ["finished"]
    [letter] = await dead_letters(store)
    assert letter["stream"] == stream.encode() and letter["entry"] == bad.encode()
    assert b"not valid UTF-8" in letter["reason"] and letter["field:job"] == NOT_UTF8
    assert await pending(store, stream, keys.WORKER_GROUP) == 0
    assert await store.redis.xlen(stream) == 0
    assert len(malformed_lines(caplog)) == 1


async def test_a_malformed_job_entry_held_by_a_dead_worker_is_dead_lettered_when_claimed(
        store, caplog):
    """A dead worker held a malformed entry: the worker that takes its entries over moves
    it to the dead-letter stream instead of handing it on (or raising)."""
    caplog.set_level(logging.ERROR)
    stream = keys.stream("1.4")
    await store.redis.xadd(stream, {"kind": "no job field"})
    await store.redis.xreadgroup(keys.WORKER_GROUP, "dead-worker", {stream: ">"})
    [entry] = await store.redis.xpending_range(stream, keys.WORKER_GROUP, "-", "+", 10)
    await store.redis.xclaim(stream, keys.WORKER_GROUP, "dead-worker", 0,
                             [entry["message_id"]], idle=HOUR_MS, justid=True)
    assert await store.claim_stale("heir", 10) == []
    [letter] = await dead_letters(store)
    assert letter["reason"] == b"it has no 'job' field"
    assert await pending(store, stream, keys.WORKER_GROUP) == 0
    assert len(malformed_lines(caplog)) == 1


async def test_an_event_that_is_not_utf8_does_not_stop_the_bots_event_reader(
        store, valkey, caplog):
    """An event entry whose job id is not UTF-8, ahead of a real job's events: the bot's
    reader logs it once, dead-letters it and delivers the real job (it used to die in
    silence, leaving every later job undelivered)."""
    caplog.set_level(logging.ERROR)
    await store.redis.xadd(keys.EVENTS, {"job": NOT_UTF8, "kind": "done", "seq": "1"})
    reporter = RecordingReporter()
    bot = RedisBotQueue(store, reporter, user_max=1, queue_max=10)
    bot.start()
    try:
        async with running_workers(valkey.url, [TrackingRenderer()]):
            await asyncio.wait_for(_until(lambda: dead_letters(store)), 60)
            job = Job(user_id=1, render=RENDER)
            await bot.submit(job, {"user_id": 1})
            await reporter.wait_ended(1)
    finally:
        await bot.stop()
    assert reporter.endings[job.id] == ["finished"]
    [letter] = await dead_letters(store)
    assert letter["stream"] == keys.EVENTS.encode() and letter["field:kind"] == b"done"
    assert await pending(store, keys.EVENTS, keys.BOT_GROUP) == 0
    assert len(malformed_lines(caplog)) == 1


async def test_malformed_events_held_by_a_dead_bot_are_dead_lettered_when_claimed(
        store, caplog):
    """A dead bot held events no bot can use (an unknown kind, no sequence number): the bot
    that takes them over moves each to the dead-letter stream with its own reason."""
    caplog.set_level(logging.ERROR)
    await store.redis.xadd(keys.EVENTS, {"job": "0123456789ab", "kind": "exploded",
                                         "seq": "1"})
    await store.redis.xadd(keys.EVENTS, {"job": "0123456789ab", "kind": "started"})
    await store.redis.xreadgroup(keys.BOT_GROUP, "dead-bot", {keys.EVENTS: ">"})
    assert await store.claim_events("heir", 0.0, 10) == []
    reasons = [letter["reason"].decode() for letter in await dead_letters(store)]
    assert reasons == ["its kind 'exploded' is none of loading, started, progress, "
                       "restarting, done, failed, cancelled",
                       "it has no 'seq' field"]
    assert await pending(store, keys.EVENTS, keys.BOT_GROUP) == 0
    assert len(malformed_lines(caplog)) == 2


async def test_a_job_record_that_is_not_utf8_fails_that_job_and_the_worker_goes_on(
        store, valkey):
    """A job whose stored user id is not UTF-8 (tampered with) fails with a reason instead
    of raising in the worker's read; the job behind it is rendered."""
    reporter = RecordingReporter()
    bot = RedisBotQueue(store, reporter, user_max=1, queue_max=10)
    bot.start()
    try:
        spoilt, sound = Job(user_id=1, render=RENDER), Job(user_id=2, render=RENDER)
        await bot.submit(spoilt, {"user_id": 1})
        await store.redis.hset(keys.job(spoilt.id), "user", NOT_UTF8)
        await bot.submit(sound, {"user_id": 2})
        async with running_workers(valkey.url, [TrackingRenderer()]):
            await reporter.wait_ended(2)
    finally:
        await bot.stop()
    assert reporter.endings == {spoilt.id: ["failed"], sound.id: ["finished"]}


async def _until(probe):
    while True:
        if await probe():
            return
        await asyncio.sleep(0.02)
