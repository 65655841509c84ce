"""A render worker's Reporter: the Worker's words on its jobs, written to the events stream
for the bots to deliver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pipeline.results import RenderResult
from placebot.distributed.codec import encode_progress, encode_result, needs_shrinking
from placebot.distributed.connection import until_reachable
from placebot.distributed.worker_side import RedisJobSource
from placebot.jobs.backend import QueuePlace
from placebot.jobs.jobqueue import Job
from placebot.messages import user_message

log = logging.getLogger(__name__)


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
        """Sent in the background: the render starts at once instead of after a round trip
        (and after the last batch's endings the loop runs meanwhile); the batch's progress
        and endings are queued after it, so they still come after it."""
        self.source.timeline.started(jobs)
        self.source.rendering(jobs)
        self.source.spawn(self._publish(jobs, "started"))

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
        self.source.timeline.stored(job)
        if ended is None:
            log.info("job %s had already ended elsewhere; its %s is not sent", job.id, outcome)
        elif ended == "done":
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
