"""The one place where errors become what a user reads.

Only our own errors are shown as they are: their messages are written for a person. Anything
else (a library's ValueError, say) may carry internals or confusing text: it is logged with its
traceback by whoever caught it, and the user reads the generic sentence. The sentences
themselves are in placebot/texts.py.
"""

from __future__ import annotations

import logging

from pipeline.errors import ModelLoadError, OutOfMemory, PipelineError, RenderCancelled
from placebot import texts
from placebot.jobs.jobqueue import QueueRefusal
from placebot.texts import GENERIC

log = logging.getLogger(__name__)


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
        return texts.MODEL_NOT_LOADED.format(model_key=error.model_key)
    if isinstance(error, OutOfMemory):
        return texts.OUT_OF_MEMORY
    if isinstance(error, RenderCancelled):
        return texts.CANCELLED
    if isinstance(error, PipelineError):
        return str(error)
    return GENERIC
