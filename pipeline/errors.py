"""Domain errors of the image engine. Each message is written for a person to read."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the engine raises on purpose."""


class ParamError(PipelineError, ValueError):
    """A render parameter is out of its bounds or malformed; the message names the bad value
    and what is allowed, so it can be shown to the person who typed it. Also a ValueError:
    it is one, and argument parsers treat it as such."""


class ModelLoadError(PipelineError):
    """A model could not be loaded; the next job may try again."""

    def __init__(self, model_key: str, model_id: str, cause: str):
        super().__init__(f"could not load model {model_key} ({model_id}): {cause}")
        self.model_key = model_key
        self.model_id = model_id
        self.cause = cause


class RenderCancelled(PipelineError):
    """The render was stopped on request (cancel, timeout or shutdown) between two steps."""

    def __init__(self, reason: str = "cancelled"):
        super().__init__(f"render stopped: {reason}")
        self.reason = reason


class OutOfMemory(PipelineError):
    """The GPU ran out of memory in the given VRAM mode."""

    def __init__(self, vram_mode: str, detail: str):
        super().__init__(f"the GPU ran out of memory in VRAM mode {vram_mode!r}: {detail}")
        self.vram_mode = vram_mode
