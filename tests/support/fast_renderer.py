"""A stand-in for the Stable Diffusion renderer in load tests: same interface, no model.

Each "pass" is the previous frame with its colours rotated, so results are real, distinct
512x512 images, produced in milliseconds.
"""

from __future__ import annotations

from PIL import ImageChops

from pipeline.canvases import upscale
from pipeline.engine import input_tiles
from pipeline.results import RenderResult


class FastStore:
    def is_loaded(self, key: str) -> bool:
        return True

    def describe(self) -> dict:
        return {"loaded": ["1.4"], "device": "cpu", "vram_mode": "full"}

    def reload_lower(self, key: str) -> None:
        return None


class FastRenderer:
    def __init__(self):
        self.store = FastStore()
        self.jobs_rendered = 0

    def render(self, jobs, on_pass=None, should_stop=None):
        results = []
        for index, job in enumerate(jobs):
            tiles = input_tiles(job)
            result = RenderResult(job=job, tiles=tiles, frames=[upscale(tiles)],
                                  model_id="fast-fake")
            for number in range(1, job.passes + 1):
                frame = ImageChops.offset(result.frames[-1], 8 * number, 0)
                result.frames.append(frame)
                result.pass_seconds.append(0.001)
                if on_pass:
                    on_pass(index, number, list(result.frames))
            results.append(result)
        self.jobs_rendered += len(jobs)
        return results
