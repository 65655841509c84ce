"""How a job the render worker took leaves it: one Outcome per job, given to Worker._end.

Finished, Failed and Cancelled end the job (recorded, then told: finished, failed or
cancelled). Returned does not: the job goes back to where it came from (the journal, or
the Redis queue through JobSource.finish) and is rendered later, after a restart or by
another worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.results import RenderResult


@dataclass(frozen=True)
class Finished:
    result: RenderResult


@dataclass(frozen=True)
class Failed:
    error: Exception


@dataclass(frozen=True)
class Cancelled:
    """Its user cancelled it (the reason is on the job)."""


@dataclass(frozen=True)
class Returned:
    """Back to the queue, not ended."""

    # The shutdown's doing, not the job's: the try counted when it was taken is given back.
    give_try_back: bool
    # Its user reads that it is kept (`restarting`).
    tell: bool
    # It ran in a batch that wedged the engine: from now on it runs in a batch of its own.
    alone: bool = False


# A shutdown stopped it, or came before it could run: kept for the next start, its user told.
SHUTDOWN = Returned(give_try_back=True, tell=True)
# Its batch wedged the engine: kept with its try counted, to run alone on a fresh engine.
AFTER_STUCK = Returned(give_try_back=False, tell=True, alone=True)
# Never rendered here (the worker stopped before its batch ran, or its model may load on
# another worker): its source takes it back, and its user reads nothing new.
HANDED_BACK = Returned(give_try_back=False, tell=False)

Outcome = Finished | Failed | Cancelled | Returned
