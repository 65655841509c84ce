"""The one place where errors become what a user reads.

Only our own errors are shown as they are: their messages are written for a person. Anything
else (a library's ValueError, say) may carry internals or confusing text: it is logged with its
traceback by whoever caught it, and the user reads the generic sentence.
"""

from __future__ import annotations

import logging

from pipeline.errors import ModelLoadError, OutOfMemory, PipelineError, RenderCancelled
from placebot.jobqueue import QueueRefusal

log = logging.getLogger(__name__)

GENERIC = "something went wrong on our side (the bot owner can see the details in the log)"


class UserFacingError(Exception):
    """A failure of the bot's own making whose message is written for the user to read."""


def user_message(error: BaseException) -> str:
    """One line for the user. Unexpected errors get a generic line (their traceback is logged
    by whoever caught them); known ones say what happened and, where useful, what to do."""
    if isinstance(error, UserFacingError | QueueRefusal):
        return str(error)
    if isinstance(error, ModelLoadError):
        # Its cause is a library's words (often a local path) or advice for the owner: the
        # worker logs it with the traceback, and the user reads a fixed sentence.
        return (
            f"model {error.model_key} could not be loaded (the bot owner can see why in the "
            "log); the next dream will try again"
        )
    if isinstance(error, OutOfMemory):
        return "the GPU ran out of memory, even in a lower VRAM mode; try again later"
    if isinstance(error, RenderCancelled):
        return "cancelled"
    if isinstance(error, PipelineError):
        return str(error)
    return GENERIC
