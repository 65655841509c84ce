"""Finished results kept in the data folder until Discord has them.

A result is written here before its upload starts and removed once Discord has confirmed it.
So an outage of Discord while a result uploads costs nothing (the upload is retried with
backoff, `retry_delays`), and neither does a restart: the bot started next delivers the kept
result instead of rendering the job again. The result itself is kept (its frames as PNG, no
loss), not its encoded files, so that a smaller server limit met later can still be honoured.

One folder per job, written under a temporary name and renamed into place: a kill mid-write
leaves no half entry that would be taken for a result.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from pipeline.outputs import png_bytes
from pipeline.params import RenderJob
from pipeline.results import RenderResult

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0  # then doubled for each refusal, up to MAX_RETRY_S
MAX_RETRY_S = 60.0
_FACTS = "result.json"
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def retry_delays() -> Iterator[float]:
    """Seconds to wait before each new try of an upload Discord refused (5xx, no connection)."""
    delay = FIRST_RETRY_S
    while True:
        yield delay
        delay = min(delay * 2, MAX_RETRY_S)


class Outbox:
    """Results waiting for Discord, by job id. Blocking file I/O: call it from a thread."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _entry(self, job_id: str) -> Path:
        if not _SAFE_ID.fullmatch(job_id):
            raise ValueError(f"job id {job_id!r} is not a plain id (letters, digits, _ and -)")
        return self.folder / job_id

    def keep(self, job_id: str, result: RenderResult) -> None:
        """Write the result; it stays until remove(job_id)."""
        entry = self._entry(job_id)
        partial = self.folder / f".{job_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        frames = [png_bytes(frame) for frame in result.frames]
        for number, data in enumerate(frames):
            (partial / f"frame-{number}.png").write_bytes(data)
        (partial / "tiles.png").write_bytes(png_bytes(result.tiles))
        facts = {"frames": len(frames), "pass_seconds": result.pass_seconds,
                 "model_id": result.model_id, "nsfw_flagged": result.nsfw_flagged,
                 "prompt_used": result.prompt_used}
        (partial / _FACTS).write_text(json.dumps(facts))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(partial, entry)

    def holds(self, job_id: str) -> bool:
        return (self._entry(job_id) / _FACTS).is_file()

    def load(self, job_id: str, job: RenderJob) -> RenderResult:
        """The kept result of `job` (its parameters come from the journal, not from here)."""
        entry = self._entry(job_id)
        facts = json.loads((entry / _FACTS).read_text())
        frames = [_image(entry / f"frame-{n}.png") for n in range(int(facts["frames"]))]
        return RenderResult(job=job, tiles=_image(entry / "tiles.png"), frames=frames,
                            pass_seconds=[float(s) for s in facts["pass_seconds"]],
                            model_id=str(facts["model_id"]),
                            nsfw_flagged=bool(facts["nsfw_flagged"]),
                            prompt_used=facts["prompt_used"])

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self._entry(job_id), ignore_errors=True)


def _image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.copy()  # read now: the entry may be removed while the image is in use
