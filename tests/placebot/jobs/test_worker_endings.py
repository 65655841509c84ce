"""Every way out of the worker goes through Worker._end, exactly once per job taken, and every
ending the reporter hears (finished, failed, cancelled, restarting) is told from inside it."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar

import pytest

from pipeline.errors import ModelLoadError, PipelineError
from placebot.jobs.jobqueue import JobQueue
from placebot.jobs.journal import Journal
from placebot.jobs.outcome import AFTER_STUCK, HANDED_BACK, SHUTDOWN, Cancelled, Failed, Finished
from placebot.jobs.watchdog import EngineStuck
from placebot.jobs.worker import JobTimeout, Worker
from tests.placebot.jobs.test_worker import StubRenderer, _job
from tests.support.waiting import until

# The job whose _end is running: a task started inside it (an ending told in the background)
# inherits it, so a report made anywhere else reads None.
ENDING_OF: ContextVar[str | None] = ContextVar("ending_of", default=None)
TOLD = ("finished", "failed", "cancelled", "restarting")


class EndingsReporter:
    """Records each ending told, with the job whose _end it came from."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, str | None]] = []  # (kind, job id, told in _end of)
        self.rendering = asyncio.Event()

    def _tell(self, kind: str, job) -> None:
        self.told.append((kind, job.id, ENDING_OF.get()))

    async def loading(self, jobs) -> None:
        self.rendering.set()

    async def started(self, jobs) -> None:
        self.rendering.set()

    async def progress(self, job, pass_number, frames) -> None:
        return None

    async def finished(self, job, result) -> None:
        self._tell("finished", job)

    async def failed(self, job, error) -> None:
        self._tell("failed", job)

    async def cancelled(self, job) -> None:
        self._tell("cancelled", job)

    async def restarting(self, job) -> None:
        self._tell("restarting", job)

    async def queue_moved(self, waiting) -> None:
        return None


class ElsewhereQueue(JobQueue):
    """A source whose jobs another worker may load (as the Redis queue's may)."""

    async def cannot_load(self, jobs, error) -> bool:
        return True


def spy_on_end(worker: Worker) -> list:
    """Every _end call, as (job id, outcome); the job's id is the ENDING_OF while it runs."""
    ends: list = []
    original = worker._end

    async def end(job, outcome) -> None:
        ends.append((job.id, outcome))
        token = ENDING_OF.set(job.id)
        try:
            await original(job, outcome)
        finally:
            ENDING_OF.reset(token)

    worker._end = end
    return ends


def break_on_seed_2(jobs) -> None:
    if any(job.seed == 2 for job in jobs):
        raise ValueError("malformed job: seed 2")


# name → (renderer effects, jobs (users), worker options, what to do once started, outcomes)
SCENARIOS = {
    "finished": ((), (1,), {}, None, [Finished]),
    "failed": ((PipelineError("no good"),), (1,), {}, None, [Failed]),
    "a failed batch, retried job by job": (
        (break_on_seed_2,) * 4, (1, 2, 3), {"max_batch": 4}, None, [Finished, Failed, Finished]),
    "cancelled before it ran": ((), (1,), {}, "cancel first", [Cancelled]),
    "cancelled while rendering": (("slow",), (1,), {}, "cancel", [Cancelled]),
    "past its timeout": (("slow",), (1,), {"job_timeout_s": 0.2}, None, [JobTimeout]),
    "interrupted by a shutdown": (("slow",), (1, 2), {"max_batch": 2}, "stop", [SHUTDOWN] * 2),
    "its model loads elsewhere": (
        (ModelLoadError("1.4", "some/repo", "OSError: disk full"),), (1,),
        {"queue": ElsewhereQueue}, None, [HANDED_BACK]),
    "a wedged engine, alone": ("wedge", (1,), {"max_batch": 1}, None, [EngineStuck]),
    "a wedged engine, a batch": ("wedge", (1, 2), {"max_batch": 2}, None, [AFTER_STUCK] * 2),
}


def _matches(outcome, expected) -> bool:
    if isinstance(expected, type) and issubclass(expected, Exception):
        return isinstance(outcome, Failed) and isinstance(outcome.error, expected)
    if isinstance(expected, type):
        return isinstance(outcome, expected)
    return outcome == expected


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_job_taken_ends_once_through_end_and_is_told_from_there(scenario):
    """Each job taken gets exactly one _end, with the outcome its path calls for, and the one
    ending its user hears (none for a job handed back untold) comes from that _end."""
    effects, users, options, action, expected = SCENARIOS[scenario]
    wedged = threading.Event()
    if effects == "wedge":
        effects = (lambda jobs: wedged.wait(),)
        options = {**options, "job_timeout_s": 0.2, "stuck_grace_s": 0.2,
                   "journal": Journal(":memory:"), "on_stuck": lambda error: None}
    options = dict(options)
    queue = options.pop("queue", JobQueue)(max_size=10, user_max=5)
    reporter = EndingsReporter()
    worker = Worker(queue, StubRenderer(*effects), reporter, **options)
    ends = spy_on_end(worker)
    jobs = [_job(user) for user in users]
    for job in jobs:
        queue.submit(job)
    if action == "cancel first":
        jobs[0].request_cancel("by its user")  # still waiting: the worker finds it so
    task = worker.start()
    try:
        if action == "cancel":
            await asyncio.wait_for(reporter.rendering.wait(), 30)
            queue.cancel(jobs[0], "by its user")
        elif action == "stop":
            await asyncio.wait_for(reporter.rendering.wait(), 30)
            await worker.stop(grace_s=0.0)
        await until(lambda: len(ends) >= len(jobs), "every job taken has ended")
        await worker.settled(30)
        told_count = sum(outcome != HANDED_BACK for _job_id, outcome in ends)
        await until(lambda: len(reporter.told) >= told_count, "every ending has been told")
    finally:
        wedged.set()
        task.cancel()
    assert sorted(job_id for job_id, _outcome in ends) == sorted(job.id for job in jobs)
    by_job = dict(ends)
    assert all(_matches(by_job[job.id], want) for job, want in zip(jobs, expected, strict=True))
    assert all(told_in == job_id for _kind, job_id, told_in in reporter.told)
    for job in jobs:
        told = [kind for kind, job_id, _in in reporter.told if job_id == job.id]
        assert len(told) == (0 if by_job[job.id] == HANDED_BACK else 1)
        assert set(told) <= set(TOLD)
