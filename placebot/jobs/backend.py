"""The seam between the bot's Discord side (cogs, buttons, delivery) and the job queue.

`JobBackend` is everything the Discord side asks of whatever queues, stores and renders jobs;
`Reporter` is everything that comes back. Two implementations: placebot.jobs.local_backend.
LocalBackend (an in-process JobQueue, a SQLite Journal and one Worker, all in the bot's
process; the default) and placebot.distributed.backend.RedisBackend (jobs in Redis, rendered by GPU
worker processes; PLACE_REDIS_URL). The client chooses one where it builds its objects; cogs
and delivery do not know which.

A job's life, as both sides see it:

1. `reserve(user_id, limits, key=..., delivery=...)` admits a job atomically: queue bound,
   per-user limit and cooldown (the owner's, or `limits` where a server sets stricter ones)
   are checked and a place is held in one step, or a QueueRefusal (message for the user) is
   raised. The bot answers Discord (defer) only after it, so two quick clicks by one person
   cannot both slip under the limit. `key` is the interaction's id: a second reserve under the
   same key (the same interaction delivered twice, to two bot processes) raises
   DuplicateInteraction, and its bot leaves the interaction to the one that reserved first.
   `delivery`, where the answer goes, is kept with the reservation: should the bot stop
   before step 2 (killed while it defers, say), the user is told after the restart that
   nothing was queued, instead of "thinking..." forever.
2. `submit(reservation, render, delivery)` makes the job durable (it survives a restart from
   here on), queues it under `reservation.job_id`, and emits `Reporter.acknowledge` with its
   place. `delivery` is the delivering side's reference: the backend keeps it with the job
   and never reads it (that side files its own record of the job under the job's id).
   Durable first, so that nobody is told "Queued" of a job a restart could lose. A backend
   that cannot keep it raises a QueueRefusal (its reservation given back; nothing was
   accepted). If the bot gives up between 1 and 2 (Discord refused the defer, say),
   `release(reservation)` frees the place.
3. The backend renders it and emits loading/started, progress after each pass, and exactly
   one ending: finished, failed or cancelled. `queue_moved` tells the delivery side the new
   places of waiting jobs whenever they change. A job that outlives a shutdown gets
   `restarting` and is rendered after `start()` of the next process; one whose render
   worker (another process) stopped gets `requeued` with its new place.
4. `cancel(job_id, user_id)` drops a waiting job or stops a running one within a step; only
   the job's own user can. `status()` gives the facts /place_status and the presence show.

`start()` recovers the jobs kept from before a restart (telling the users of any that are
given up on) and starts rendering; `shutdown(grace_s)` accepts nothing new, tells waiting
users their job is kept, and stops the render within grace_s (the job stays kept).

Every method may await I/O (a Redis implementation talks to a server); none blocks the event
loop. Events are awaited by the backend, which logs a failing one and goes on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PIL import Image

from pipeline.errors import PipelineError
from pipeline.params import RenderJob
from placebot import texts
from placebot.jobs.eta import seconds_until_done
from placebot.jobs.jobqueue import DeliveryRef, Job

if TYPE_CHECKING:
    from pipeline.results import RenderResult

log = logging.getLogger(__name__)

# A later word on a job waits at most this long for its first one (acknowledge), so that
# "Queued: position 1" can never land after "Dreaming" (the delivering side waits).
ACKNOWLEDGE_WAIT_S = 10


@dataclass(frozen=True)
class QueuePlace:
    """Where a job stands: position 1 is next; 0 once it runs or ended."""

    position: int
    eta_s: float | None = None  # seconds until it is done; None before any job was timed

    @classmethod
    def at(cls, position: int, seconds_per_job: float | None) -> QueuePlace:
        """The place with its ETA (none once it runs or ended)."""
        return cls(position, seconds_until_done(position, seconds_per_job) if position else None)


class DuplicateInteraction(Exception):
    """This interaction was admitted already (by this or another bot process): whoever did
    answers it; this delivery of it must say nothing."""


@dataclass(frozen=True)
class UserLimits:
    """The per-person limits a job is admitted under, where they differ from the owner's
    (a server's stricter ones, placebot/servers/server_rules.py). The cooldown counts from the
    person's last accepted job, wherever that was."""

    user_max: int
    cooldown_s: float


@dataclass(frozen=True)
class Reservation:
    """A place held by reserve() for one user's job until submit() or release()."""

    user_id: int
    # The id the job will have: the delivering side files its own record of the job under
    # it before submit(), since the job's first word (acknowledge) comes from inside submit.
    job_id: str


# What a job that never got its render stands on, in the one message it gets (a failure
# notice needs only where to answer): no render is made of it.
_NEVER_RENDERED = RenderJob(canvas="2023", x=0, y=0, seed=0)


async def tell_not_queued(reporter: Reporter, job_id: str, user_id: int,
                          delivery: DeliveryRef) -> None:
    """A reservation whose job never came: its bot stopped between the two (killed while it
    answered Discord, say). Its user, left with "thinking...", is told, through the Reporter's
    `failed` (the job as it takes it: its id, its user and where the answer goes). A failure
    to tell is logged: there is nothing else to do for it."""
    job = Job(user_id=user_id, render=_NEVER_RENDERED, delivery=delivery, id=job_id)
    try:
        await reporter.failed(job, PipelineError(texts.NOT_QUEUED))
    except Exception:
        log.exception("could not tell the user of job %s that it was never queued", job_id)


@dataclass(frozen=True)
class QueueStatus:
    """What /place_status and the bot's presence show."""

    waiting: int
    running: int
    average_job_s: float | None  # None before the first job
    loaded_models: tuple[str, ...]  # model keys, e.g. ("1.4",)
    device: str
    vram_mode: str
    # The render workers, where they are other processes (the distributed mode): each one's
    # facts as it last beat (host, gpu, vram_mode, loaded, jobs_done, beat: epoch seconds).
    workers: tuple[dict, ...] = ()


class CancelOutcome(enum.Enum):
    NOT_FOUND = "not found"  # no job of this id is waiting or running for this user
    REMOVED = "removed"  # it was waiting: dropped, kept from any restart, its user told
    STOPPING = "stopping"  # it is running: it stops within a step, then `cancelled` comes


CANCELLED_BY_USER = "cancelled by its requester"  # the reason a Cancel click records


class WorkerReporter(Protocol):
    """What a render worker (placebot.jobs.worker) tells whoever delivers: a job's passes and
    end."""

    async def loading(self, jobs: Sequence[Job]) -> None:
        """These jobs wait for their model to load (minutes on a first start)."""

    async def started(self, jobs: Sequence[Job]) -> None:
        """These jobs (one batch) are rendering."""

    async def progress(self, job: Job, pass_number: int, frames: list[Image.Image]) -> None:
        """Pass `pass_number` of the job is done; `frames` are the crop and every pass so far."""

    async def finished(self, job: Job, result: RenderResult) -> None:
        """The result; the job is recorded as done only once this returns."""

    async def failed(self, job: Job, error: Exception) -> None:
        """The job ended in `error` (user_message() says it to the user)."""

    async def cancelled(self, job: Job) -> None:
        """The job was cancelled (by its user) before it finished."""

    async def restarting(self, job: Job) -> None:
        """The bot is stopping: the job is kept and runs after the restart."""

    async def queue_moved(self, waiting: Sequence[tuple[Job, QueuePlace]]) -> None:
        """The waiting jobs' places changed; `waiting` lists each with its new place (empty
        where the worker does not see the waiting jobs, as a remote worker does not)."""


class Reporter(WorkerReporter, Protocol):
    """What the backend tells the delivery side (Discord, a test, a benchmark) about jobs."""

    async def requeued(self, job: Job, place: QueuePlace) -> None:
        """The job's render worker stopped (another process) and the job went back to the
        queue at `place`: it waits again (the distributed mode's `restarting`)."""

    async def acknowledge(self, job: Job, place: QueuePlace) -> None:
        """The job is accepted and durable; place.position is 0 if it already runs."""

    def holds_result(self, job: Job) -> bool:
        """The delivery side still holds this job's finished result: the bot stopped before
        Discord had it. The backend then calls deliver_kept instead of rendering it again."""

    async def deliver_kept(self, job: Job) -> None:
        """Deliver the held result (retried as `finished` is); the job is recorded as done
        once this returns."""


class JobBackend(Protocol):
    """Queues, keeps and renders /place jobs (the module docstring tells the whole contract)."""

    async def start(self) -> None: ...

    async def reserve(self, user_id: int, limits: UserLimits | None = None,
                      key: str | None = None,
                      delivery: DeliveryRef | None = None) -> Reservation:
        """None: the owner's limits (PLACE_USER_MAX, PLACE_USER_COOLDOWN)."""

    async def release(self, reservation: Reservation) -> None: ...

    async def submit(self, reservation: Reservation, render: RenderJob,
                     delivery: DeliveryRef) -> Job:
        """`delivery`: the delivering side's reference, kept with the job and never read."""

    async def cancel(self, job_id: str, user_id: int) -> CancelOutcome: ...

    async def status(self) -> QueueStatus: ...

    async def shutdown(self, grace_s: float) -> None: ...
