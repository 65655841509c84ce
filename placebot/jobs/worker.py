"""The single worker: takes batches from the JobQueue, renders them in a thread, reports back.

The event loop is never blocked: the render runs in asyncio.to_thread and talks back through
loop.call_soon_threadsafe. Every job taken leaves the worker through `_end`, exactly once,
with its Outcome (placebot/jobs/outcome.py): finished, failed or cancelled, each told in exactly
one reporter call; or returned to the queue (a shutdown, a wedged engine, a model another
worker may load), to be rendered after the restart or elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pipeline.errors import ModelLoadError, OutOfMemory, PipelineError, RenderCancelled
from pipeline.results import RenderResult
from placebot import texts
from placebot.jobs import watchdog
from placebot.jobs.backend import QueuePlace, WorkerReporter
from placebot.jobs.eta import JobTimer
from placebot.jobs.jobqueue import Job, JobSource, JobState
from placebot.jobs.journal import Journal
from placebot.jobs.outcome import (
    AFTER_STUCK,
    HANDED_BACK,
    SHUTDOWN,
    Cancelled,
    Failed,
    Finished,
    Outcome,
    Returned,
)
from placebot.jobs.telling import Telling, safely
from placebot.jobs.watchdog import EngineStuck, wait_for_engine
from placebot.settings import Settings

if TYPE_CHECKING:  # the engine imports torch; only its type is needed here
    from pipeline.engine import Renderer

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "shutdown"  # what should_stop() gives when the bot stops
FINAL_STATES = {Finished: JobState.DONE, Failed: JobState.FAILED, Cancelled: JobState.CANCELLED}


class JobTimeout(PipelineError):
    def __init__(self, seconds: float):
        super().__init__(texts.JOB_TIMEOUT.format(seconds=seconds))


class Worker:
    def __init__(
        self,
        queue: JobSource,
        renderer: Renderer,
        reporter: WorkerReporter,
        *,
        max_batch: int = Settings.max_batch,
        job_timeout_s: float = Settings.job_timeout_s,
        journal: Journal | None = None,
        stuck_grace_s: float | None = None,
        on_stuck: Callable[[EngineStuck], None] | None = None,
    ):
        self.queue = queue
        self.renderer = renderer
        self.reporter = reporter
        self.max_batch = max_batch
        self.job_timeout_s = job_timeout_s
        self.journal = journal
        # None: the watchdog module's grace, read when a render starts
        self.stuck_grace_s = stuck_grace_s
        # What a wedged render asks for: the bot restarts its process (placebot.jobs.watchdog).
        self.on_stuck = on_stuck
        self.timer = JobTimer()
        self._stopping = False
        self._interrupt_for_shutdown = False  # read by the render thread between steps
        self._task: asyncio.Task | None = None
        self._taken: list[Job] = []  # the batch being rendered
        # Its own thread: the default pool serves quick work (crops, journal) meanwhile, and a
        # stop need not wait for a render that cannot be interrupted (a model download).
        self._render_thread = concurrent.futures.ThreadPoolExecutor(1, "render")
        self._telling = Telling()  # progress and endings on their way to the reporter
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    def place(self, job: Job) -> QueuePlace:
        """The job's queue position and its ETA from the recent jobs' average time."""
        return QueuePlace.at(self.queue.position(job), self.timer.average)

    def waiting_places(self) -> list[tuple[Job, QueuePlace]]:
        return [(job, self.place(job)) for job in self.queue.waiting]

    async def announce_queue_moved(self) -> None:
        await safely(self.reporter.queue_moved(self.waiting_places()))

    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self.run(), name="place-worker")
        return self._task

    def stop_taking_jobs(self) -> None:
        self._stopping = True

    async def stop(self, grace_s: float, interrupt_s: float = 2.0) -> None:
        """Stop taking batches; let the running one finish (its result delivered and
        journalled) for grace_s, then interrupt it between two steps (it stays journalled).
        Endings still being told get what is left of grace_s; then they are cut (a result
        stays kept by the reporter, for the next start to deliver)."""
        self._stopping = True
        self.queue.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        try:
            await asyncio.wait_for(self.idle.wait(), grace_s)
        except TimeoutError:
            log.info("interrupting the running job for shutdown")
            self._interrupt_for_shutdown = True
            try:
                await asyncio.wait_for(self.idle.wait(), interrupt_s)
            except TimeoutError:
                log.error("the running job did not stop within %g s; leaving it", interrupt_s)
                await self._leave_running(notify_s=interrupt_s)
        await self._telling.settled(max(0.0, deadline - loop.time()))
        await self._telling.cut()
        if self._task:
            self._task.cancel()
        self._render_thread.shutdown(wait=False, cancel_futures=True)

    async def _leave_running(self, notify_s: float) -> None:
        """The running batch would not stop: its jobs stay in the journal (their try given
        back, the shutdown is not their fault) and their users are told so before we go."""
        jobs = [job for job in self._taken if job.state is JobState.RUNNING]
        endings = [asyncio.ensure_future(self._end(job, SHUTDOWN)) for job in jobs]
        if endings:
            _done, late = await asyncio.wait(endings, timeout=notify_s)
            for ending in late:
                ending.cancel()

    async def run(self) -> None:
        while not self._stopping:
            try:
                if not await self._run_next():
                    break
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any one batch's trouble
                log.exception("worker error; carrying on with the next job")
                self.idle.set()

    async def _run_next(self) -> bool:
        """Take and run one batch; False once the worker should stop. The batch is local to
        this call, so nothing of a finished job stays referenced while the worker waits."""
        batch = await self.queue.next_batch(self.max_batch)
        if self._stopping or not batch:
            for job in batch:  # still in the journal: rendered after the restart
                await self._end(job, HANDED_BACK)
            self.queue.finish(batch)
            return False
        for job in batch:
            if job.cancel_reason is not None:
                await self._end(job, Cancelled())
        live = [job for job in batch if job.cancel_reason is None]
        if live:
            # Counted before the render, as arq does: if it kills the process, the try counts
            # against this job, and only against this one.
            await self._record("taken jobs", lambda journal: journal.mark_taken(
                [job.id for job in live]))
            self.idle.clear()
            self._taken = live
            try:
                await self._run_batch(live)
            finally:
                self._taken = []
                self.idle.set()
        self.queue.finish(batch)
        await self.announce_queue_moved()
        return True

    async def _run_batch(self, jobs: list[Job]) -> None:
        try:
            await self._load_model(jobs)
            await safely(self.reporter.started(jobs))
            await self.announce_queue_moved()
            started = time.monotonic()
            results = await self._render_with_retry(jobs)
        except RenderCancelled as exc:
            for job in jobs:
                await self._end(job, self._stopped(exc.reason))
            return
        except EngineStuck as exc:
            await self._engine_stuck(jobs, exc)
            return
        except Exception as exc:
            if isinstance(exc, ModelLoadError) and await self._another_may_load(jobs, exc):
                return
            if len(jobs) > 1 and not isinstance(exc, ModelLoadError):
                # One malformed job must not fail its batch mates: each runs alone now.
                log.warning("batch %s failed (%s); retrying its jobs one by one",
                            [j.id for j in jobs], exc)
                for job in jobs:
                    await self._run_alone(job)
                return
            if not isinstance(exc, PipelineError):
                log.exception("unexpected error rendering jobs %s", [j.id for j in jobs])
            elif isinstance(exc, ModelLoadError):  # its user reads no cause: the owner does
                log.error("jobs %s failed: %s", [j.id for j in jobs], exc, exc_info=exc)
            else:
                log.warning("jobs %s failed: %s", [j.id for j in jobs], exc)
            for job in jobs:
                await self._end(job, Failed(exc))
            return
        self.timer.record((time.monotonic() - started) / len(jobs))
        for job, result in zip(jobs, results, strict=True):
            await self._end(job, Cancelled() if job.cancel_reason is not None else
                            Finished(result))

    async def _another_may_load(self, jobs: list[Job], error: ModelLoadError) -> bool:
        """A job fails for its model only when no worker can load it: where another worker
        may, the jobs wait for it (state QUEUED: finish() hands them back)."""
        try:
            kept = await self.queue.cannot_load(jobs, error)
        except Exception:
            log.exception("could not hand jobs %s on to another worker", [j.id for j in jobs])
            return False
        if kept:
            for job in jobs:
                await self._end(job, HANDED_BACK)
        return kept

    async def _run_alone(self, job: Job) -> None:
        if job.cancel_reason is not None:
            await self._end(job, Cancelled())
        elif not self._stopping:
            await self._run_batch([job])
        else:  # shutting down meanwhile: it stays in the journal for the restart
            await self._end(job, SHUTDOWN)

    async def _load_model(self, jobs: list[Job]) -> None:
        """Load the batch's model (and its NSFW checker, if a job is checked) on the engine's
        thread before the render and its timeout start: a slow first download must not count
        as a slow render."""
        renders = [job.render for job in jobs]
        if self.renderer.is_ready(renders):
            return
        await safely(self.reporter.loading(jobs))  # minutes, on a first download
        await self.announce_queue_moved()
        await wait_for_engine(self._render_thread, lambda: self.renderer.prepare(renders),
                              limit_s=watchdog.LOAD_LIMIT_S, doing="loading the model")

    async def _engine_stuck(self, jobs: list[Job], error: EngineStuck) -> None:
        """The engine's thread is lost: report its job (a batch is kept, to be retried job by
        job) and ask for a fresh engine through on_stuck (the bot restarts its process; the
        other jobs wait in the journal). Without that action the worker goes on with a fresh
        thread on the same engine."""
        log.critical("%s (jobs %s)", error, [job.id for job in jobs])
        self._render_thread.shutdown(wait=False, cancel_futures=True)
        self._render_thread = concurrent.futures.ThreadPoolExecutor(1, "render")
        kept = self.journal is not None or self.queue.keeps_returned_jobs
        if len(jobs) > 1 and kept and self.on_stuck is not None:
            # Any one of them may have wedged it. They are kept (in the journal, the try
            # counted; or handed back to the Redis queue, marked to run alone) and run one by
            # one with the fresh engine (Job.alone): only a job that wedges it on its own is
            # reported.
            await asyncio.gather(*(self._end(job, AFTER_STUCK) for job in jobs))
        else:
            for job in jobs:
                await self._end(job, Failed(error))
        if self.on_stuck is not None:  # it replaces this engine: take nothing more here
            self._stopping = True
            self.on_stuck(error)

    async def _render_with_retry(self, jobs: list[Job]) -> list[RenderResult]:
        try:
            return await self._render(jobs)
        except OutOfMemory as exc:
            store = self.renderer.store
            lower = await asyncio.to_thread(store.reload_lower, jobs[0].render.model)
            if lower is None:
                raise
            log.warning("%s; retrying once in VRAM mode %s", exc, lower)
            await self._load_model(jobs)  # the reload is not part of the timed render
            return await self._render(jobs)

    async def _render(self, jobs: list[Job]) -> list[RenderResult]:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.job_timeout_s

        def should_stop() -> str | None:
            if self._interrupt_for_shutdown:
                return SHUTDOWN_REASON
            if time.monotonic() > deadline:
                return "timeout"
            if all(job.cancel_reason is not None for job in jobs):
                return jobs[0].cancel_reason
            return None

        def on_pass(index: int, number: int, frames: list) -> None:
            job = jobs[index]
            # The last pass shows as the result; a job that ended meanwhile (given up on by
            # the watchdog, its render come back late) shows nothing more.
            if (job.cancel_reason is None and number < job.render.passes
                    and job.state is JobState.RUNNING):
                coroutine = safely(self.reporter.progress(job, number, frames))
                self._telling.progress_sent(job.id,
                                            asyncio.run_coroutine_threadsafe(coroutine, loop))

        def render():
            return self.renderer.render([job.render for job in jobs], on_pass=on_pass,
                                        should_stop=should_stop)

        grace = watchdog.STUCK_GRACE_S if self.stuck_grace_s is None else self.stuck_grace_s
        return await wait_for_engine(self._render_thread, render,
                                     limit_s=self.job_timeout_s + grace, doing="the render")

    def _stopped(self, reason: str) -> Outcome:
        """What became of a job whose render was stopped (RenderCancelled) for `reason`."""
        if reason == SHUTDOWN_REASON:
            return SHUTDOWN  # kept for the restart: its try does not count
        if reason == "timeout":
            return Failed(JobTimeout(self.job_timeout_s))
        return Cancelled()

    # ----- the one way out: recorded at once, told in the background
    async def _end(self, job: Job, outcome: Outcome) -> None:
        """The one way a job leaves the worker, once each time it is taken: its state, then
        the queue, the journal and the reporter, in that order.

        A final ending is recorded before the worker goes on, but told (a Discord upload, or
        a failure notice, retried through an outage until Discord takes it) in the
        background: the next batch renders meanwhile, so a Discord outage holds up no job
        behind it. A result is recorded done only once the reporter has it delivered (the
        reporter keeps it until then: the outbox); a stop cuts what is still being told
        (stop()). A returned job is told before the worker goes on."""
        if isinstance(outcome, Returned):
            job.state = JobState.QUEUED
            job.alone = job.alone or outcome.alone
            if outcome.give_try_back:  # the shutdown's doing, not the job's
                await self._record(f"job {job.id}", lambda journal: journal.mark_returned(
                    [job.id]))
            if outcome.tell:
                await self._telling.progress_done(job.id)
                await safely(self.reporter.restarting(job))
            return
        job.state = FINAL_STATES[type(outcome)]
        self.queue.finish([job])  # no longer counts for its user: they may ask again at once
        match outcome:
            case Finished(result):
                self._telling.in_background(self._hand_over(job, result))
            case Failed(error):
                await self._record(f"job {job.id}",
                                   lambda journal: journal.mark_failed(job.id, str(error)))
                self._telling.in_background(
                    self._tell(job, lambda: self.reporter.failed(job, error)))
            case Cancelled():
                await self._record(f"job {job.id}",
                                   lambda journal: journal.mark_cancelled(job.id))
                self._telling.in_background(self._tell(job, lambda: self.reporter.cancelled(job)))

    async def _hand_over(self, job: Job, result: RenderResult) -> None:
        await self._telling.progress_done(job.id)
        try:
            await self.reporter.finished(job, result)
        except Exception as exc:  # the result could not be delivered: the job failed
            log.exception("could not deliver the result of job %s", job.id)
            job.state = JobState.FAILED
            reason = str(exc)
            await self._record(f"job {job.id}",
                               lambda journal: journal.mark_failed(job.id, reason))
            await safely(self.reporter.failed(job, exc))
            return
        await self._record(f"job {job.id}", lambda journal: journal.mark_done(job.id))

    async def _tell(self, job: Job, ending: Callable[[], Coroutine[Any, Any, None]]) -> None:
        await self._telling.progress_done(job.id)  # its progress lands before its ending
        await safely(ending())

    async def settled(self, timeout_s: float | None = None) -> None:
        """Until every ending under way has been told (or timeout_s has passed)."""
        await self._telling.settled(timeout_s)

    async def _record(self, what: str, write: Callable[[Journal], None]) -> None:
        """Record what became of jobs. A failing write is logged; the worker goes on (a job may
        then be rendered again after a restart, which beats stopping every later job)."""
        if self.journal is None:
            return
        try:
            await asyncio.to_thread(write, self.journal)
        except Exception:
            log.exception("journal: could not record %s", what)
