"""The JobBackend (placebot/jobs/backend.py) of the distributed mode, chosen by PLACE_REDIS_URL.

The bot process only admits jobs and delivers: the jobs wait in Redis (placebot/distributed)
and render workers (`python -m placebot.gpu_worker`, one per GPU, on any machine) render them.
Any bot process can deliver any job: a job's record keeps its delivery reference, with the
interaction's webhook (application id and token), from which the Discord side rebuilds its
record of the job and edits the response (placebot/discord_side/delivery.py). A job whose token has
died
is posted in its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from pipeline.params import RenderJob
from placebot import texts
from placebot.distributed.bot_side import RedisBotQueue
from placebot.distributed.connection import REFUSED, UNREACHABLE, refused_message
from placebot.distributed.store import RedisJobStore
from placebot.jobs.backend import (
    CANCELLED_BY_USER,
    CancelOutcome,
    QueuePlace,
    QueueStatus,
    Reporter,
    Reservation,
    UserLimits,
    tell_not_queued,
)
from placebot.jobs.jobqueue import DeliveryRef, Job, JobState, QueueClosed, QueueRefusal, new_job_id
from placebot.process import StartupError

log = logging.getLogger(__name__)

POSITIONS_EVERY_S = 3.0  # waiting users' places refreshed (Discord edits are rate-limited)
CANCEL_OUTCOMES = {"cancelled": CancelOutcome.REMOVED, "stopping": CancelOutcome.STOPPING}


class QueueUnavailable(QueueRefusal):
    def __init__(self):
        super().__init__(texts.QUEUE_UNAVAILABLE)


@dataclass(frozen=True)
class RedisReservation(Reservation):
    position: int = 0  # the place the job will take, as of the reservation


class RedisBackend:
    """JobBackend on Redis for one bot process; several may share one Redis."""

    def __init__(self, store: RedisJobStore, reporter: Reporter, *, user_max: int,
                 queue_max: int, user_cooldown_s: float = 0.0):
        self.store = store
        self.reporter = reporter
        self.user_max = user_max
        self.queue_max = queue_max
        self.queue = RedisBotQueue(store, reporter, user_max=user_max, queue_max=queue_max,
                                   cooldown_s=user_cooldown_s, place_of=self._place)
        self._workers: list[dict] = []
        self._positions: asyncio.Task | None = None
        self._released: list[RedisReservation] = []  # given back once Redis answers
        self._telling: set[asyncio.Task] = set()  # users told their job was never queued
        # Set by shutdown: redis-py would connect again at the next command, so admission
        # itself must say no (as the local queue does once closed).
        self._closed = False

    # ----- admission
    async def reserve(self, user_id: int, limits: UserLimits | None = None,
                      key: str | None = None,
                      delivery: DeliveryRef | None = None) -> Reservation:
        if self._closed:
            raise QueueClosed()
        job_id = new_job_id()
        limits = limits or UserLimits(self.user_max, self.queue.cooldown_s)
        try:
            await self._give_back_released()
            position = await self.store.reserve(
                job_id, user_id, user_max=limits.user_max, queue_max=self.queue_max,
                cooldown_s=limits.cooldown_s, key=key,
                delivery=delivery)
        except UNREACHABLE as exc:
            self.queue.outage.lost(exc)
            raise QueueUnavailable() from None
        return RedisReservation(user_id, job_id, position)

    async def release(self, reservation: Reservation) -> None:
        assert isinstance(reservation, RedisReservation)
        try:
            await self.store.release(reservation.job_id, reservation.user_id)
        except UNREACHABLE:  # given back once Redis answers again (or it runs out by itself)
            log.warning("could not give back the reservation of job %s yet",
                        reservation.job_id)
            self._released.append(reservation)

    async def _give_back_released(self) -> None:
        """The reservations that could not be given back while Redis was out of reach: given
        back before anything else is admitted, so that a user refused in an outage is not
        refused again, by their own place or cooldown, once it is over."""
        while self._released:
            reservation = self._released[0]
            await self.store.release(reservation.job_id, reservation.user_id)
            self._released.pop(0)

    async def submit(self, reservation: Reservation, render: RenderJob,
                     delivery: DeliveryRef) -> Job:
        """The job is stored in Redis before its user reads that it was accepted, as the
        local journal is written first: a bot killed after "Queued" has lost nothing. The
        first word still comes first: this process's own events on the job wait for it
        (the reporter's `acknowledge`), and the other bot processes wait until the job's
        record says it was shown (store.shown). A job that cannot be stored is refused
        (QueueRefusal) and its reservation given back: its user was told nothing."""
        assert isinstance(reservation, RedisReservation)
        if self._closed:  # stopping since the reservation: it runs out by itself in Redis
            raise QueueClosed()
        job = Job(user_id=reservation.user_id, render=render, delivery=delivery,
                  id=reservation.job_id)
        try:
            position = await self.queue.enqueue(job, shown=False)
        except UNREACHABLE as exc:
            self.queue.outage.lost(exc)
            await self.release(reservation)  # also withdraws it, had it been stored after all
            raise QueueUnavailable() from None
        except QueueRefusal as refusal:  # Redis answered: the reservation had run out
            log.warning("job %s of user %s was not queued: %s", job.id, job.user_id, refusal)
            raise
        log.info("job %s queued in Redis for user %s: %s", job.id, job.user_id, render)
        try:
            await self.reporter.acknowledge(job, self._place(position))
        finally:
            await self._shown(job)
        return job

    async def _shown(self, job: Job) -> None:
        try:
            await self.store.shown(job.id)
        except UNREACHABLE:  # the other bots wait a while, then go on without it
            log.warning("could not record that job %s was shown to its user", job.id)

    def _place(self, position: int) -> QueuePlace:
        """The place, with an ETA from the live workers' recent job times."""
        averages = [w["average_s"] for w in self._workers if w.get("average_s")]
        # the workers render side by side: a job leaves the queue every average / workers
        per_job = sum(averages) / len(averages) / len(self._workers) if averages else None
        return QueuePlace.at(position, per_job)

    async def cancel(self, job_id: str, user_id: int) -> CancelOutcome:
        """A waiting job is dropped (its `cancelled` comes through the events, to whichever
        bot delivers it); a running one is stopped by its worker within a step."""
        try:
            outcome = await self.queue.cancel(job_id, user_id, CANCELLED_BY_USER)
        except UNREACHABLE as exc:
            self.queue.outage.lost(exc)
            raise QueueUnavailable() from None
        return CANCEL_OUTCOMES.get(outcome, CancelOutcome.NOT_FOUND)

    async def status(self) -> QueueStatus:
        try:
            waiting, running = await self.store.counts()
            self._workers = await self.store.workers()
        except UNREACHABLE as exc:
            self.queue.outage.lost(exc)
            raise QueueUnavailable() from None
        averages = [w["average_s"] for w in self._workers if w.get("average_s")]
        loaded = sorted({m for w in self._workers for m in w.get("loaded", [])})
        return QueueStatus(
            waiting=waiting, running=running,
            average_job_s=sum(averages) / len(averages) if averages else None,
            loaded_models=tuple(loaded),
            device=f"{len(self._workers)} render worker(s)",
            vram_mode=", ".join(sorted({str(w.get("vram_mode")) for w in self._workers})) or "-",
            workers=tuple(self._workers))

    # ----- waiting users' places
    async def _refresh_places_forever(self) -> None:
        while True:
            await asyncio.sleep(POSITIONS_EVERY_S)
            try:
                await self._give_back_released()
                await self._tell_abandoned()
                await self._refresh_places()
            except UNREACHABLE:
                continue  # the event reader reports the outage
            except Exception:  # the next round tries again
                log.exception("could not refresh the queue positions")

    async def _tell_abandoned(self) -> None:
        """Reservations that ran out with no job queued: their bot stopped before it queued
        it (killed while it answered Discord, say). Their users, left with "thinking...", are
        told, in the background (a Discord outage must not hold up the positions)."""
        for job_id, user_id, delivery in await self.store.abandoned():
            log.warning("job %s was reserved but never queued (its bot stopped); telling its "
                        "user", job_id)
            task = asyncio.create_task(tell_not_queued(self.reporter, job_id, user_id,
                                                       delivery))
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

    async def _refresh_places(self) -> None:
        """Tell this process's waiting users their places; forget the jobs that another bot
        process answered (their events went there)."""
        local = list(self.queue.local.values())
        self._workers = await self.store.workers()
        states = await self.store.states([job.id for job in local])
        for job, state in zip(local, states, strict=True):
            if state not in ("queued", "running"):
                self.queue.local.pop(job.id, None)
        waiting = [job for job, state in zip(local, states, strict=True)
                   if state == "queued" and job.state is JobState.QUEUED]
        positions = await asyncio.gather(*(self.store.position(job.id) for job in waiting))
        places = [(job, self._place(p)) for job, p in zip(waiting, positions, strict=True) if p]
        if places:
            await self.reporter.queue_moved(places)

    # ----- the process's life
    async def start(self) -> None:
        """StartupError when the server refuses the login (a setting to fix); an outage is
        waited out by the event reader."""
        try:
            await self.store.ensure_groups()
        except REFUSED as exc:
            raise StartupError("PLACE_REDIS_URL", refused_message(exc)) from None
        except UNREACHABLE as exc:  # the reader keeps trying, and says when it is back
            self.queue.outage.lost(exc)
        self.queue.start()
        self._positions = asyncio.create_task(self._refresh_places_forever(),
                                              name="redis-positions")

    async def shutdown(self, grace_s: float) -> None:
        """Stop reading events (those in hand are delivered first). The jobs stay in Redis:
        the workers go on, and any bot process delivers them, this one after a restart.
        Nothing new is admitted from here on."""
        self._closed = True
        if self._positions is not None:
            self._positions.cancel()
        for telling in self._telling:
            telling.cancel()
        with contextlib.suppress(*UNREACHABLE):
            await asyncio.wait_for(self.queue.stop(), grace_s)
        await self.store.redis.aclose()


