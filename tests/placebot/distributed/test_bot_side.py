"""A bot process's end of the Redis queue on a real server: its event reader keeps going."""

from __future__ import annotations

import asyncio
import random

from pipeline.params import RenderRequest
from placebot.distributed import keys
from placebot.distributed.bot_side import RedisBotQueue
from placebot.jobs.jobqueue import Job
from tests.support.log_seen import watching
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import RecordingReporter

RENDER = RenderRequest(model="1.4", steps=4, strength=0.5, recursions=1).resolve(
    random.Random(5))


async def test_the_event_reader_outlives_a_failed_recreation_of_its_groups(store):
    """The events stream is gone (a server restarted without its AOF) and recreating the
    consumer groups fails: the reader logs it, tries again, and delivers the events after."""
    reporter = RecordingReporter()
    bot = RedisBotQueue(store, reporter, user_max=1, queue_max=10)
    job = Job(user_id=1, render=RENDER)
    await bot.submit(job, {"user_id": 1})
    blocker = keys.stream("1.5")
    await store.redis.delete(keys.EVENTS, blocker)
    await store.redis.set(blocker, "not a stream")  # its XGROUP CREATE fails (WRONGTYPE)
    with watching("placebot.distributed.bot_side", "could not recreate the consumer") as failure:
        bot.start()
        try:
            await asyncio.wait_for(failure.seen.wait(), PATIENCE_S)
            await store.redis.delete(blocker)
            await store.publish(job.id, "failed", {"error": "the worker said no"})
            await reporter.wait_ended(1)
        finally:
            await bot.stop()
    assert reporter.errors == {job.id: "the worker said no"}
