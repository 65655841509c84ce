"""A bounded, per-user-limited, cancellable FIFO of render jobs, with batch taking.

It knows nothing of Discord: a job carries a delivery reference (`DeliveryRef`) that the
delivering side wrote; the job layer stores and carries it, and never reads it. One consumer
(the Worker) takes batches of compatible jobs from the head.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from pipeline.params import RenderJob
from placebot import texts

# Where a job's answer goes, as the delivering side wrote it (JSON-able): kept with the job
# in the journal and in Redis so that any process can deliver it, read only by that side
# (placebot/discord_side/delivery.py), which keeps what it shows the user by job id.
DeliveryRef: TypeAlias = Mapping[str, Any]


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class QueueRefusal(Exception):
    """A job was not accepted. The message is written for the user."""


class QueueFull(QueueRefusal):
    def __init__(self, limit: int):
        super().__init__(texts.QUEUE_FULL.format(limit=limit))


class UserLimitReached(QueueRefusal):
    def __init__(self, limit: int):
        plural = "job" if limit == 1 else "jobs"
        super().__init__(texts.USER_LIMIT_REACHED.format(limit=limit, jobs=plural))


class CooldownActive(QueueRefusal):
    def __init__(self, seconds_left: float):
        super().__init__(texts.COOLDOWN_ACTIVE.format(seconds_left=seconds_left))


class QueueClosed(QueueRefusal):
    def __init__(self):
        super().__init__(texts.QUEUE_CLOSED)


def new_job_id() -> str:
    """Short and unique: fits in a button's custom_id next to its parameters."""
    return uuid.uuid4().hex[:12]


@dataclass(eq=False)
class Job:
    user_id: int
    render: RenderJob
    delivery: DeliveryRef = field(default_factory=dict)
    id: str = field(default_factory=new_job_id)
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    cancel_reason: str | None = None
    # Rendered in a batch of its own: an earlier try of it ended with its process (a crash, a
    # wedged render), which any job of that batch may have caused. Alone, only the job that
    # causes it again pays for it; its former batch mates go through.
    alone: bool = False

    def request_cancel(self, reason: str) -> None:
        """Ask the job to stop: a queued job is dropped, a running one stops within a step."""
        if self.cancel_reason is None:
            self.cancel_reason = reason


def take_batch(waiting: MutableSequence[Job], max_batch: int) -> list[Job]:
    """Remove the first job and up to max_batch - 1 later ones that can share its pipeline
    call (the same batch_key) from `waiting`, and mark them running.

    Compatible jobs further back are taken out of order: that only makes them earlier, and
    nobody in front of them waits longer for it (the batch runs in one call). A job marked
    `alone` is neither given mates nor taken as one. The in-process queue and the Redis
    worker's buffer both batch by this one rule.
    """
    head = waiting[0]
    del waiting[0]
    batch = [head]
    for job in list(waiting):
        if head.alone or len(batch) >= max_batch:
            break
        if not job.alone and job.render.batch_key == head.render.batch_key:
            waiting.remove(job)
            batch.append(job)
    started = time.monotonic()
    for job in batch:
        job.state = JobState.RUNNING
        job.started_at = started
    return batch


class JobQueue:
    keeps_returned_jobs = False  # in memory only: the journal keeps jobs over a restart

    def __init__(self, max_size: int, user_max: int):
        self.max_size = max_size
        self.user_max = user_max
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._reserved: Counter[int] = Counter()  # places held while a submission is prepared
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def waiting(self) -> list[Job]:
        return list(self._waiting)

    @property
    def running(self) -> list[Job]:
        return list(self._running)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._waiting)

    def pending_for(self, user_id: int) -> int:
        """Jobs of this user that are waiting, running or being submitted."""
        held = sum(job.user_id == user_id for job in (*self._waiting, *self._running))
        return held + self._reserved[user_id]

    def check_room(self, user_id: int, user_max: int | None = None) -> None:
        """Raise the QueueRefusal a submit() would raise now (`user_max`: a stricter limit
        than the queue's own)."""
        limit = self.user_max if user_max is None else user_max
        if self._closed:
            raise QueueClosed()
        if self.pending_for(user_id) >= limit:
            raise UserLimitReached(limit)
        if len(self._waiting) + self._reserved.total() >= self.max_size:
            raise QueueFull(self.max_size)

    def reserve(self, user_id: int, user_max: int | None = None) -> None:
        """Hold a place for a job still being prepared (answering Discord, choosing the crop),
        so that the checks and the place are taken at once: submit(job, reserved=True) uses
        it, release() gives it back."""
        self.check_room(user_id, user_max)
        self._reserved[user_id] += 1

    def release(self, user_id: int) -> None:
        self._reserved[user_id] -= 1
        if self._reserved[user_id] <= 0:
            del self._reserved[user_id]

    def submit(self, job: Job, *, reserved: bool = False) -> int:
        """Append the job; return its 1-based position among the waiting jobs."""
        if reserved:
            self.release(job.user_id)
        else:
            self.check_room(job.user_id)
        self._waiting.append(job)
        self._wakeup.set()
        return len(self._waiting)

    def restore(self, job: Job) -> None:
        """Queue a job recovered after a restart: bypasses the limits (it was accepted before)."""
        self._waiting.append(job)
        self._wakeup.set()

    def position(self, job: Job) -> int:
        """1-based place among waiting jobs; 0 while running or finished."""
        for index, waiting in enumerate(self._waiting, start=1):
            if waiting is job:
                return index
        return 0

    def find(self, job_id: str) -> Job | None:
        return next((j for j in (*self._running, *self._waiting) if j.id == job_id), None)

    def cancel(self, job: Job, reason: str) -> bool:
        """Cancel a waiting job (removed now) or a running one (stops within a step)."""
        job.request_cancel(reason)
        if job in self._waiting:
            self._waiting.remove(job)
            job.state = JobState.CANCELLED
            return True
        return job in self._running

    def close(self) -> list[Job]:
        """Accept nothing new; return the jobs still waiting (they stay queued)."""
        self._closed = True
        self._wakeup.set()
        return list(self._waiting)

    async def next_batch(self, max_batch: int) -> list[Job]:
        """Wait for a job; take it and up to max_batch - 1 waiting jobs compatible with it
        (take_batch)."""
        while not self._waiting:
            if self._closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = take_batch(self._waiting, max_batch)
        self._running = batch
        return batch

    async def cannot_load(self, jobs: Sequence[Job], error: Exception) -> bool:
        """No other worker here: a job whose model cannot be loaded fails."""
        return False

    def finish(self, jobs: Sequence[Job]) -> None:
        """The worker is done with these jobs (whatever their outcome)."""
        self._running = [job for job in self._running if job not in jobs]


class JobSource(Protocol):
    """Where the worker takes its jobs: the in-process JobQueue, or a remote queue's client."""

    # Whether a job handed back (state QUEUED, then `restarting`) is kept by the source itself
    # over the end of this process (the Redis queue); the in-process queue needs the journal.
    keeps_returned_jobs: bool

    @property
    def waiting(self) -> list[Job]:
        """The jobs waiting that this process can see (a remote worker sees none)."""

    def position(self, job: Job) -> int: ...

    def close(self) -> Any: ...

    async def next_batch(self, max_batch: int) -> list[Job]: ...

    def finish(self, jobs: Sequence[Job]) -> None: ...

    async def cannot_load(self, jobs: Sequence[Job], error: Exception) -> bool:
        """This worker failed to load the jobs' model: True when the source keeps them for
        another worker that may load it (finish() then hands them back); False: they fail."""
