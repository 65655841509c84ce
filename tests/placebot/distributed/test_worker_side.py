"""A render worker's background duties on a real server: they outlive an unexpected error."""

from __future__ import annotations

import asyncio
import logging

from placebot.distributed.worker_side import RedisJobSource
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import TrackingRenderer


async def test_heartbeat_logs_an_unexpected_error_and_beats_on(store, caplog):
    """One beat meets an error no one planned for: it is logged with its traceback, and the
    worker keeps beating (a silent worker would have its jobs taken from it)."""
    source = RedisJobSource(store, TrackingRenderer(), "w-test")
    beats: asyncio.Queue[int] = asyncio.Queue()
    real_beat = store.beat
    count = 0

    async def beat(name, facts):
        nonlocal count
        await real_beat(name, facts)
        count += 1
        await beats.put(count)
        if count == 1:
            raise TypeError("an unplanned failure")

    store.beat = beat
    caplog.set_level(logging.ERROR, logger="placebot.distributed.worker_side")
    duty = asyncio.create_task(source.beat_forever(lambda: {"loaded": []}))
    try:
        for _ in range(2):
            await asyncio.wait_for(beats.get(), PATIENCE_S)
    finally:
        duty.cancel()
    failures = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info[0] is TypeError
    assert [w["name"] for w in await store.workers()] == ["w-test"]
