"""A GPU worker process's end of the Redis queue, behind the same two faces the in-process
Worker already uses: a job source with JobQueue's consumer methods (next_batch, finish,
close) and a Reporter. So the worker process runs placebot.worker.Worker unchanged: same
batching, timeouts, out-of-memory retry, progress and cancellation between steps.
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
from pipeline.results import RenderResult
from placebot.backend import QueuePlace
from placebot.jobqueue import Job, JobState, take_batch
from placebot.messages import user_message
from placebot.redisqueue import keys
from placebot.redisqueue.codec import (
    InvalidJob,
    encode_progress,
    encode_result,
    needs_shrinking,
)
from placebot.redisqueue.connection import (
    BLOCK_MS,
    REFUSED,
    UNREACHABLE,
    Outage,
    refused_setting,
)
from placebot.redisqueue.store import Entry, RedisJobStore
from placebot.stored_job import rebuild_job

if TYPE_CHECKING:  # the engine imports torch; only its type is needed here
    from pipeline.engine import Renderer

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.25  # a Cancel reaches a running render within this, plus one step
# A worker that failed to load a model takes none of its jobs for this long (other workers
# take them), then tries again: a full disk or a download that failed may have passed.
LOAD_RETRY_S = 120.0
RETRY_S = 1.0  # between attempts while Redis is unreachable


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
        self._claim_due = True
        self._pending: set[asyncio.Task] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting(self) -> list[Job]:
        """None seen here: the bots hold their users' places (placebot.jobqueue.JobSource)."""
        return []

    def position(self, job: Job) -> int:
        return 0

    def _loaded(self) -> list[str]:
        return list(self.renderer.store.describe()["loaded"])

    async def next_batch(self, max_batch: int) -> list[Job]:
        while True:
            self._hand_on_unloadable()
            if self._buffer:
                return take_batch(self._buffer, max_batch)
            if self._closed:
                return []
            self._buffer += await self._pull(max_batch)

    def _hand_on_unloadable(self) -> None:
        """Jobs read before their model failed to load here go back for another worker."""
        skipped = set(self.cannot_load_now())
        if not skipped:
            return
        for job in [job for job in self._buffer if job.render.model in skipped]:
            self._buffer.remove(job)
            self.spawn(self.give_back(job))

    def finish(self, jobs: Sequence[Job]) -> None:
        """The Worker is done with these jobs. One left QUEUED (the worker is stopping) goes
        back to the stream for another worker; the others ended through the reporter."""
        for job in jobs:
            if job.state is JobState.QUEUED:
                self.spawn(self.give_back(job))

    def close(self) -> list[Job]:
        """Take nothing more; the jobs read but not started go back to the stream."""
        self._closed = True
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

    async def give_back(self, job: Job) -> None:
        """Back to the queue for another worker (to run alone, if it must)."""
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
                entries = await self.store.read(self.name, await self._eligible_streams(),
                                                count, BLOCK_MS)
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
        loaded = set(self._loaded())  # the loaded model's jobs first: no switch before them
        return sorted(jobs, key=lambda job: job.render.model not in loaded)

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


async def until_reachable(outage: Outage, call, *args, give_up_s: float = 600.0,
                          refusal_is_fatal: bool = False):
    """Run a store call, retrying while Redis is unreachable (a result in hand is worth
    waiting for: the job is acknowledged only once it is stored). `refusal_is_fatal`: a
    server that answers but refuses the login raises SettingsError (at a start: a setting
    to fix, not an outage to wait out)."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            answer = await call(*args)
            outage.back()
            return answer
        except REFUSED as exc:
            if refusal_is_fatal:
                raise refused_setting(exc) from None
            outage.lost(exc)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RETRY_S)
        except UNREACHABLE as exc:
            outage.lost(exc)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RETRY_S)


class RedisReporter:
    """The Worker's Reporter in a worker process: every word goes to the events stream, and
    an ending acknowledges the job in the same script that stores it.

    An ending is stored in the background: the Worker goes on to the batch's next job at
    once, so a batch's endings share round trips (the store pipelines them). Until it is
    stored the job stays held (kept alive, never taken over), and a stopping worker waits for
    it (RedisJobSource.drain). A job's progress is stored before its ending: the Worker
    waits for its progress calls before it reports the ending.
    """

    def __init__(self, source: RedisJobSource):
        self.source = source
        self.store = source.store
        self.jobs_done = 0

    async def _publish(self, jobs: Sequence[Job], kind: str, fields: dict | None = None):
        """A word on jobs this worker holds; none is sent for a job that ended meanwhile or
        was taken over by another worker (its events would come after that one's)."""
        await asyncio.gather(*(self.store.publish(job.id, kind, fields, worker=self.source.name)
                               for job in jobs))

    async def loading(self, jobs: Sequence[Job]) -> None:
        await self._publish(jobs, "loading")

    async def started(self, jobs: Sequence[Job]) -> None:
        await self._publish(jobs, "started")

    async def progress(self, job: Job, pass_number: int, frames: list) -> None:
        if needs_shrinking(frames):
            fields = await asyncio.to_thread(encode_progress, pass_number, frames)
        else:  # a copy of small frames: cheaper than a trip to a thread
            fields = encode_progress(pass_number, frames)
        await self._publish([job], "progress", fields)

    async def _end(self, job: Job, outcome: str, fields: dict) -> None:
        try:
            ended = await until_reachable(self.source.outage, self.store.finish, job.id,
                                          outcome, fields)
        except Exception:  # held no longer: the entry is taken over after the idle bound
            log.exception("could not store the %s of job %s", outcome, job.id)
            self.source.held.pop(job.id, None)
            return
        self.source.held.pop(job.id, None)
        if not ended:
            log.info("job %s had already ended elsewhere; its %s is not sent", job.id, outcome)
        elif outcome == "done":
            self.jobs_done += 1

    async def finished(self, job: Job, result: RenderResult) -> None:
        self.source.spawn(self._end(job, "done", encode_result(result)))

    async def failed(self, job: Job, error: Exception) -> None:
        self.source.spawn(self._end(job, "failed", {"error": user_message(error)}))

    async def cancelled(self, job: Job) -> None:
        self.source.spawn(self._end(job, "cancelled", {}))

    async def restarting(self, job: Job) -> None:
        await self.source.give_back(job)

    async def queue_moved(self, waiting: Sequence[tuple[Job, QueuePlace]]) -> None:
        """Nothing to send: the bots refresh their users' positions from Redis themselves."""
