"""Bot processes and render workers sharing one real Valkey server, end to end: each
accepted job answered exactly once, through worker deaths, bot deaths and a server restart."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sys
import threading
import time
from collections import defaultdict

from pipeline.errors import ModelLoadError
from pipeline.params import RenderJob, RenderRequest
from placebot.distributed import keys
from placebot.distributed.bot_side import RedisBotQueue
from placebot.distributed.connection import connect
from placebot.distributed.store import RedisJobStore
from placebot.jobs.jobqueue import Job
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import (
    TEST_TIMINGS,
    ModelStoreFacts,
    RecordingReporter,
    TrackingRenderer,
    running_workers,
    wait_all_ended,
)
from tests.support.waiting import until


def render(seed: int, model: str = "1.4", recursions: int = 1) -> RenderJob:
    request = RenderRequest(model=model, steps=4, strength=0.5, recursions=recursions)
    return request.resolve(random.Random(seed))


async def bot_process(url, reporter, *, user_max=1, queue_max=100, name=None):
    """A bot's queue on its own connection, as a separate bot process would have."""
    store = RedisJobStore(connect(url), TEST_TIMINGS)
    await store.ensure_groups()
    bot = RedisBotQueue(store, reporter, user_max=user_max, queue_max=queue_max, name=name)
    bot.start()
    return bot


async def close(bot: RedisBotQueue) -> None:
    await bot.stop()
    await bot.store.redis.aclose()


async def submit(bot, user_id: int, seed: int, **kwargs) -> Job:
    job = Job(user_id=user_id, render=render(seed, **kwargs))
    await bot.submit(job, {"user_id": user_id})
    return job


async def test_two_bots_two_workers_answer_1000_jobs_from_500_users_exactly_once(valkey):
    """1,000 jobs from 500 users through two bot processes and two workers: every job ends
    in exactly one finished call, across both bots each job's events are applied in order
    and none after its ending, and both workers render."""
    applied: list[tuple[str, str]] = []
    reporters = [RecordingReporter(applied), RecordingReporter(applied)]
    bots = [await bot_process(valkey.url, r, user_max=2, queue_max=1000) for r in reporters]
    renderers = [TrackingRenderer(), TrackingRenderer()]
    async with running_workers(valkey.url, renderers, max_batch=8):
        jobs = await asyncio.gather(*(submit(bots[n % 2], n % 500, n) for n in range(1000)))
        await wait_all_ended(reporters, 1000)
    for bot in bots:
        await close(bot)
    endings = {job_id: kinds for r in reporters for job_id, kinds in r.endings.items()}
    assert len(jobs) == 1000 and all(endings[job.id] == ["finished"] for job in jobs)
    assert sum(len(r.endings) for r in reporters) == 1000  # no job answered by both bots
    # a job's progress and its result may be delivered by different bots, never out of order
    order = ["started", "progress1", "finished"]
    per_job = defaultdict(list)
    for job_id, kind in applied:
        per_job[job_id].append(kind)
    assert all(per_job[job.id] == sorted(per_job[job.id], key=order.index) for job in jobs)
    assert all(per_job[job.id][-1] == "finished" for job in jobs)
    assert all(renderer.rendered for renderer in renderers)


async def test_a_worker_killed_mid_batch_has_its_jobs_finished_by_another(valkey, tmp_path):
    """SIGKILL a worker process holding a batch: after the idle bound, another worker takes
    the batch over, and each job is answered once."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.hanging_worker", valkey.url,
        stdout=asyncio.subprocess.PIPE)
    jobs = [await submit(bot, user, user) for user in range(3)]
    assert (await asyncio.wait_for(victim.stdout.readline(), 60)).strip() == b"rendering"
    victim.kill()
    await victim.wait()
    survivor = TrackingRenderer()
    async with running_workers(valkey.url, [survivor]):
        await reporter.wait_ended(3)
    await close(bot)
    assert all(reporter.endings[job.id] == ["finished"] for job in jobs)
    assert sorted(job.seed for job in survivor.rendered) == sorted(j.render.seed for j in jobs)


async def test_a_bot_killed_with_events_in_hand_has_them_delivered_by_another(valkey):
    """A bot process dies while delivering results: another bot takes the events over after
    the idle bound and delivers each job once."""

    class StuckReporter(RecordingReporter):
        in_hand = 0
        holding_all = asyncio.Event()

        async def finished(self, job, result):  # the process "dies" inside the upload
            self.in_hand += 1
            if self.in_hand == 3:
                self.holding_all.set()
            await asyncio.Event().wait()

    stuck = StuckReporter()
    doomed = await bot_process(valkey.url, stuck, name="doomed-bot")
    jobs = [await submit(doomed, user, user) for user in range(3)]
    async with running_workers(valkey.url, [TrackingRenderer()]):
        await asyncio.wait_for(stuck.holding_all.wait(), 60)
        for task in doomed._tasks:  # killed: nothing acknowledged, nothing said
            task.cancel()
        for chain in list(doomed._chains.values()):
            chain.cancel()
        heir = RecordingReporter()
        other = await bot_process(valkey.url, heir, name="heir-bot")
        await heir.wait_ended(3)
    await close(other)
    await doomed.store.redis.aclose()
    assert all(heir.endings[job.id] == ["finished"] for job in jobs)
    assert not stuck.endings


async def test_jobs_survive_a_server_restart_and_everyone_reconnects(valkey, caplog):
    """Jobs queued, the server restarted (AOF): a worker started afterwards renders them all,
    the bot delivers them, and the outage is logged once, then its end."""
    caplog.set_level(logging.WARNING)
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    jobs = [await submit(bot, user, user) for user in range(4)]
    valkey.stop()
    await until(lambda: bot.outage.down, "the bot noticed that the server is down")
    valkey.start()
    async with running_workers(valkey.url, [TrackingRenderer()]):
        await reporter.wait_ended(4)
    await close(bot)
    assert all(reporter.endings[job.id] == ["finished"] for job in jobs)
    lost = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "Redis is reachable again" in r.getMessage()]
    assert len(lost) == 1 and len(back) == 1


async def test_a_job_tampered_with_in_redis_is_refused_by_the_worker(valkey):
    """A job whose stored parameters the bot would refuse fails with a reason, unrendered."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter)
    job = await submit(bot, 1, 1)
    await bot.store.redis.hset(f"place:job:{job.id}", "render",
                               RenderJob.to_dict(job.render).__repr__().replace("0.5", "7"))
    await bot.store.redis.hset(f"place:job:{job.id}", "render",
                               '{"model": "1.4", "canvas": "2022", "x": 1, "y": 1, "seed": 1,'
                               ' "strength": 7.0, "steps": 4, "passes": 2}')
    renderer = TrackingRenderer()
    async with running_workers(valkey.url, [renderer]):
        await reporter.wait_ended(1)
    await close(bot)
    assert reporter.endings[job.id] == ["failed"] and not renderer.rendered
    assert "strength" in reporter.errors[job.id]


async def test_cancel_stops_a_running_job_within_a_step(valkey):
    """Cancel on a running job: the worker stops it and the bot reports it cancelled."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter)
    renderer = TrackingRenderer()
    renderer.close()
    async with running_workers(valkey.url, [renderer]):
        job = await submit(bot, 1, 1)
        assert await asyncio.to_thread(renderer.entered.wait, PATIENCE_S)
        assert await bot.cancel(job.id, 1, "cancelled by its requester") == "stopping"
        await reporter.wait_ended(1)
    await close(bot)
    assert reporter.endings[job.id] == ["cancelled"] and not renderer.rendered


async def test_a_job_its_worker_gave_back_is_shown_waiting_at_its_place(valkey):
    """A render worker that stops gives its running job back to the line (its `restarting`
    event): the bot tells its reporter the job waits again, with its place, instead of
    passing on a "restarting" of its own."""

    class PlaceRecorder(RecordingReporter):
        def __init__(self):
            super().__init__()
            self.places: dict[str, int] = {}

        async def requeued(self, job, place) -> None:
            self.places[job.id] = place.position
            await super().requeued(job, place)

    reporter = PlaceRecorder()
    bot = await bot_process(valkey.url, reporter)
    try:
        job = await submit(bot, 1, 1)
        stream = keys.stream(job.render.model)
        await bot.store.take("w0", await bot.store.read("w0", [stream], 1, None))
        assert await bot.store.requeue(job.id)
        await until(lambda: "requeued" in reporter.calls[job.id], "the job shown waiting again")
    finally:
        await close(bot)
    assert reporter.places[job.id] == 1 and "restarting" not in reporter.calls[job.id]


async def test_jobs_go_to_the_worker_that_has_their_model_loaded(valkey, monkeypatch):
    """Two workers, one with 1.4 loaded, one with 1.5: each model's jobs go to its worker."""
    reads = defaultdict(list)  # worker name → the streams of each of its reads, in order
    read = RedisJobStore.read

    async def recorded_read(self, consumer, streams, count, block_ms):
        reads[consumer].append(list(streams))
        return await read(self, consumer, streams, count, block_ms)

    monkeypatch.setattr(RedisJobStore, "read", recorded_read)
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    has_14, has_15 = TrackingRenderer(("1.4",)), TrackingRenderer(("1.5",))
    async with running_workers(valkey.url, [has_14, has_15]):
        # A worker has learnt the other's model once it reads without that model's stream;
        # its reads come one after the other, so its first (on every stream, from before it
        # knew) has ended by then.
        def learnt(worker: str, other_model: str) -> bool:
            return any(keys.stream(other_model) not in streams for streams in reads[worker])

        await until(lambda: learnt("test-worker-0", "1.5") and learnt("test-worker-1", "1.4"),
                    "each worker reads without the stream of the other's model")
        for user in range(12):
            await submit(bot, user, user, model=("1.4", "1.5")[user % 2])
        await reporter.wait_ended(12)
    await close(bot)
    assert {j.model for j in has_14.rendered} == {"1.4"} and len(has_14.rendered) == 6
    assert {j.model for j in has_15.rendered} == {"1.5"} and len(has_15.rendered) == 6


class WedgingRenderer(TrackingRenderer):
    """Renders every batch except one holding the poisoned job: that render never returns
    and never looks at its stop flag (a wedged CUDA call), until the test ends."""

    def __init__(self, poison: RenderJob, released: threading.Event):
        super().__init__()
        self.poison = poison
        self.released = released
        self.batches: list[list[RenderJob]] = []

    def render(self, jobs, on_pass=None, should_stop=None):
        self.batches.append(list(jobs))
        if self.poison in jobs:
            self.released.wait()
            raise RuntimeError("the wedged render was let go at the end of the test")
        return super().render(jobs, on_pass=on_pass, should_stop=should_stop)


async def test_a_wedged_batch_runs_again_job_by_job_and_only_the_wedging_job_is_reported(
        valkey, monkeypatch):
    """A batch of four wedges its worker's engine: the worker hands the jobs back, marked to
    run alone, and restarts; after it they run one by one, three finish, and only the job
    that wedges the engine on its own is reported (the whole batch was)."""
    from placebot.jobs import watchdog

    monkeypatch.setattr(watchdog, "STUCK_GRACE_S", 0.5)
    released = threading.Event()
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    renderers: list[WedgingRenderer] = []
    try:
        jobs = [await submit(bot, user, seed=user) for user in range(4)]
        poisoned = jobs[2]
        while len(reporter.endings) < len(jobs):  # each worker that wedges is restarted
            renderers.append(WedgingRenderer(poisoned.render, released))
            async with running_workers(valkey.url, renderers[-1:], job_timeout_s=1.0) \
                    as [worker]:
                ended = asyncio.ensure_future(reporter.wait_ended(len(jobs)))
                await asyncio.wait([worker, ended], return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
    finally:
        released.set()
        await close(bot)
    assert renderers[0].batches == [[job.render for job in jobs]]
    assert all(len(batch) == 1 for r in renderers[1:] for batch in r.batches)
    assert reporter.endings[poisoned.id] == ["failed"]
    assert "stopped responding" in reporter.errors[poisoned.id]
    assert all(reporter.endings[job.id] == ["finished"] for job in jobs if job is not poisoned)


class BrokenModels(ModelStoreFacts):
    """A worker's models, of which `broken` fail to load (a corrupt download, a full disk)."""

    def __init__(self, loaded: list[str], broken: tuple[str, ...]):
        super().__init__(loaded)
        self.broken = broken
        self.tries = 0

    def get(self, key: str) -> str:
        if key in self.broken:
            self.tries += 1
            raise ModelLoadError(key, f"/models/{key}", "the weights are corrupt")
        return super().get(key)


def broken_renderer(*broken: str, loaded: tuple[str, ...] = ()) -> TrackingRenderer:
    renderer = TrackingRenderer(loaded)
    renderer.store = BrokenModels(list(loaded), broken)
    return renderer


async def test_a_worker_that_cannot_load_a_model_leaves_its_jobs_to_one_that_can(valkey):
    """One worker cannot load SD 1.5, the other can: every 1.5 job is rendered by the other
    and none fails (3-4 of 6 failed); the failing worker says so in its facts, which
    /place_status shows."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    broken, able = broken_renderer("1.5"), TrackingRenderer(("1.4",))
    try:
        async with running_workers(valkey.url, [broken, able]):
            await until_both_beat(bot.store)
            jobs = [await submit(bot, user, user, model="1.5") for user in range(6)]
            await reporter.wait_ended(6)
            facts = {w["name"]: w for w in await bot.store.workers()}
    finally:
        await close(bot)
    assert all(reporter.endings[job.id] == ["finished"] for job in jobs)
    assert len(able.rendered) == 6 and broken.rendered == [] and broken.store.tries >= 1
    assert facts["test-worker-0"]["cannot_load"] == ["1.5"]
    assert facts["test-worker-1"]["cannot_load"] == []


async def test_a_job_fails_for_its_model_only_when_no_worker_can_load_it(valkey):
    """Neither worker can load SD 1.5: its job fails, once, with the reason users read for
    a model that cannot be loaded."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    try:
        async with running_workers(valkey.url, [broken_renderer("1.5"),
                                                broken_renderer("1.5")]):
            await until_both_beat(bot.store)
            job = await submit(bot, 1, 1, model="1.5")
            await reporter.wait_ended(1)
    finally:
        await close(bot)
    assert reporter.endings[job.id] == ["failed"]
    assert "could not be loaded" in reporter.errors[job.id]


async def until_both_beat(store) -> None:
    """Until two workers are on the list (each knows of the other at its next beat)."""
    await until_listed(store, 2)


async def until_listed(store, workers: int) -> None:
    """Until that many workers are on the list (each beats once it waits for jobs)."""

    async def listed() -> None:
        while True:
            if len(await store.workers()) >= workers:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(listed(), PATIENCE_S)


class BatchSizes(TrackingRenderer):
    """Notes the size of each batch it renders."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def render(self, jobs, on_pass=None, should_stop=None):
        self.sizes.append(len(jobs))
        return super().render(jobs, on_pass=on_pass, should_stop=should_stop)


async def test_a_burst_of_jobs_is_taken_as_full_batches_and_each_batch_timed(valkey):
    """The first job of a burst wakes the waiting worker; the rest land while it gathers:
    it renders one batch of four (it rendered a batch of one, then one of three), and keeps
    the batch's moments in Redis, in order."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    renderer = BatchSizes()
    gathering = dataclasses.replace(TEST_TIMINGS, batch_gather_s=1.0)  # a busy machine's burst
    try:
        async with running_workers(valkey.url, [renderer], timings=gathering, max_batch=4):
            first = await submit(bot, 0, 0)
            await until_read(bot.store, first)
            for user in range(1, 4):
                await submit(bot, user, user)
            await reporter.wait_ended(4)
            await until_timed(bot.store, 1)
        [moments] = await bot.store.batch_timelines()
    finally:
        await close(bot)
    assert renderer.sizes == [4]
    assert len(moments["jobs"]) == 4 and moments["jobs"][0] == first.id
    assert moments["read"] <= moments["taken"] <= moments["render_start"] \
        <= moments["render_end"] <= min(moments["stored"].values())


async def until_read(store, job: Job) -> None:
    """Until a worker has read the job's entry (it is pending in the workers' group)."""

    async def read() -> None:
        while True:
            pending = await store.redis.xpending(keys.stream(job.render.model),
                                                 keys.WORKER_GROUP)
            if pending["pending"] >= 1:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(read(), PATIENCE_S)


async def until_timed(store, batches: int) -> None:
    async def timed() -> None:
        while True:
            if len(await store.batch_timelines()) >= batches:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(timed(), PATIENCE_S)


class SteadyRenderer(TrackingRenderer):
    """Each batch takes `seconds` (a GPU's steady work), then renders as the fast one."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def render(self, jobs, on_pass=None, should_stop=None):
        time.sleep(self.seconds)
        return super().render(jobs, on_pass=on_pass, should_stop=should_stop)


async def test_a_worker_reads_its_next_batch_while_the_last_renders(valkey):
    """Three jobs waiting, batches of one: from the second batch on (once a batch's time is
    known), the next batch is read before the render ends, so the GPU does not wait for the
    queue's round trips (it sat idle between batches)."""
    reporter = RecordingReporter()
    bot = await bot_process(valkey.url, reporter, user_max=1)
    try:
        for user in range(3):
            await submit(bot, user, user)
        async with running_workers(valkey.url, [SteadyRenderer(1.0)], max_batch=1):
            await reporter.wait_ended(3)
            await until_timed(bot.store, 3)
        moments = sorted(await bot.store.batch_timelines(), key=lambda m: m["taken"])
    finally:
        await close(bot)
    assert moments[2]["read"] < moments[1]["render_end"]
    assert moments[2]["render_start"] >= moments[1]["render_end"]
