"""Each batch's moments on its render worker, kept in Redis for whoever measures where the
time goes (`python -m bench.redis scaling` reads them).

A worker notes, per batch: when its jobs were read from Redis, when the Worker took the
batch, when its render started (after any model load) and ended, and when each job's result
was stored. Once every job of the batch is stored the record goes to the stream
place:timeline (one entry a batch, trimmed to about TIMELINE_KEPT): a command sent with the
others (pipelined), nothing a job waits for. Times are the worker's wall clock (time.time());
compare them across processes of one host only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from placebot.jobs.jobqueue import Job

TIMELINE_KEPT = 10_000


@dataclass
class BatchMoments:
    worker: str
    batch: int  # this worker's count
    jobs: list[str]
    read: float  # its earliest job was read from Redis
    taken: float  # the Worker took it to render
    render_start: float | None = None
    render_end: float | None = None
    stored: dict[str, float] = field(default_factory=dict)  # job id → its result stored


class Timeline:
    """The batches a worker renders, noted as they go; a finished record is handed to
    `record` (which stores it)."""

    def __init__(self, worker: str, record):
        self.worker = worker
        self._record = record  # (json text) → None, called for each finished batch
        self._count = 0
        self._read: dict[str, float] = {}  # job id → when it was read
        self._batches: dict[str, BatchMoments] = {}  # job id → its batch
        self.render_s_per_job: float | None = None  # of the last batch rendered

    def read(self, jobs: Sequence[Job]) -> None:
        now = time.time()
        for job in jobs:
            self._read.setdefault(job.id, now)

    def taken(self, jobs: Sequence[Job]) -> None:
        now = time.time()
        self._count += 1
        read = min((self._read.pop(job.id, now) for job in jobs), default=now)
        moments = BatchMoments(self.worker, self._count, [job.id for job in jobs], read, now)
        for job in jobs:
            self._batches[job.id] = moments

    def started(self, jobs: Sequence[Job]) -> None:
        now = time.time()
        for job in jobs:
            moments = self._batches.get(job.id)
            if moments is not None and moments.render_start is None:
                moments.render_start = now

    def rendered(self, job: Job) -> None:
        moments = self._batches.get(job.id)  # (a job cancelled before the render: not yet)
        if moments is not None and moments.render_start is not None \
                and moments.render_end is None:
            moments.render_end = time.time()
            self.render_s_per_job = ((moments.render_end - moments.render_start)
                                     / max(1, len(moments.jobs)))

    def stored(self, job: Job) -> None:
        moments = self._batches.pop(job.id, None)
        if moments is None:
            return
        moments.stored[job.id] = time.time()
        if not any(self._batches.get(job_id) is moments for job_id in moments.jobs):
            self._record(json.dumps(asdict(moments)))

    def dropped(self, job: Job) -> None:
        """The job went back to the queue unrendered: it is no longer of this batch."""
        self._read.pop(job.id, None)
        moments = self._batches.pop(job.id, None)
        if moments is not None:
            moments.jobs.remove(job.id)
