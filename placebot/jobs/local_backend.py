"""The JobBackend that runs in the bot's own process: an in-memory JobQueue, a SQLite Journal
that keeps accepted jobs over restarts, and one Worker rendering on this machine's device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError
from pipeline.params import RenderJob
from placebot import texts
from placebot.jobs.backend import (
    CANCELLED_BY_USER,
    CancelOutcome,
    DuplicateInteraction,
    QueueStatus,
    Reporter,
    Reservation,
    UserLimits,
    tell_not_queued,
)
from placebot.jobs.jobqueue import (
    CooldownActive,
    DeliveryRef,
    Job,
    JobQueue,
    JobState,
    QueueRefusal,
    new_job_id,
)
from placebot.jobs.journal import MAX_TRIES, Journal, JournalEntry
from placebot.jobs.stored_job import rebuild_job
from placebot.jobs.worker import Worker

if TYPE_CHECKING:  # the engine imports torch; only its type is needed here
    pass

log = logging.getLogger(__name__)

RESTART_NOTICE_S = 2.0  # the waiting users' notices share this, inside Docker's 10 s
MAX_COOLDOWN_S = 86400.0  # the longest cooldown: PLACE_USER_COOLDOWN's bound, a server's too
FORGET_ACCEPTANCES_PAST = 10_000  # users remembered before the old ones are dropped
ADMITTED_KEPT = 10_000  # interaction ids remembered (a duplicate comes within seconds)


class JobNotKept(QueueRefusal):
    """The journal could not keep an accepted job (the data folder is full or broken): it is
    refused, as the contract says of a job a backend cannot keep."""

    def __init__(self):
        super().__init__(texts.JOB_NOT_KEPT)


class LocalBackend:
    """JobBackend (placebot.jobs.backend) in this process. The journal is written in a thread."""

    def __init__(self, queue: JobQueue, worker: Worker, journal: Journal, reporter: Reporter,
                 *, user_cooldown_s: float = 0.0):
        self.queue = queue
        self.worker = worker
        self.journal = journal
        self.reporter = reporter
        self.user_cooldown_s = user_cooldown_s
        self._last_accepted: dict[int, float] = {}
        self._accepted_before: dict[int, float | None] = {}  # restored if a reservation goes
        self._kept: set[asyncio.Task] = set()  # deliveries of results kept over a restart
        # the interactions admitted lately, so that one delivered twice is admitted once
        self._admitted: OrderedDict[str, None] = OrderedDict()

    # ----- admission
    async def reserve(self, user_id: int, limits: UserLimits | None = None,
                      key: str | None = None,
                      delivery: DeliveryRef | None = None) -> Reservation:
        """No await before the place is taken: the checks and the place are one step. The
        delivery is journalled with the reservation (a failure to is logged: only the notice
        after a restart in the next moments depends on it)."""
        if key is not None:
            if key in self._admitted:
                raise DuplicateInteraction(key)
            self._admitted[key] = None
            while len(self._admitted) > ADMITTED_KEPT:
                self._admitted.popitem(last=False)
        cooldown_s = self.user_cooldown_s if limits is None else limits.cooldown_s
        self._check_cooldown(user_id, cooldown_s)
        self.queue.reserve(user_id, None if limits is None else limits.user_max)
        # The cooldown runs from now: a /place in the same moment waits. Noted whatever this
        # job's cooldown, since a server's may be longer than the owner's.
        self._forget_old_acceptances()
        self._accepted_before[user_id] = self._last_accepted.get(user_id)
        self._last_accepted[user_id] = time.monotonic()
        reservation = Reservation(user_id, new_job_id())
        if delivery is not None:
            try:
                await asyncio.to_thread(self.journal.hold, reservation.job_id, user_id,
                                        delivery)
            except Exception:
                log.exception("journal: could not hold the reservation of job %s",
                              reservation.job_id)
        return reservation

    def _forget_old_acceptances(self) -> None:
        """Past the longest cooldown an acceptance matters no more: keep the record small."""
        if len(self._last_accepted) < FORGET_ACCEPTANCES_PAST:
            return
        oldest = time.monotonic() - MAX_COOLDOWN_S
        for user_id in [u for u, at in self._last_accepted.items() if at < oldest]:
            del self._last_accepted[user_id]

    async def release(self, reservation: Reservation) -> None:
        user_id = reservation.user_id
        if reservation.job_id:
            try:
                await asyncio.to_thread(self.journal.drop_held, reservation.job_id)
            except Exception:
                log.exception("journal: could not drop the reservation of job %s",
                              reservation.job_id)
        self.queue.release(user_id)
        if user_id in self._accepted_before:  # the job never came: its cooldown goes too
            previous = self._accepted_before.pop(user_id)
            if previous is None:
                self._last_accepted.pop(user_id, None)
            else:
                self._last_accepted[user_id] = previous

    async def submit(self, reservation: Reservation, render: RenderJob,
                     delivery: DeliveryRef) -> Job:
        user_id = reservation.user_id
        job = Job(user_id=user_id, render=render, delivery=delivery, id=reservation.job_id)
        try:  # written down before the user is told: a restart from here on loses nothing
            await asyncio.to_thread(self.journal.add, job.id, user_id, render.to_dict(),
                                    delivery)
        except Exception as exc:  # a full disk, say: a job it cannot keep is not accepted
            log.exception("journal: could not keep job %s of user %s", job.id, user_id)
            await self.release(reservation)  # its place and the cooldown it started
            raise JobNotKept() from exc
        except BaseException:
            await self.release(reservation)
            raise
        self.queue.submit(job, reserved=True)
        self._accepted_before.pop(user_id, None)
        log.info("job %s queued for user %s: %s", job.id, user_id, render)
        await self.reporter.acknowledge(job, self.worker.place(job))
        return job

    def _check_cooldown(self, user_id: int, cooldown_s: float) -> None:
        last = self._last_accepted.get(user_id)
        if cooldown_s and last is not None:
            left = cooldown_s - (time.monotonic() - last)
            if left > 0:
                raise CooldownActive(left)

    # ----- a job's user acting on it
    async def cancel(self, job_id: str, user_id: int) -> CancelOutcome:
        job = self.queue.find(job_id)
        if job is None or job.user_id != user_id:  # gone, or a forged id
            return CancelOutcome.NOT_FOUND
        self.queue.cancel(job, CANCELLED_BY_USER)
        if job.state is not JobState.CANCELLED:
            return CancelOutcome.STOPPING  # the worker stops it and reports it
        # It was waiting, so the worker will never see it: journalled first, since a restart
        # must never render a cancelled job, then its user and the queue behind it are told.
        await asyncio.to_thread(self.journal.mark_cancelled, job.id)
        await self.reporter.cancelled(job)
        await self.worker.announce_queue_moved()
        return CancelOutcome.REMOVED

    async def status(self) -> QueueStatus:
        store = self.worker.renderer.store.describe()
        return QueueStatus(
            waiting=len(self.queue), running=len(self.queue.running),
            average_job_s=self.worker.timer.average,
            loaded_models=tuple(store["loaded"]), device=store["device"],
            vram_mode=store["vram_mode"],
        )

    # ----- the process's life
    async def start(self) -> None:
        await self.recover()
        self.worker.start()

    async def recover(self) -> int:
        """Queue the jobs the journal holds from before a restart; report those given up on.
        A row that cannot be decoded is skipped (the journal logs it and marks it failed), so
        that one bad row cannot stop the bot from starting."""
        recovery = await asyncio.to_thread(self.journal.recover, _job_of)
        for job in recovery.retry:
            if self.reporter.holds_result(job):  # rendered, but Discord never had it
                task = asyncio.create_task(self._deliver_kept(job))
                self._kept.add(task)
                task.add_done_callback(self._kept.discard)
            else:
                self.queue.restore(job)
        for job in recovery.give_up:
            log.error("giving up on job %s: the bot stopped %d times while rendering it",
                      job.id, MAX_TRIES)
            error = PipelineError(texts.DROPPED_LOCAL.format(n=MAX_TRIES))
            try:
                await self.reporter.failed(job, error)
            except Exception:
                log.exception("could not tell user %s that job %s was dropped",
                              job.user_id, job.id)
        for job_id, user_id, context in recovery.unqueued:  # in the background, as kept results
            log.warning("job %s was reserved but never queued before the restart; telling "
                        "user %s", job_id, user_id)
            task = asyncio.create_task(tell_not_queued(self.reporter, job_id, user_id, context))
            self._kept.add(task)
            task.add_done_callback(self._kept.discard)
        if recovery.retry or recovery.give_up:
            log.info("recovered %d job(s) from the journal, gave up on %d",
                     len(recovery.retry), len(recovery.give_up))
        return len(recovery.retry)

    async def _deliver_kept(self, job: Job) -> None:
        """A result kept from before the restart: delivered, not rendered again. In the
        background, so that an outage of Discord cannot hold up the start or the queue."""
        job.state = JobState.DONE
        try:
            await self.reporter.deliver_kept(job)
        except Exception as exc:
            log.exception("could not deliver the kept result of job %s", job.id)
            await asyncio.to_thread(self.journal.mark_failed, job.id, str(exc))
            try:
                await self.reporter.failed(job, exc)
            except Exception:
                log.exception("could not tell user %s that job %s failed", job.user_id, job.id)
            return
        await asyncio.to_thread(self.journal.mark_done, job.id)

    async def shutdown(self, grace_s: float, notify_s: float = RESTART_NOTICE_S) -> None:
        """Accept nothing new, tell waiting users their job is kept, stop the worker, close
        the journal.

        The worker stops taking jobs before anyone is told, and the notices go out together
        under their own deadline, so that the whole stop fits Docker's 10 seconds."""
        try:
            await self._stop(grace_s, notify_s)
        finally:
            kept = list(self._kept)
            for task in kept:  # still kept: the next start delivers them
                task.cancel()
            await asyncio.gather(*kept, return_exceptions=True)
            self.journal.close()

    async def _stop(self, grace_s: float, notify_s: float) -> None:
        self.worker.stop_taking_jobs()
        waiting = self.queue.close()
        notices = [asyncio.ensure_future(self._tell_restarting(job)) for job in waiting]
        stopping = asyncio.ensure_future(self.worker.stop(grace_s))
        if notices:
            _done, late = await asyncio.wait(notices, timeout=notify_s)
            for task in late:
                task.cancel()
        await stopping

    async def _tell_restarting(self, job: Job) -> None:
        try:
            await self.reporter.restarting(job)
        except Exception:
            log.exception("could not tell the user of job %s about the restart", job.id)


def _job_of(entry: JournalEntry) -> Job:
    # A counted try means the process ended while this job rendered: it runs alone now.
    return rebuild_job(entry.job_id, entry.user_id, entry.render, entry.context,
                       alone=entry.tries > 0)
