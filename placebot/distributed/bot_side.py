"""A bot process's end of the Redis queue: admission of jobs, Cancel, positions, worker facts,
and the events from the workers turned into the same Reporter calls the in-process worker
makes (loading, started, progress, finished, failed, cancelled, restarting).

Events are read in the consumer group `bots`: any bot process may deliver any job (a job it
did not accept itself is rebuilt from its record in Redis), one event is handled
by one bot, and a bot that dies with events in hand has them claimed by another. A job's
events are handled in order; different jobs' concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.exceptions import ResponseError

from pipeline.errors import PipelineError
from placebot.distributed.codec import Event, InvalidJob, decode_progress, decode_result
from placebot.distributed.connection import (
    BLOCK_MS,
    SOCKET_TIMEOUT_S,
    UNREACHABLE,
    Outage,
    pause_after,
)
from placebot.distributed.store import RedisJobStore
from placebot.distributed.worker_side import worker_name
from placebot.jobs.backend import ACKNOWLEDGE_WAIT_S, QueuePlace
from placebot.jobs.jobqueue import DeliveryRef, Job, JobState
from placebot.jobs.stored_job import rebuild_job

log = logging.getLogger(__name__)

READ_COUNT = 256  # events taken in one read
CONCURRENT_EVENTS = 64  # events handled at once (Discord edits and uploads overlap)
# Another bot's job: its first word ("Queued") is waited for this long (the transport's wait
# for this process's own jobs) before a later word on it is shown.
SHOWN_WAIT_S = ACKNOWLEDGE_WAIT_S


class RemoteJobError(PipelineError):
    """A job's failure as a worker described it (already written for the user)."""


class RedisBotQueue:
    """Admission and delivery for one bot process. `local` holds the jobs this process
    accepted; others are rebuilt from their records in Redis."""

    def __init__(self, store: RedisJobStore, reporter, *, user_max: int, queue_max: int,
                 cooldown_s: float = 0.0, name: str | None = None,
                 place_of: Callable[[int], QueuePlace] | None = None):
        self.store = store
        self.reporter = reporter
        # a position as the user reads it (the backend adds an ETA from the workers' times)
        self.place_of = place_of or (lambda position: QueuePlace.at(position, None))
        self.user_max = user_max
        self.queue_max = queue_max
        self.cooldown_s = cooldown_s
        self.name = name or worker_name()
        self.outage = Outage(log, f"bot {self.name}")
        self.local: dict[str, Job] = {}
        self._chains: dict[str, asyncio.Future] = {}  # each job's last event task
        self._in_hand: set[str] = set()  # event ids being handled (kept alive)
        self._to_ack: list[str] = []
        self._delivered: list[str] = []
        self._ack_wanted = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENT_EVENTS)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # ----- admission
    async def submit(self, job: Job, delivery: DeliveryRef | None = None) -> int:
        """Admit and queue a resolved job (QueueRefusal when refused); return its position.
        `delivery`: the job's delivery reference, where the job was built without one."""
        if delivery is not None:
            job.delivery = delivery
        await self.store.reserve(job.id, job.user_id, user_max=self.user_max,
                                 queue_max=self.queue_max, cooldown_s=self.cooldown_s)
        try:
            return await self.enqueue(job)
        except BaseException:
            await self.store.release(job.id, job.user_id)
            raise

    async def enqueue(self, job: Job, *, shown: bool = True) -> int:
        """Queue a job reserved under its id, with its delivery reference; this process
        delivers it (unless another process gets its events first: that one rebuilds it from
        its record). `shown=False`: the caller tells the user first, then calls store.shown
        (the other bots wait for it, up to SHOWN_WAIT_S)."""
        self.local[job.id] = job
        try:
            return await self.store.enqueue(job.id, job.user_id, job.render,
                                            dict(job.delivery), shown=shown)
        except BaseException:
            self.local.pop(job.id, None)
            raise

    async def cancel(self, job_id: str, user_id: int, reason: str) -> str:
        """'cancelled' (was waiting), 'stopping' (running), or 'ended'/'unknown'/'not_yours'."""
        outcome = await self.store.cancel(job_id, user_id, reason)
        job = self.local.get(job_id)
        if job is not None and outcome in ("cancelled", "stopping"):
            job.request_cancel(reason)
        return outcome

    # ----- events
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read_forever(), name="redis-events"),
                       asyncio.create_task(self._ack_forever(), name="redis-acks"),
                       asyncio.create_task(self._claim_forever(), name="redis-claims")]

    async def stop(self) -> None:
        """Stop reading; let the events in hand finish and be acknowledged. The read under
        way is let finish (within BLOCK_MS) rather than cut: entries the server handed to a
        cut read would sit unacknowledged until another bot took them over."""
        self._stopping = True
        reader, claimer = self._tasks[0], self._tasks[2]
        claimer.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(reader), BLOCK_MS / 1000 + SOCKET_TIMEOUT_S)
        except TimeoutError:
            reader.cancel()
        try:
            pending = [f for f in self._chains.values() if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=10)
            await self._flush_acks()
        finally:
            # What is still being told (a result in a Discord outage) stays unacknowledged in
            # Redis, kept for the next bot process, which takes it over and delivers it.
            for chain in list(self._chains.values()):
                chain.cancel()
            self._tasks[1].cancel()

    async def _read_forever(self) -> None:
        while not self._stopping:
            try:
                events = await self.store.read_events(self.name, READ_COUNT, BLOCK_MS)
                self.outage.back()
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    await self._recreate_groups()  # a server restarted without its AOF
                else:
                    await pause_after(exc, self.outage, log, "read the job events")
                continue
            for event in events:
                await self._handle_in_order(event)

    async def _recreate_groups(self) -> None:
        """Create the consumer groups again; a failure is logged and the reader tries again
        (a reader that died would leave every result undelivered)."""
        try:
            await self.store.ensure_groups()
        except Exception as exc:
            await pause_after(exc, self.outage, log, "recreate the consumer groups")

    async def _claim_forever(self) -> None:
        """Take over the events a dead bot process held; keep this one's from looking dead."""
        while True:
            timings = self.store.timings
            await asyncio.sleep(timings.beat_s)
            try:
                await self.store.keep_events_alive(self.name, list(self._in_hand))
                claimed = await self.store.claim_events(self.name, timings.claim_idle_s,
                                                        READ_COUNT)
            except UNREACHABLE:
                continue  # _read_forever reports the outage
            except Exception:
                log.exception("could not keep or take over job events; trying again")
                continue
            if claimed:
                log.warning("took over %d event(s) from a silent bot process", len(claimed))
            for event in claimed:
                await self._handle_in_order(event)

    async def _handle_in_order(self, event: Event) -> None:
        """Handle the event after the job's earlier ones. At most CONCURRENT_EVENTS are
        handled at once (the read waits for a slot), but a job's ending gives its slot back
        before it is told: a result retried through a Discord outage (kept in Redis, pending,
        until Discord has it) holds up no other job's events."""
        job_id = event.job_id
        await self._slots.acquire()
        self._in_hand.add(event.entry_id)
        before = self._chains.get(job_id)
        holding = True

        def give_slot_back() -> None:
            nonlocal holding
            if holding:
                holding = False
                self._slots.release()

        async def run() -> None:
            try:
                if before is not None:
                    await asyncio.wait([before])
                if event.ending:
                    give_slot_back()
                await self._handle(event)
            finally:
                give_slot_back()
                self._in_hand.discard(event.entry_id)
                if self._chains.get(job_id) is task:
                    del self._chains[job_id]

        task = asyncio.ensure_future(run())
        self._chains[job_id] = task

    async def _handle(self, event: Event) -> None:
        delivered = False
        try:
            delivered = await self._dispatch(event)
        except UNREACHABLE as exc:
            self.outage.lost(exc)
            return  # not acknowledged: read again by this or another bot once Redis is back
        except Exception:
            log.exception("could not handle the %s event of job %s", event.kind, event.job_id)
        self._to_ack.append(event.entry_id)
        if delivered:
            self._delivered.append(event.job_id)
        self._ack_wanted.set()

    async def _job(self, job_id: str) -> Job | None:
        """The job, this process's own or rebuilt from its record. Another process's job
        is shown nothing before that process has told its user it was accepted (its first
        word, "Queued", must not land on top of a later one)."""
        job = self.local.get(job_id)
        if job is not None:
            return job  # its own first word is awaited by the transport
        record = await self.store.job(job_id)
        if not record.get("render"):
            return None
        if not record.get("shown"):
            await self._until_shown(job_id)
        return rebuild_job(job_id, record.get("user", ""), record["render"],
                           record.get("context", ""))

    async def _until_shown(self, job_id: str) -> None:
        """Wait until the accepting bot has told the job's user, at most SHOWN_WAIT_S (it may
        have died doing so); then no other event of the job waits for it again."""
        deadline = asyncio.get_running_loop().time() + SHOWN_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            if await self.store.is_shown(job_id):
                return
            await asyncio.sleep(self.store.timings.apply_poll_s)
        log.warning("job %s: its bot did not say it was accepted within %g s; going on",
                    job_id, SHOWN_WAIT_S)
        await self.store.shown(job_id)

    async def _dispatch(self, event: Event) -> bool:
        """Tell the reporter; True when the job's ending was delivered. An event is applied
        only if it is the newest of its job so far and the job has no answer yet (a copy
        claimed from a dead bot, or a worker's word that came late, is skipped)."""
        job_id, kind = event.job_id, event.kind
        verdict = await self.store.apply(event)
        while verdict == "wait":  # another bot applies an earlier event of the job
            await asyncio.sleep(self.store.timings.apply_poll_s)
            verdict = await self.store.apply(event)
        if verdict != "apply":
            if verdict == "unknown":
                log.warning("event %s of unknown job %s dropped", kind, job_id)
            else:
                log.info("the %s event (%d) of job %s is skipped: %s", kind, event.seq, job_id,
                         "the job was already answered" if verdict == "delivered"
                         else "a later event of the job was applied")
            if verdict != "old":
                self.local.pop(job_id, None)
            return False
        if event.ending:
            return await self._apply(event)
        try:
            return await self._apply(event)
        finally:
            await self.store.applied(event)

    async def _apply(self, event: Event) -> bool:
        job_id, kind = event.job_id, event.kind
        try:
            job = await self._job(job_id)
        except InvalidJob as exc:
            log.error("job %s in Redis is unreadable (%s); its event is dropped", job_id, exc)
            return False
        if job is None:
            log.warning("event %s of unknown job %s dropped", kind, job_id)
            return False
        if kind in ("loading", "started"):
            job.state = JobState.RUNNING
            await getattr(self.reporter, kind)([job])
            return False
        if kind == "progress":
            number, frames = decode_progress(event.fields, job.render)
            if job.state in (JobState.QUEUED, JobState.RUNNING):
                job.state = JobState.RUNNING
                await self.reporter.progress(job, number, frames)
            return False
        if kind == "restarting":  # its worker stopped: the job is back in the line, waiting
            job.state = JobState.QUEUED
            position = await self.store.position(job.id)
            await self.reporter.requeued(job, self.place_of(position))
            return False
        self.local.pop(job_id, None)
        return await self._end(job, event)

    async def _end(self, job: Job, event: Event) -> bool:
        if event.kind == "cancelled":
            job.state = JobState.CANCELLED
            await self.reporter.cancelled(job)
            return True
        if event.kind == "failed":
            job.state = JobState.FAILED
            await self.reporter.failed(job, RemoteJobError(event.error))
            return True
        job.state = JobState.DONE
        try:
            # ~4 MB of pixels become images: in a thread, as the event loop must not wait
            result = await asyncio.to_thread(decode_result, event.fields, job.render)
            await self.reporter.finished(job, result)
        except Exception as exc:  # as the in-process worker: the user hears of the failure
            log.exception("could not deliver the result of job %s", job.id)
            job.state = JobState.FAILED
            await self.reporter.failed(job, exc)
        return True

    async def _ack_forever(self) -> None:
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            try:
                await self._flush_acks()
            except Exception as exc:
                await pause_after(exc, self.outage, log, "acknowledge job events")
                self._ack_wanted.set()

    async def _flush_acks(self) -> None:
        if not self._to_ack:
            return
        entries, delivered = self._to_ack, self._delivered
        self._to_ack, self._delivered = [], []
        try:
            await self.store.ack_events(entries, delivered)
        except BaseException:
            self._to_ack[:0], self._delivered[:0] = entries, delivered
            raise
