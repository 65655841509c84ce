"""What the job store hands its readers: a stream entry read, the outcome of taking it, an
entry no reader can use; and the refusal of a job whose reserved place ran out."""

from __future__ import annotations

from dataclasses import dataclass

from placebot import texts
from placebot.jobs.jobqueue import QueueRefusal


class ReservationExpired(QueueRefusal):
    """The place held while a job was prepared ran out before the job was stored (a refusal,
    not an outage: Redis answered)."""

    def __init__(self, held_s: float):
        super().__init__(texts.RESERVATION_EXPIRED.format(held_s=held_s))


@dataclass(frozen=True)
class Entry:
    """One job's entry in a model's stream, as a worker read it."""

    stream: str
    entry_id: str
    job_id: str


@dataclass(frozen=True)
class Taken:
    """The outcome of taking one entry: 'take' (render it), 'skip' or 'dropped'."""

    entry: Entry
    status: str
    render: bytes
    context: bytes
    user_id: bytes  # as stored: checked, with the rest, by whoever renders it
    deliveries: int
    alone: bool = False  # to be rendered in a batch of its own (its last batch wedged)


@dataclass(frozen=True)
class Malformed:
    """An entry no reader can use, and why."""

    stream: str
    group: str
    entry_id: str
    fields: dict
    reason: str
