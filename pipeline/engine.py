"""The recursion: crop → 512 upscale → img2img, each output the next input, for a batch of jobs.

Jobs that share a batch key (model, steps, strength, passes, guidance) run in one pipeline call
per pass; each job keeps its own torch.Generator, so its images are those it would get alone.

Without a prompt a job runs as the original did, on the empty prompt's embedding with
classifier-free guidance off (with an empty prompt it computes nothing). With a prompt,
guidance is on at the job's scale, against the empty prompt as the unconditional side; the
prompts of one batch may differ, each job's row of the embeddings being its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from pipeline.canvases import crop_canvas, upscale
from pipeline.errors import OutOfMemory, RenderCancelled
from pipeline.image_source import tiles_from_text
from pipeline.models import MAX_UNET_BATCH, LoadedModel, ModelStore
from pipeline.params import NO_GUIDANCE, RenderJob
from pipeline.prompts import encode_prompts
from pipeline.results import RenderResult

log = logging.getLogger(__name__)

# on_pass(job_index_in_batch, pass_number (1-based), images so far (input first))
PassCallback = Callable[[int, int, list[Image.Image]], None]
# should_stop() → a reason string to stop the whole batch, or None to go on
StopCheck = Callable[[], "str | None"]


def input_tiles(job: RenderJob) -> Image.Image:
    """What the job dreams on, at native resolution: its canvas crop, or its picture's square."""
    # a picture job always has its tiles (RenderJob checks): a canvas crop has none
    return tiles_from_text(job.tiles) if job.tiles is not None else crop_canvas(job.crop)


def jobs_per_call(jobs: int, guidance: float, vram_mode: str) -> int:
    """How many of a batch's jobs one pipeline call may take in this VRAM mode.

    Guidance doubles the UNet's batch, so a prompted batch that the worker took whole (up to
    PLACE_MAX_BATCH jobs) may not fit the bound of `low` or `minimal` in one call."""
    limit = MAX_UNET_BATCH.get(vram_mode)
    if limit is None:
        return jobs
    images_per_job = 2 if guidance > NO_GUIDANCE else 1
    return max(1, min(jobs, limit // images_per_job))


def _shifted(on_pass: PassCallback | None, first: int) -> PassCallback | None:
    """on_pass for a part of a batch that starts at index `first` of the whole."""
    if on_pass is None:
        return None
    return lambda index, number, frames: on_pass(first + index, number, frames)


class Renderer:
    """Runs jobs on models from a ModelStore. Blocking: call it from a worker thread."""

    def __init__(self, store: ModelStore):
        self.store = store

    def render(
        self,
        jobs: Sequence[RenderJob],
        *,
        on_pass: PassCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[RenderResult]:
        if not jobs:
            return []
        keys = {job.batch_key for job in jobs}
        if len(keys) != 1:
            raise ValueError(
                f"jobs in one batch must share model/steps/strength/passes/guidance: {keys}")
        model = self.store.get(jobs[0].model)
        size = jobs_per_call(len(jobs), jobs[0].guidance, model.vram_mode)
        if size < len(jobs):  # a memory-bounded mode: the batch runs in parts, one after another
            return [result for first in range(0, len(jobs), size)
                    for result in self.render(jobs[first:first + size],
                                              on_pass=_shifted(on_pass, first),
                                              should_stop=should_stop)]
        results = [self._start(job, model) for job in jobs]
        conditioning = self._conditioning(model, jobs, results)
        # A CPU generator gives the same noise on any device, and one per job keeps each
        # job's numbers independent of its neighbours in the batch.
        generators = [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
        for number in range(1, jobs[0].passes + 1):
            started = time.perf_counter()
            images, flagged = self._one_pass(model, jobs[0], results, generators, should_stop,
                                             conditioning)
            elapsed = time.perf_counter() - started
            for index, (result, image) in enumerate(zip(results, images, strict=True)):
                result.frames.append(image)
                result.pass_seconds.append(elapsed)
                result.nsfw_flagged |= flagged[index]
                if on_pass is not None:
                    on_pass(index, number, list(result.frames))
        return results

    @staticmethod
    def _start(job: RenderJob, model: LoadedModel) -> RenderResult:
        tiles = input_tiles(job)
        return RenderResult(job=job, tiles=tiles, frames=[upscale(tiles)], model_id=model.model_id)

    @staticmethod
    def _conditioning(model: LoadedModel, jobs: Sequence[RenderJob], results) -> dict:
        """The pipeline's prompt arguments for this batch, encoded once for all its passes."""
        batch = len(jobs)
        if not any(job.prompt for job in jobs):  # the original's call, unchanged
            return {"prompt_embeds": model.empty_prompt_embeds.expand(batch, -1, -1),
                    "guidance_scale": NO_GUIDANCE}
        encoded = encode_prompts(model.pipe, model.device, [job.prompt or "" for job in jobs],
                                 model.empty_prompt_embeds)
        for result, used in zip(results, encoded.used, strict=True):
            result.prompt_used = used
        return {"prompt_embeds": encoded.embeds,
                # the unconditional side of guidance: the empty prompt, as diffusers' default
                "negative_prompt_embeds": model.empty_prompt_embeds.expand(batch, -1, -1),
                "guidance_scale": jobs[0].guidance}

    @staticmethod
    def _one_pass(model, job, results, generators, should_stop, conditioning):
        stop_reason: list[str] = []

        def check_stop(pipe, step, timestep, tensors):
            reason = should_stop() if should_stop else None
            if reason:
                stop_reason.append(reason)
                pipe._interrupt = True  # diffusers' documented way to stop between steps
            return tensors

        if should_stop and (reason := should_stop()):
            raise RenderCancelled(reason)
        batch = len(results)
        try:
            with torch.inference_mode():
                output = model.pipe(
                    **conditioning,
                    image=[result.frames[-1] for result in results],
                    strength=job.strength,
                    num_inference_steps=job.steps,
                    generator=generators,
                    output_type="pil",
                    callback_on_step_end=check_stop,
                )
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(model.vram_mode, str(exc).splitlines()[0]) from exc
        if stop_reason:
            raise RenderCancelled(stop_reason[0])
        flagged = output.nsfw_content_detected or [False] * batch
        return output.images, flagged
