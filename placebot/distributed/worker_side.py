"""A GPU worker process's end of the Redis queue, behind the same two faces the in-process
Worker already uses: a job source with JobQueue's consumer methods (next_batch, finish,
close), here, and a Reporter (worker_reporter.py). So the worker process runs
placebot.jobs.worker.Worker unchanged: same batching, timeouts, out-of-memory retry, progress and
cancellation between steps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from pipeline.params import MODEL_KEYS
from placebot.distributed import keys
from placebot.distributed.codec import (
    InvalidJob,
)
from placebot.distributed.connection import (
    BLOCK_MS,
    RETRY_S,
    UNREACHABLE,
    Outage,
    until_reachable,
)
from placebot.distributed.entries import Entry
from placebot.distributed.store import RedisJobStore
from placebot.distributed.timeline import Timeline
from placebot.jobs.jobqueue import Job, JobState, take_batch
from placebot.jobs.stored_job import rebuild_job
from placebot.messages import user_message

if TYPE_CHECKING:  # the engine imports torch; only its type is needed here
    from pipeline.engine import Renderer

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.25  # a Cancel reaches a running render within this, plus one step
# A worker that failed to load a model takes none of its jobs for this long (other workers
# take them), then tries again: a full disk or a download that failed may have passed.
LOAD_RETRY_S = 120.0
PREFETCH_AT = 0.8  # of a batch's expected render time: the next batch is read then


def worker_name() -> str:
    """Unique per process, readable in /place_status: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


class RedisJobSource:
    """Batches of compatible jobs pulled from the model streams, with model affinity."""

    keeps_returned_jobs = True  # a job handed back waits in Redis for any worker

    def __init__(self, store: RedisJobStore, renderer: Renderer, name: str):
        self.store = store
        self.renderer = renderer
        self.name = name
        self.outage = Outage(log, f"worker {name}")
        self.held: dict[str, tuple[Job, Entry]] = {}  # taken, not ended: kept alive, watched
        self._buffer: list[Job] = []
        self._closed = False
        self._others: list[dict] = []  # the other live workers' facts, as they last beat
        self._others_loaded: set[str] = set()  # models another live worker has loaded
        # models this worker failed to load: not taken again until then (monotonic time)
        self.unloadable: dict[str, float] = {}
        self._facts = None  # what beat_forever publishes (set there)
        self.timeline = Timeline(name, self._note_batch)
        self._claim_due = True
        self._pending: set[asyncio.Task] = set()
        self._batch_size = 1
        self._prefetch: asyncio.Future | None = None  # the next batch's read, under way
        self._prefetch_timer: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting(self) -> list[Job]:
        """None seen here: the bots hold their users' places (placebot.jobs.jobqueue.JobSource)."""
        return []

    def position(self, job: Job) -> int:
        return 0

    def _loaded(self) -> list[str]:
        return list(self.renderer.store.describe()["loaded"])

    async def next_batch(self, max_batch: int) -> list[Job]:
        self._batch_size = max_batch
        while True:
            self._hand_on_unloadable()
            if self._buffer:
                batch = take_batch(self._buffer, max_batch)
                self.timeline.taken(batch)
                return batch
            if self._closed:
                return []
            if self._prefetch is not None:  # read while the last batch rendered
                prefetch, self._prefetch = self._prefetch, None
                self._buffer += await prefetch
                continue
            self._buffer += await self._pull(max_batch)

    def rendering(self, jobs: Sequence[Job]) -> None:
        """A batch's render starts: the next batch is read towards its end (PREFETCH_AT of
        the time the last batch took a job), so that it is in hand when the render ends and
        the GPU does not wait for the queue's round trips. Not earlier: until then the jobs
        stay in the stream for any worker that becomes free."""
        per_job = self.timeline.render_s_per_job
        if per_job is None or self._closed:
            return
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
        self._prefetch_timer = asyncio.get_running_loop().call_later(
            PREFETCH_AT * per_job * len(jobs), self._prefetch_now)

    def _prefetch_now(self) -> None:
        self._prefetch_timer = None
        if self._closed or self._buffer or self._prefetch is not None:
            return
        self._prefetch = asyncio.ensure_future(self._pull(self._batch_size))

    async def _give_back_prefetched(self, prefetch: asyncio.Future) -> None:
        for job in await prefetch:
            await self.give_back(job)

    def _hand_on_unloadable(self) -> None:
        """Jobs read before their model failed to load here go back for another worker."""
        skipped = set(self.cannot_load_now())
        if not skipped:
            return
        for job in [job for job in self._buffer if job.render.model in skipped]:
            self._buffer.remove(job)
            self.spawn(self.give_back(job))

    def finish(self, jobs: Sequence[Job]) -> None:
        """The Worker is done with these jobs (it says so the moment their render returns).
        One left QUEUED (the worker is stopping) goes back to the stream for another worker;
        the others ended through the reporter."""
        for job in jobs:
            if job.state is JobState.QUEUED:
                self.spawn(self.give_back(job))
            else:
                self.timeline.rendered(job)

    def close(self) -> list[Job]:
        """Take nothing more; the jobs read but not started go back to the stream (those of
        a read under way once it returns)."""
        self._closed = True
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
        if self._prefetch is not None:
            self.spawn(self._give_back_prefetched(self._prefetch))
            self._prefetch = None
        left, self._buffer = self._buffer, []
        for job in left:
            self.spawn(self.give_back(job))
        return left

    async def drain(self) -> None:
        """Wait for the endings being stored and the give-backs started by finish() and
        close()."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _note_batch(self, moments: str) -> None:
        self.spawn(self._store_moments(moments))

    async def _store_moments(self, moments: str) -> None:
        try:
            await self.store.note_batch(moments)
        except Exception as exc:  # a measurement, never a job's trouble
            log.debug("could not keep a batch's timeline: %s", exc)

    async def give_back(self, job: Job) -> None:
        """Back to the queue for another worker (to run alone, if it must)."""
        self.timeline.dropped(job)
        if await until_reachable(self.outage, self.store.requeue, job.id, job.alone):
            log.info("job %s given back to the queue", job.id)
        self.held.pop(job.id, None)

    # ----- reading
    async def _pull(self, count: int) -> list[Job]:
        try:
            entries: list[Entry] = []
            if self._claim_due:
                self._claim_due = False
                entries = await self.store.claim_stale(self.name, count,
                                                       self._takeable(keys.STREAMS))
                if entries:
                    log.warning("took over %d job(s) from a silent worker", len(entries))
            if not entries:
                entries = await self._gathered(count)
            taken = await self.store.take(self.name, entries)
            self.outage.back()
        except UNREACHABLE as exc:
            self.outage.lost(exc)
            await asyncio.sleep(RETRY_S)
            return []
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.store.ensure_groups()  # the server lost them (restarted without AOF)
            return []
        jobs = []
        for item in taken:
            if item.status == "dropped":
                log.error("job %s dropped after %d deliveries", item.entry.job_id,
                          item.deliveries - 1)
            if item.status != "take":
                continue
            job = await self._checked(item)
            if job is not None:
                self.held[job.id] = (job, item.entry)
                jobs.append(job)
        self.timeline.read(jobs)
        loaded = set(self._loaded())  # the loaded model's jobs first: no switch before them
        return sorted(jobs, key=lambda job: job.render.model not in loaded)

    async def _gathered(self, count: int) -> list[Entry]:
        """New entries, up to `count` a stream. A read that finds fewer than a batch (the
        first of a burst of jobs wakes it) waits batch_gather_s for the rest of the burst:
        a batch of one and then one of seven take a GPU far longer than one of eight."""
        streams = await self._eligible_streams()
        entries = await self.store.read(self.name, streams, count, BLOCK_MS)
        if 0 < len(entries) < count and self.store.timings.batch_gather_s > 0:
            await asyncio.sleep(self.store.timings.batch_gather_s)
            entries += await self.store.read(self.name, streams, count - len(entries), None)
        return entries

    async def _checked(self, item) -> Job | None:
        """The job as the bot would accept it, or None (failed, and its user told)."""
        try:
            # Delivered before: a worker died holding it (perhaps because of a batch mate);
            # or given back from a batch that wedged its engine.
            return rebuild_job(item.entry.job_id, item.user_id, item.render, item.context,
                               alone=item.alone or item.deliveries > 1)
        except InvalidJob as exc:
            log.warning("job %s read from Redis is invalid: %s", item.entry.job_id, exc)
            await self.store.finish(item.entry.job_id, "failed", {"error": user_message(exc)})
            return None

    async def _eligible_streams(self) -> list[str]:
        """Model affinity: a job goes to a worker that has its model loaded when one exists.
        This worker reads its own models' streams, those no live worker has loaded, and any
        stream whose oldest unread job has waited past affinity_wait_s (its model's workers
        are busy: loading it here beats waiting longer). A worker with no model takes any."""
        loaded = self._loaded()
        if not loaded:
            return self._takeable(keys.STREAMS)
        streams = []
        now = None
        for model in MODEL_KEYS:
            stream = keys.stream(model)
            if model in self.cannot_load_now():
                continue
            if model in loaded or model not in self._others_loaded:
                streams.append(stream)
                continue
            oldest = await self.store.oldest_unread_ms(stream)
            if oldest is not None:
                now = now or await self.store.server_ms()
                if now - oldest >= self.store.timings.affinity_wait_s * 1000:
                    streams.append(stream)
        return streams

    def _takeable(self, streams) -> list[str]:
        """The streams of the models this worker may try now."""
        skipped = self.cannot_load_now()
        return [s for s in streams if keys.model_of_stream(s) not in skipped]

    def cannot_load_now(self) -> list[str]:
        """The models this worker failed to load lately: it takes none of their jobs."""
        now = time.monotonic()
        self.unloadable = {m: until for m, until in self.unloadable.items() if until > now}
        return sorted(self.unloadable)

    async def cannot_load(self, jobs: Sequence[Job], error: Exception) -> bool:
        """This worker could not load the jobs' model. True when another live worker may
        load it: the jobs then go back to the queue for it (Worker.finish hands them back),
        and this worker takes none of the model's jobs for LOAD_RETRY_S (its facts say so
        at once, for the others and /place_status). False when no other worker can: the
        jobs fail, and the model's next job tries to load it again."""
        model = jobs[0].render.model
        try:
            self._others = [w for w in await self.store.workers()
                            if w.get("name") != self.name]
        except UNREACHABLE as exc:
            self.outage.lost(exc)
        if not [w for w in self._others if model not in w.get("cannot_load", [])]:
            return False  # the jobs fail; the next one of this model tries to load it again
        self.unloadable[model] = time.monotonic() + LOAD_RETRY_S
        log.error("worker %s cannot load model %s: %s; its %d job(s) go back to the queue "
                  "for another worker, and this one takes no %s job for %g s", self.name,
                  model, error, len(jobs), model, LOAD_RETRY_S, exc_info=error)
        try:  # the others hear of it now, not at the next beat
            if self._facts is not None:
                await self.store.beat(self.name, self._facts())
        except UNREACHABLE as exc:
            self.outage.lost(exc)
        return True

    # ----- background duties
    async def beat_forever(self, facts) -> None:
        """Heartbeat with this worker's facts; keep its held entries from looking abandoned;
        learn which models the other workers hold; schedule a look for abandoned jobs."""
        self._facts = facts
        while True:
            try:
                await self.store.beat(self.name, facts())
                await self.store.keep_alive(self.name, [entry for _j, entry in
                                                        self.held.values()])
                others = [w for w in await self.store.workers() if w.get("name") != self.name]
                self._others = others
                self._others_loaded = {m for w in others for m in w.get("loaded", [])}
                self._claim_due = True
                self.outage.back()
            except UNREACHABLE as exc:
                self.outage.lost(exc)
            except Exception:  # a dead heartbeat would let other workers take our jobs
                log.exception("worker %s: heartbeat failed; trying again", self.name)
            await asyncio.sleep(self.store.timings.beat_s)

    async def watch_cancels_forever(self) -> None:
        """Pass Cancel clicks (a field set on the job's hash by any bot) to running jobs."""
        while True:
            if self.held:
                try:
                    requests = await self.store.cancel_requests(list(self.held))
                except UNREACHABLE:
                    requests = {}  # beat_forever reports the outage
                except Exception:
                    log.exception("worker %s: could not read Cancel requests", self.name)
                    requests = {}
                for job_id, reason in requests.items():
                    held = self.held.get(job_id)
                    if held is not None:
                        held[0].request_cancel(reason)
            await asyncio.sleep(CANCEL_POLL_S)
