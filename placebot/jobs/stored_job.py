"""A job rebuilt from what a store kept of it: the one way back from a journal row (after a
restart) or a Redis record (in a bot process that did not accept it, or a render worker).

Nothing read back is trusted: the render parameters are checked exactly as a /place or
/dream request's are, the delivery reference must be a JSON object, the user id a number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pipeline.errors import PipelineError
from pipeline.params import RenderJob
from placebot.jobs.jobqueue import DeliveryRef, Job

Stored = Mapping | str | bytes  # a JSON object, as parsed already or as its text


class InvalidJob(PipelineError):
    """A job read back from a store is malformed; the message says what was wrong."""


def _parsed(raw: Stored, what: str) -> Mapping:
    if isinstance(raw, Mapping):
        return raw
    try:
        value = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError; None a Type
        raise InvalidJob(f"its {what} cannot be read as JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise InvalidJob(f"its {what} must be a JSON object, not {type(value).__name__}")
    return value


def decode_render(raw: Stored) -> RenderJob:
    """The RenderJob kept with a job, every parameter checked as a /place or /dream
    request's is (RenderJob.from_dict validates them all: crop, picture, prompt, bounds)."""
    try:
        return RenderJob.from_dict(dict(_parsed(raw, "parameters")))
    except (ValueError, KeyError, TypeError) as exc:  # ParamError is a ValueError
        raise InvalidJob(f"its parameters are invalid ({exc})") from None


def decode_delivery(raw: Stored) -> DeliveryRef:
    """The delivery reference kept with a job (read only by the delivering side)."""
    return _parsed(raw, "delivery record")


def rebuild_job(job_id: str, user_id: int | str | bytes, render: Stored, delivery: Stored, *,
                alone: bool = False) -> Job:
    """The job a store kept, as it was accepted; InvalidJob when any part of it is not.
    `alone`: an earlier try of it ended with its process (Job.alone)."""
    try:
        user = int(user_id)
    except (TypeError, ValueError):
        raise InvalidJob(f"its user id {user_id!r} is not a number") from None
    return Job(user_id=user, render=decode_render(render), delivery=decode_delivery(delivery),
               id=job_id, alone=alone)
