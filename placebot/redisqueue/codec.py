"""What crosses Redis, and the checks on the way back: nothing read from Redis is trusted.

A job's render parameters are validated exactly as the bot validates a /place request; a
result's images are checked for count and size before they are decoded.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

from PIL import Image

from pipeline.engine import RenderResult
from pipeline.errors import PipelineError
from pipeline.params import RenderJob, RenderRequest

FRAME_SIDE = 512  # the engine's output size: nothing larger is accepted back
PREVIEW_SIDE = 192  # progress previews are shown this high; frames are shrunk to it to travel
PNG_LEVEL = 1  # lossless and fast: the bot re-encodes the result for Discord anyway


class InvalidJob(PipelineError):
    """A job or result read from Redis is malformed; the message says what was wrong."""


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def encode_render(job: RenderJob) -> str:
    return json.dumps(job.to_dict(), sort_keys=True)


def decode_render(raw: bytes | str) -> RenderJob:
    """The RenderJob in a job record, validated as a /place request is."""
    try:
        job = RenderJob.from_dict(json.loads(text(raw)))
        RenderRequest(model=job.model, canvas=job.crop.canvas, x=job.crop.x, y=job.crop.y,
                      seed=job.seed, strength=job.strength, steps=job.steps,
                      recursions=job.passes - 1).validate()
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidJob(f"its parameters are invalid ({exc})") from None
    return job


def decode_context(raw: bytes | str) -> dict:
    try:
        context = json.loads(text(raw))
    except ValueError as exc:
        raise InvalidJob(f"its delivery record is invalid ({exc})") from None
    if not isinstance(context, dict):
        raise InvalidJob("its delivery record is not a mapping")
    return context


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def _image(data: bytes, largest: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width > largest or image.height > largest:  # known before decoding pixels
            raise InvalidJob(f"an image of {image.width}x{image.height} exceeds {largest}")
        image.load()
    except (OSError, SyntaxError) as exc:
        raise InvalidJob(f"an image does not decode ({exc})") from None
    return image.convert("RGB")


def encode_result(result: RenderResult) -> dict[str, bytes | str]:
    meta = {"pass_seconds": result.pass_seconds, "model_id": result.model_id,
            "nsfw": result.nsfw_flagged, "frames": len(result.frames)}
    fields: dict[str, bytes | str] = {"meta": json.dumps(meta), "tiles": _png(result.tiles)}
    for index, frame in enumerate(result.frames):
        fields[f"frame{index}"] = _png(frame)
    return fields


def decode_result(fields: Mapping[bytes, bytes], job: RenderJob) -> RenderResult:
    """The RenderResult of `job` from an event's fields: one input frame plus one a pass."""
    try:
        meta = json.loads(text(fields[b"meta"]))
        count = int(meta["frames"])
        if count != job.passes + 1:
            raise InvalidJob(f"the result has {count} frames, the job {job.passes} passes")
        frames = [_image(fields[f"frame{i}".encode()], FRAME_SIDE) for i in range(count)]
        seconds = [float(s) for s in meta["pass_seconds"]]
        return RenderResult(job=job, tiles=_image(fields[b"tiles"], FRAME_SIDE), frames=frames,
                            pass_seconds=seconds, model_id=str(meta["model_id"]),
                            nsfw_flagged=bool(meta["nsfw"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidJob(f"the result is malformed ({exc!r})") from None


def encode_progress(pass_number: int, frames: list[Image.Image]) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {"pass": str(pass_number), "frames": str(len(frames))}
    for index, frame in enumerate(frames):
        if frame.height > PREVIEW_SIDE:
            frame = frame.resize((frame.width * PREVIEW_SIDE // frame.height, PREVIEW_SIDE))
        fields[f"frame{index}"] = _png(frame)
    return fields


def decode_progress(fields: Mapping[bytes, bytes], job: RenderJob) -> tuple[int, list]:
    try:
        number, count = int(fields[b"pass"]), int(fields[b"frames"])
        if not (1 <= number <= job.passes and count == number + 1):
            raise InvalidJob(f"progress of pass {number} with {count} frames")
        return number, [_image(fields[f"frame{i}".encode()], FRAME_SIDE) for i in range(count)]
    except (KeyError, ValueError) as exc:
        raise InvalidJob(f"the progress is malformed ({exc!r})") from None
