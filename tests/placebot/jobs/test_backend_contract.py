"""What placebot/jobs/backend.py promises, held against every JobBackend: the in-process
LocalBackend (its SQLite journal in tmp_path) and the RedisBackend (a real Valkey server and a
render worker as a task of the test's loop). Each test runs once per backend; a third backend
is written against these.

Both render on TrackingRenderer (tests/support/redis_harness.py): instant, with a gate that
holds a batch "running" for as long as a test needs. Each backend has a "side" here that
opens its processes one after another on the same storage, and says what "kept", "dies mid-
batch" and "the store is down" mean for it; a third backend needs only a side of its own.
A contract case that a backend does not keep yet is marked xfail(strict=True) for that
backend, with the reason: it turns into a failure (to be unmarked) the day the backend keeps
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from pipeline.params import RenderJob, RenderRequest
from placebot.discord_side.delivery import Delivery
from placebot.distributed.backend import RedisBackend
from placebot.distributed.connection import connect
from placebot.distributed.store import RedisJobStore
from placebot.jobs.backend import CancelOutcome, DuplicateInteraction, JobBackend, QueuePlace
from placebot.jobs.jobqueue import (
    CooldownActive,
    DeliveryRef,
    Job,
    JobQueue,
    QueueFull,
    QueueRefusal,
    UserLimitReached,
)
from placebot.jobs.journal import Journal
from placebot.jobs.local_backend import LocalBackend
from placebot.jobs.worker import Worker
from placebot.settings import Settings
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import TEST_TIMINGS, TrackingRenderer, running_workers
from tests.support.valkey import ValkeyProcess
from tests.support.waiting import until

ENDINGS = ("finished", "failed", "cancelled")
JOURNAL_WRITES = ("add", "mark_taken", "mark_returned", "mark_done", "mark_failed",
                  "mark_cancelled")


def render(seed: int) -> RenderJob:
    request = RenderRequest(model="1.4", steps=4, strength=0.5, recursions=1)
    return request.resolve(random.Random(seed))


def delivery(user_id: int) -> DeliveryRef:
    return Delivery(user_id=user_id, channel_id=3000, guild_id=None,
                    created_at=time.time()).to_dict()


async def place(backend: JobBackend, user_id: int, seed: int = 1) -> Job:
    """A /place as the Discord side makes it: reserve, then submit."""
    reservation = await backend.reserve(user_id)
    return await backend.submit(reservation, render(seed), delivery(user_id))


class ContractReporter:
    """Every Reporter call, per job id, kept across restarts (one reporter for every backend
    a test opens), so that a job's endings are counted over its whole life."""

    def __init__(self) -> None:
        self.calls: dict[str, list[str]] = defaultdict(list)
        self.on_acknowledge: Callable[[Job], Awaitable[None]] | None = None
        self._changed = asyncio.Event()

    def _record(self, job: Job, kind: str) -> None:
        self.calls[job.id].append(kind)
        self._changed.set()

    def endings(self, job: Job) -> list[str]:
        return [kind for kind in self.calls[job.id] if kind in ENDINGS]

    async def wait_ended(self, *jobs: Job) -> None:
        async def ended() -> None:
            while not all(self.endings(job) for job in jobs):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(ended(), PATIENCE_S)

    async def acknowledge(self, job: Job, place: QueuePlace) -> None:
        if self.on_acknowledge is not None:
            await self.on_acknowledge(job)
        self._record(job, "acknowledge")

    def holds_result(self, job: Job) -> bool:
        return False  # this delivery side hands over every result at once

    async def deliver_kept(self, job: Job) -> None:
        raise AssertionError("no result is held, so none is delivered kept")

    async def loading(self, jobs) -> None:
        for job in jobs:
            self._record(job, "loading")

    async def started(self, jobs) -> None:
        for job in jobs:
            self._record(job, "started")

    async def progress(self, job, pass_number, frames) -> None:
        self._record(job, "progress")

    async def finished(self, job, result) -> None:
        self._record(job, "finished")

    async def failed(self, job, error) -> None:
        self._record(job, "failed")

    async def cancelled(self, job) -> None:
        self._record(job, "cancelled")

    async def restarting(self, job) -> None:
        self._record(job, "restarting")

    async def queue_moved(self, waiting) -> None:
        return None

    async def requeued(self, job, place) -> None:
        return None


class DyingRenderer(TrackingRenderer):
    """Lets renders through its gate (closed at first), but holds the second batch until
    kill(): then that render ends without a result, as its process's death would end it."""

    def __init__(self) -> None:
        super().__init__()
        self.close()
        self.batches: list[int] = []
        self._killed = threading.Event()

    def kill(self) -> None:
        self._killed.set()

    def render(self, jobs, on_pass=None, should_stop=None):
        self.batches.append(len(jobs))
        if len(self.batches) == 1:
            return super().render(jobs, on_pass=on_pass, should_stop=None)
        self.entered.set()
        self._killed.wait(PATIENCE_S)
        raise RuntimeError("the process rendering this batch died")


class LocalSide:
    """LocalBackend processes, one after another, on one journal file and one renderer."""

    name = "local"

    def __init__(self, tmp_path) -> None:
        self.journal_path = tmp_path / "data" / "jobs.sqlite3"
        self.renderer = TrackingRenderer()

    @contextlib.asynccontextmanager
    async def serving(self):
        yield self  # the render worker lives inside each backend

    async def open(self, reporter, *, queue_max: int = 20, user_max: int = 5,
                   cooldown_s: float = 0.0, renderer=None) -> JobBackend:
        settings = replace(Settings(discord_token="", device="cpu"), max_batch=4,
                           queue_max=queue_max, user_max=user_max, user_cooldown_s=cooldown_s)
        journal = Journal(self.journal_path)
        queue = JobQueue(settings.queue_max, settings.user_max)
        worker = Worker(queue, renderer or self.renderer, reporter,
                        max_batch=settings.max_batch, job_timeout_s=settings.job_timeout_s,
                        journal=journal)
        backend = LocalBackend(queue, worker, journal, reporter,
                               user_cooldown_s=settings.user_cooldown_s)
        await backend.start()
        return backend

    async def die_mid_batch(self, reporter, users) -> tuple[list[Job], JobBackend]:
        """A process renders one job, then takes the users' jobs as one batch and dies in its
        render: its worker stops where it is, nothing more is written or said. Returns the
        batch's jobs and the next process, started on the same journal."""
        dying = DyingRenderer()
        backend = await self.open(reporter, renderer=dying)
        first = await place(backend, 99)
        assert await asyncio.to_thread(dying.entered.wait, PATIENCE_S)
        jobs = [await place(backend, user, seed=user) for user in users]
        dying.entered.clear()
        dying.open()  # the first job goes through; the batch behind it is held
        await reporter.wait_ended(first)
        assert await asyncio.to_thread(dying.entered.wait, PATIENCE_S)
        assert dying.batches == [1, len(jobs)]
        worker = backend.worker.task
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        dying.kill()
        backend.journal.close()
        return jobs, await self.open(reporter)

    @contextlib.asynccontextmanager
    async def store_outage(self, backend):
        """The journal cannot be written (a full disk)."""

        def full_disk(*args) -> None:
            raise OSError(28, "No space left on device")

        for write in JOURNAL_WRITES:
            setattr(backend.journal, write, full_disk)
        try:
            yield
        finally:
            for write in JOURNAL_WRITES:
                delattr(backend.journal, write)

    async def kept(self, job_id: str) -> bool:
        """A restart now would bring the job back: the journal file, read afresh, has it."""
        journal = await asyncio.to_thread(Journal, self.journal_path)
        try:
            return await asyncio.to_thread(journal.state, job_id) == "queued"
        finally:
            journal.close()


class RedisSide:
    """RedisBackend bot processes, one after another, on one Valkey server, with one render
    worker that outlives them (as a GPU worker outlives a bot's restart)."""

    name = "redis"

    def __init__(self, valkey: ValkeyProcess) -> None:
        self.valkey = valkey
        self.url = valkey.url
        self.renderer = TrackingRenderer()
        self.victim: asyncio.subprocess.Process | None = None

    @contextlib.asynccontextmanager
    async def serving(self):
        async with running_workers(self.url, [self.renderer]):
            yield self

    async def open(self, reporter, *, queue_max: int = 20, user_max: int = 5,
                   cooldown_s: float = 0.0) -> JobBackend:
        backend = RedisBackend(RedisJobStore(connect(self.url), TEST_TIMINGS), reporter,
                               user_max=user_max, queue_max=queue_max,
                               user_cooldown_s=cooldown_s)
        await backend.start()
        return backend

    async def kept(self, job_id: str) -> bool:
        """A restart now would bring the job back: Redis holds it, queued or running."""
        return await self._state(job_id) in ("queued", "running")

    async def _state(self, job_id: str) -> str:
        client = connect(self.url)
        try:
            [state] = await RedisJobStore(client, TEST_TIMINGS).states([job_id])
        finally:
            await client.aclose()
        return state

    async def die_mid_batch(self, reporter, users) -> tuple[list[Job], JobBackend]:
        """A render worker process takes the users' jobs as one batch and is killed (SIGKILL)
        in its render. Returns the batch's jobs and the bot, which goes on."""
        backend = await self.open(reporter)
        jobs = [await place(backend, user, seed=user) for user in users]
        self.victim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.hanging_worker", self.url,
            stdout=asyncio.subprocess.PIPE)
        assert self.victim.stdout is not None
        line = await asyncio.wait_for(self.victim.stdout.readline(), PATIENCE_S)
        assert line.strip() == b"rendering"
        assert [await self._state(job.id) for job in jobs] == ["running"] * len(jobs)
        self.victim.kill()
        await self.victim.wait()
        return jobs, backend

    @contextlib.asynccontextmanager
    async def store_outage(self, backend):
        """The Redis server is down (stopped; started again, same port and AOF, after)."""
        self.valkey.stop()
        try:
            yield
        finally:
            self.valkey.start()


@pytest.fixture(params=["local", "redis"])
async def bare_side(request, tmp_path):
    """The backend under test, with no render worker serving yet."""
    if request.param == "local":
        yield LocalSide(tmp_path)
        return
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as valkey:
        chosen = RedisSide(valkey)
        try:
            yield chosen
        finally:
            if chosen.victim is not None and chosen.victim.returncode is None:
                chosen.victim.kill()
                await chosen.victim.wait()


@pytest.fixture
async def side(bare_side):
    """The backend under test, its render worker serving for the whole test."""
    async with bare_side.serving():
        yield bare_side


@pytest.fixture
def reporter():
    return ContractReporter()


@contextlib.asynccontextmanager
async def backend_of(side, reporter, **limits):
    backend = await side.open(reporter, **limits)
    try:
        yield backend
    finally:
        side.renderer.open()
        await backend.shutdown(2.0)


async def until_running(side) -> None:
    """Until a batch has entered the (gated) renderer."""
    assert await asyncio.to_thread(side.renderer.entered.wait, PATIENCE_S)


# ----- admission and its limits


async def test_the_queue_bound_counts_held_places_and_a_released_one_frees_its_own(
        side, reporter):
    """queue_max places may be held at once; the next reserve is refused with QueueFull,
    and a place given back (release) lets the next user in."""
    async with backend_of(side, reporter, queue_max=2, user_max=5) as backend:
        first = await backend.reserve(1)
        await backend.reserve(2)
        with pytest.raises(QueueFull):
            await backend.reserve(3)
        await backend.release(first)
        assert (await backend.reserve(3)).user_id == 3


async def test_a_user_at_their_limit_is_refused_until_their_job_has_left_the_queue(
        side, reporter):
    """user_max=1: a second /place of the same user is refused (UserLimitReached) while the
    first waits or runs, another user is not, and once it ended the user is admitted again."""
    side.renderer.close()
    async with backend_of(side, reporter, user_max=1) as backend:
        job = await place(backend, 7)
        with pytest.raises(UserLimitReached):
            await backend.reserve(7)
        assert (await backend.reserve(8)).user_id == 8
        side.renderer.open()
        await reporter.wait_ended(job)
        await _until_idle(backend)
        assert (await backend.reserve(7)).user_id == 7


async def _until_idle(backend: JobBackend) -> None:
    """Until status() shows no job waiting or running."""
    async def idle() -> None:
        while True:
            status = await backend.status()
            if status.waiting == 0 and status.running == 0:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(idle(), PATIENCE_S)


async def test_the_cooldown_refuses_the_users_next_job_and_a_released_place_gives_it_back(
        side, reporter):
    """With a cooldown, a user's next /place is refused (CooldownActive) after an accepted
    one, others are not; a reservation given back takes its cooldown with it."""
    async with backend_of(side, reporter, cooldown_s=600.0) as backend:
        await place(backend, 7)
        with pytest.raises(CooldownActive):
            await backend.reserve(7)
        held = await backend.reserve(9)
        await backend.release(held)
        assert (await backend.reserve(9)).user_id == 9


async def test_an_interaction_delivered_twice_is_admitted_once(side, reporter):
    """reserve() under an interaction's id a second time (the interaction reached two bot
    processes) raises DuplicateInteraction and holds nothing; another interaction of the
    same user is judged on its own."""
    async with backend_of(side, reporter, user_max=2) as backend:
        await backend.reserve(7, key="1001")
        with pytest.raises(DuplicateInteraction):
            await backend.reserve(7, key="1001")
        assert (await backend.reserve(7, key="1002")).user_id == 7
        with pytest.raises(UserLimitReached):  # two places held, not three
            await backend.reserve(7, key="1003")


# ----- durable before acknowledged


async def test_a_job_is_kept_over_a_restart_before_its_user_is_told_it_was_accepted(
        side, reporter):
    """When acknowledge() is called, the job is already stored where the next process finds
    it: a restart right after "Queued" cannot lose it."""
    kept_at_acknowledge: dict[str, bool] = {}

    async def check(job: Job) -> None:
        kept_at_acknowledge[job.id] = await side.kept(job.id)

    reporter.on_acknowledge = check
    side.renderer.close()
    async with backend_of(side, reporter) as backend:
        job = await place(backend, 7)
    assert kept_at_acknowledge == {job.id: True}


# ----- cancel


async def test_cancel_of_a_waiting_job_drops_it_with_one_cancelled_ending(side, reporter):
    """A waiting job cancelled by its user: REMOVED, its one ending is `cancelled`, it is
    never rendered; another user's cancel of it finds nothing; the running job is unharmed."""
    side.renderer.close()
    async with backend_of(side, reporter) as backend:
        running = await place(backend, 1, seed=1)
        await until_running(side)
        waiting = await place(backend, 2, seed=2)
        assert await backend.cancel(waiting.id, 1) is CancelOutcome.NOT_FOUND
        assert await backend.cancel(waiting.id, 2) is CancelOutcome.REMOVED
        await reporter.wait_ended(waiting)
        side.renderer.open()
        await reporter.wait_ended(running)
        await _until_idle(backend)
    assert reporter.endings(waiting) == ["cancelled"]
    assert reporter.endings(running) == ["finished"]
    assert waiting.render not in side.renderer.rendered
    assert "started" not in reporter.calls[waiting.id]


async def test_cancel_of_a_running_job_stops_it_with_one_cancelled_ending(side, reporter):
    """A running job cancelled by its user: STOPPING, then its one ending is `cancelled`
    (the render stops within a step, no result is delivered)."""
    side.renderer.close()
    async with backend_of(side, reporter) as backend:
        job = await place(backend, 1)
        await until_running(side)
        assert await backend.cancel(job.id, 1) is CancelOutcome.STOPPING
        await reporter.wait_ended(job)
        await _until_idle(backend)
    assert reporter.endings(job) == ["cancelled"]


@pytest.fixture
def late_cancel_poll(monkeypatch):
    """The Redis worker learns of a Cancel at its next poll of Redis: the poll is put out of
    reach, so that the render ending before the worker hears of the Cancel (which any poll
    interval allows, for a render that ends within it) happens every time. Requested before
    `side`, so the worker starts with it."""
    from placebot.distributed import worker_side

    monkeypatch.setattr(worker_side, "CANCEL_POLL_S", 3600.0)


async def test_a_running_job_answered_stopping_never_ends_finished(
        late_cancel_poll, side, reporter):
    """cancel() said STOPPING, then the render came back before it could stop (its batch
    mates went on, or it was on its last step): the job's one ending is still `cancelled`."""
    side.renderer.close()
    async with backend_of(side, reporter) as backend:
        job = await place(backend, 1)
        await until_running(side)
        assert await backend.cancel(job.id, 1) is CancelOutcome.STOPPING
        side.renderer.open()
        await reporter.wait_ended(job)
        await _until_idle(backend)
    assert reporter.endings(job) == ["cancelled"]


async def test_cancel_of_an_ended_or_unknown_job_finds_nothing(side, reporter):
    """Cancel after the job's ending, or with an id nobody issued: NOT_FOUND."""
    async with backend_of(side, reporter) as backend:
        job = await place(backend, 1)
        await reporter.wait_ended(job)
        await _until_idle(backend)
        assert await backend.cancel(job.id, 1) is CancelOutcome.NOT_FOUND
        assert await backend.cancel("0123456789ab", 1) is CancelOutcome.NOT_FOUND
    assert reporter.endings(job) == ["finished"]


# ----- the process's life


async def test_jobs_kept_over_a_restart_end_once_after_it(side, reporter):
    """A running and a waiting job when the bot stops (shutdown): after the next start()
    on the same storage each has exactly one ending, `finished`."""
    side.renderer.close()
    first = await side.open(reporter)
    running = await place(first, 1, seed=1)
    await until_running(side)
    waiting = await place(first, 2, seed=2)
    await first.shutdown(0.2)
    side.renderer.open()
    async with backend_of(side, reporter):
        await reporter.wait_ended(running, waiting)
    assert reporter.endings(running) == ["finished"]
    assert reporter.endings(waiting) == ["finished"]


async def test_a_shutdown_accepts_nothing_new_and_the_next_process_admits_again(
        side, reporter):
    """After shutdown() no job is accepted by that process; the next one admits."""
    first = await side.open(reporter)
    await first.shutdown(0.2)
    with pytest.raises(QueueRefusal):
        await place(first, 1)
    async with backend_of(side, reporter) as second:
        job = await place(second, 1)
        await reporter.wait_ended(job)
    assert reporter.endings(job) == ["finished"]


async def test_every_job_of_a_busy_queue_ends_exactly_once(side, reporter):
    """Twelve jobs of four users, batched, a waiting one cancelled: each job gets exactly one
    ending, `cancelled` for that one, `finished` for the rest."""
    side.renderer.close()
    async with backend_of(side, reporter, user_max=3) as backend:
        jobs = [await place(backend, user, seed=user * 10 + n)
                for n in range(3) for user in (1, 2, 3, 4)]
        await until_running(side)
        waiting = jobs[-1]  # behind the first batch (at most 4 jobs)
        assert await backend.cancel(waiting.id, waiting.user_id) is CancelOutcome.REMOVED
        side.renderer.open()
        await reporter.wait_ended(*jobs)
        await _until_idle(backend)
    endings = {job.id: reporter.endings(job) for job in jobs}
    assert all(len(ends) == 1 for ends in endings.values()), endings
    assert endings[waiting.id] == ["cancelled"]
    assert sum(ends == ["finished"] for ends in endings.values()) == len(jobs) - 1


# ----- faults


async def test_a_batch_whose_process_died_mid_render_ends_once_per_job(bare_side, reporter):
    """The process rendering a batch of three dies in the render (no shutdown, nothing more
    said): each job of the batch still gets exactly one ending, `finished`."""
    jobs, backend = await bare_side.die_mid_batch(reporter, users=(1, 2, 3))
    try:
        async with bare_side.serving():
            await reporter.wait_ended(*jobs)
    finally:
        await backend.shutdown(2.0)
    assert [reporter.endings(job) for job in jobs] == [["finished"]] * 3


async def test_a_job_the_store_could_not_keep_is_refused_and_costs_nothing(
        side, reporter):
    """The job store fails between reserve and submit (a full disk, Redis down): the user is
    not told it was accepted, and once the store is back they are admitted at once (the
    place and the cooldown were given back), with a job that then ends once."""
    async with backend_of(side, reporter, user_max=1, cooldown_s=600.0) as backend:
        reservation = await backend.reserve(7)
        async with side.store_outage(backend):
            with contextlib.suppress(Exception):  # refused: an error or a failed job
                await backend.submit(reservation, render(1), delivery(7))
        assert [kind for calls in reporter.calls.values() for kind in calls] == []
        job = await place(backend, 7, seed=2)
        await reporter.wait_ended(job)
    assert reporter.endings(job) == ["finished"]


async def test_a_job_rendered_during_an_outage_of_the_store_ends_once(side, reporter):
    """The store goes down while a job renders and comes back later: the job ends exactly
    once, `finished`."""
    side.renderer.close()
    async with backend_of(side, reporter) as backend:
        job = await place(backend, 1)
        await until_running(side)
        async with side.store_outage(backend):
            side.renderer.open()
            await until(lambda: job.render in side.renderer.rendered, "the job rendered")
        await reporter.wait_ended(job)
        await _until_idle(backend)
    assert reporter.endings(job) == ["finished"]

