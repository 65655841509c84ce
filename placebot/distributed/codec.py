"""What crosses Redis, and the checks on the way back: nothing read from Redis is trusted.

A job's render parameters are validated exactly as the bot validates a /place request; a
result's images travel as raw RGB bytes with their size, checked (count, size, byte length)
before an image is built from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from pipeline.params import RenderJob
from pipeline.results import RenderResult
from placebot.jobs.stored_job import InvalidJob
from placebot.jobs.stored_job import decode_render as decode_render  # the job records' own check

FRAME_SIDE = 512  # the engine's output size: nothing larger is accepted back
PREVIEW_SIDE = 192  # progress previews are shown this high; frames are shrunk to it to travel


class MalformedEntry(InvalidJob):
    """A stream entry that no reader can use (not UTF-8, a field missing, an unknown kind):
    it is moved to the dead-letter stream with this reason instead of being handled."""


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
EVENT_KINDS = ("loading", "started", "progress", "restarting", "done", "failed", "cancelled")
ENDINGS = ("done", "failed", "cancelled")


def _field(fields: Mapping[bytes, bytes], name: str) -> str:
    raw = fields.get(name.encode())
    if raw is None:
        raise MalformedEntry(f"it has no {name!r} field")
    try:
        return text(raw)
    except UnicodeDecodeError:
        raise MalformedEntry(f"its {name!r} field is not valid UTF-8 ({bytes(raw)[:40]!r})") \
            from None


def entry_job_id(fields: Mapping[bytes, bytes]) -> str:
    """The job id a stream entry names; MalformedEntry when it names none."""
    job_id = _field(fields, "job")
    if not JOB_ID.fullmatch(job_id):
        raise MalformedEntry(f"its job id {job_id[:80]!r} is not an id (1-64 letters, digits, "
                             "_ or -)")
    return job_id


@dataclass(frozen=True)
class Event:
    """One entry of the events stream, its envelope checked: whose, what, and its place in
    the job's own sequence of events (1, 2, 3 ...: applied only if newer than the last)."""

    entry_id: str
    job_id: str
    kind: str
    seq: int
    fields: Mapping[bytes, bytes]

    @property
    def ending(self) -> bool:
        return self.kind in ENDINGS

    @property
    def error(self) -> str:
        """A `failed` event's reason, as the worker wrote it for the user."""
        return text(self.fields.get(b"error"))


def parse_event(entry_id: str, fields: Mapping[bytes, bytes]) -> Event:
    """The event in an entry of the events stream; MalformedEntry when it is not one."""
    job_id = entry_job_id(fields)
    kind = _field(fields, "kind")
    if kind not in EVENT_KINDS:
        raise MalformedEntry(f"its kind {kind[:40]!r} is none of {', '.join(EVENT_KINDS)}")
    seq = _field(fields, "seq")
    if not re.fullmatch(r"[0-9]{1,18}", seq) or int(seq) < 1:
        raise MalformedEntry(f"its sequence number {seq[:40]!r} is not a whole number >= 1")
    if kind == "failed":
        _field(fields, "error")
    return Event(entry_id, job_id, kind, int(seq), fields)


def encode_render(job: RenderJob) -> str:
    return json.dumps(job.to_dict(), sort_keys=True)


def _raw(image: Image.Image) -> tuple[bytes, list[int]]:
    """An image's RGB pixels and its size: a copy, no compression (the bot re-encodes the
    result for Discord anyway, and PNG here cost more than everything else a job does)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.tobytes(), [rgb.width, rgb.height]


def _image(data: bytes, size, largest: int) -> Image.Image:
    """Pixels read back, checked against their stated size before anything is built."""
    width, height = (int(side) for side in size)
    if not (0 < width <= largest and 0 < height <= largest):
        raise InvalidJob(f"an image of {width}x{height} (each side 1 to {largest} allowed)")
    if len(data) != width * height * 3:
        raise InvalidJob(f"an image of {width}x{height} has {len(data)} bytes, "
                         f"not {width * height * 3}")
    return Image.frombytes("RGB", (width, height), data)


def _frames(images: list[Image.Image]) -> tuple[dict[str, bytes | str], list[list[int]]]:
    fields: dict[str, bytes | str] = {}
    sizes = []
    for index, image in enumerate(images):
        fields[f"frame{index}"], size = _raw(image)
        sizes.append(size)
    return fields, sizes


def encode_result(result: RenderResult) -> dict[str, bytes | str]:
    fields, sizes = _frames(result.frames)
    fields["tiles"], tiles_size = _raw(result.tiles)
    meta = {"pass_seconds": result.pass_seconds, "model_id": result.model_id,
            "nsfw": result.nsfw_flagged, "frames": len(result.frames), "sizes": sizes,
            "tiles_size": tiles_size, "prompt_used": result.prompt_used}
    return {"meta": json.dumps(meta), **fields}


def decode_result(fields: Mapping[bytes, bytes], job: RenderJob) -> RenderResult:
    """The RenderResult of `job` from an event's fields: one input frame plus one a pass."""
    try:
        meta = json.loads(text(fields[b"meta"]))
        count = int(meta["frames"])
        if count != job.passes + 1 or len(meta["sizes"]) != count:
            raise InvalidJob(f"the result has {count} frames, the job {job.passes} passes")
        frames = [_image(fields[f"frame{i}".encode()], meta["sizes"][i], FRAME_SIDE)
                  for i in range(count)]
        seconds = [float(s) for s in meta["pass_seconds"]]
        prompt_used = meta.get("prompt_used")  # absent from a worker of an older version
        if prompt_used is not None and not isinstance(prompt_used, str):
            raise InvalidJob(f"the result's prompt_used is {prompt_used!r}, not text")
        return RenderResult(job=job, tiles=_image(fields[b"tiles"], meta["tiles_size"],
                                                  FRAME_SIDE),
                            frames=frames, pass_seconds=seconds, model_id=str(meta["model_id"]),
                            nsfw_flagged=bool(meta["nsfw"]), prompt_used=prompt_used)
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidJob(f"the result is malformed ({exc!r})") from None


def encode_progress(pass_number: int, frames: list[Image.Image]) -> dict[str, bytes | str]:
    previews = [frame if frame.height <= PREVIEW_SIDE else
                frame.resize((frame.width * PREVIEW_SIDE // frame.height, PREVIEW_SIDE))
                for frame in frames]
    fields, sizes = _frames(previews)
    return {"pass": str(pass_number), "sizes": json.dumps(sizes), **fields}


def needs_shrinking(frames: list[Image.Image]) -> bool:
    """Whether encode_progress has real work to do (resizing), worth a thread."""
    return any(frame.height > PREVIEW_SIDE for frame in frames)


def decode_progress(fields: Mapping[bytes, bytes], job: RenderJob) -> tuple[int, list]:
    try:
        number, sizes = int(fields[b"pass"]), json.loads(text(fields[b"sizes"]))
        if not (1 <= number <= job.passes and len(sizes) == number + 1):
            raise InvalidJob(f"progress of pass {number} with {len(sizes)} frames")
        return number, [_image(fields[f"frame{i}".encode()], size, FRAME_SIDE)
                        for i, size in enumerate(sizes)]
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidJob(f"the progress is malformed ({exc!r})") from None
