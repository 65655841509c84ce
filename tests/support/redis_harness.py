"""Pieces for testing the distributed mode: a reporter that records every call, renderers
with a chosen loaded model, and render workers run as tasks of the test's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from dataclasses import replace

from PIL import ImageChops

from pipeline.engine import input_tiles
from pipeline.results import RenderResult
from placebot.distributed.keys import Timings
from placebot.settings import Settings
from tests.support.fast_renderer import FastRenderer

# Short enough for tests to see take-overs quickly, long enough for a busy 2-core machine.
TEST_TIMINGS = Timings(claim_idle_s=2.0, beat_s=0.3, affinity_wait_s=60.0, reservation_s=30.0,
                       applying_lease_s=3.0)


class RecordingReporter:
    """Every Reporter call, per job; `wait_ended(n)` returns once n jobs have ended."""

    def __init__(self, shared: list | None = None):
        # every call as (job id, kind), in the order applied: shared by several reporters
        # (bots), it shows the order across them
        self.applied: list[tuple[str, str]] = [] if shared is None else shared
        self.calls: dict[str, list[str]] = defaultdict(list)
        self.endings: dict[str, list[str]] = defaultdict(list)
        self.results = {}
        self.errors = {}
        self._changed = asyncio.Event()

    def _record(self, job, kind: str) -> None:
        self.calls[job.id].append(kind)
        self.applied.append((job.id, kind))
        if kind in ("finished", "failed", "cancelled"):
            self.endings[job.id].append(kind)
        self._changed.set()

    async def loading(self, jobs) -> None:
        for job in jobs:
            self._record(job, "loading")

    async def started(self, jobs) -> None:
        for job in jobs:
            self._record(job, "started")

    async def progress(self, job, pass_number, frames) -> None:
        self._record(job, f"progress{pass_number}")

    async def finished(self, job, result) -> None:
        self.results[job.id] = result
        self._record(job, "finished")

    async def failed(self, job, error) -> None:
        self.errors[job.id] = str(error)
        self._record(job, "failed")

    async def cancelled(self, job) -> None:
        self._record(job, "cancelled")

    async def requeued(self, job, place) -> None:  # its worker stopped: waiting again
        self._record(job, "requeued")

    async def queue_moved(self) -> None:
        return None

    async def wait_ended(self, count: int, timeout: float = 120.0) -> None:
        await wait_all_ended([self], count, timeout)


async def wait_all_ended(reporters, count: int, timeout: float = 120.0) -> None:
    """Until `count` jobs have ended across these reporters (any bot may deliver any job)."""

    async def ended():
        while sum(len(r.endings) for r in reporters) < count:
            for reporter in reporters:
                reporter._changed.clear()
            await asyncio.wait([asyncio.ensure_future(r._changed.wait()) for r in reporters],
                               return_when=asyncio.FIRST_COMPLETED)

    await asyncio.wait_for(ended(), timeout)


class ModelStoreFacts:
    def __init__(self, loaded: list[str]):
        self.loaded = loaded

    def is_loaded(self, key: str) -> bool:
        return key in self.loaded

    def get(self, key: str) -> str:
        """A load, instant: the worker loads a model it lacks before it renders."""
        if key not in self.loaded:
            self.loaded.append(key)
        return key

    def describe(self) -> dict:
        return {"loaded": list(self.loaded), "device": "cpu", "vram_mode": "full"}

    def reload_lower(self, key: str) -> None:
        return None


class TrackingRenderer(FastRenderer):
    """The fast renderer, with a chosen loaded model, a record of the jobs it rendered, and
    a gate that can hold renders (close()/open()). Its frames are the 32x32 tiles themselves, so
    that moving images through Redis costs the tests little; bench/ measures full size."""

    def __init__(self, loaded: tuple[str, ...] = ("1.4",)):
        super().__init__()
        self.store = ModelStoreFacts(list(loaded))
        self.rendered: list = []
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def close(self) -> None:
        self._gate.clear()

    def open(self) -> None:
        self._gate.set()

    def render(self, jobs, on_pass=None, should_stop=None):
        self.entered.set()
        while not self._gate.wait(0.05):
            if should_stop and (reason := should_stop()):
                from pipeline.errors import RenderCancelled

                raise RenderCancelled(reason)
        self.rendered += list(jobs)
        results = []
        for index, job in enumerate(jobs):
            tiles = input_tiles(job)  # a canvas crop, or a picture's square
            result = RenderResult(job=job, tiles=tiles, frames=[tiles], model_id="tracking")
            for number in range(1, job.passes + 1):
                result.frames.append(ImageChops.offset(result.frames[-1], number, 0))
                result.pass_seconds.append(0.001)
                if on_pass:
                    on_pass(index, number, list(result.frames))
            results.append(result)
        return results


def worker_settings(url: str, **changes) -> Settings:
    return replace(Settings(discord_token="", device="cpu", max_batch=4, redis_url=url),
                   **changes)


@contextlib.asynccontextmanager
async def running_workers(url: str, renderers, timings=TEST_TIMINGS, **changes):
    """Render workers (placebot.distributed.render_worker.run_worker) as tasks, stopped on exit."""
    from placebot.distributed.render_worker import run_worker

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(worker_settings(url, **changes), renderer=r,
                                            timings=timings, name=f"test-worker-{i}",
                                            stop=stop))
             for i, r in enumerate(renderers)]
    try:
        yield tasks
    finally:
        for renderer in renderers:
            renderer.open()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
