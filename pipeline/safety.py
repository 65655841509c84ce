"""Stable Diffusion's NSFW safety checker, loaded on its own, lazily, and run image by image.

The pipeline is always loaded without its checker (pipeline.models): whether a job is checked
is the job's own setting (RenderJob.safety_check, under PLACE_SAFETY_CHECKER=auto), and jobs
checked and unchecked share a batch. After each pass the engine hands the batch's images to
SafetyChecker.screen with the jobs that want it: only those images go through the checker,
and a flagged one is replaced by a black image, as diffusers' pipeline does it.

The checker is the model repository's own (`safety_checker/`, with `feature_extractor/` for
its input), a CLIP ViT-L/14 image tower: about 0.6 GB in fp16. Where it runs:

- `gpu`: beside the model on the GPU (`full` mode, which has the room);
- `offload`: its weights stay in CPU memory and stream to the GPU layer by layer while it
  runs (diffusers' group offloading), so `low` keeps its 3 GiB and `minimal` its 1 GiB;
- `cpu`: on the CPU in fp32 (a CPU device, or by choice: bench/README.md compares them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

log = logging.getLogger(__name__)

PLACEMENTS = ("gpu", "offload", "cpu")
# Where the checker runs in each VRAM mode on a GPU (a CPU device runs it on the CPU).
PLACEMENT_BY_MODE = {"full": "gpu", "low": "offload", "minimal": "offload"}
SUBFOLDER = "safety_checker"
PROCESSOR_SUBFOLDER = "feature_extractor"


def placement_for(device: str, vram_mode: str, chosen: str | None = None) -> str:
    """Where the checker runs: `chosen` if given (on a GPU), else by the VRAM mode."""
    if device != "cuda":
        return "cpu"
    if chosen is not None:
        if chosen not in PLACEMENTS:
            raise ValueError(f"checker placement {chosen!r} is unknown; choose one of "
                             f"{', '.join(PLACEMENTS)}")
        return chosen
    return PLACEMENT_BY_MODE[vram_mode]


@dataclass
class SafetyChecker:
    """A loaded checker and the processor that prepares its input."""

    model: torch.nn.Module  # diffusers' StableDiffusionSafetyChecker
    processor: object  # transformers' CLIPImageProcessor
    device: str  # where its input goes (the GPU also for `offload`)
    dtype: torch.dtype
    placement: str

    def screen(self, images: Sequence[Image.Image],
               wanted: Sequence[bool]) -> tuple[list[Image.Image], list[bool]]:
        """The images with each checked and flagged one replaced by black, and the flags.
        Only the images whose `wanted` is true go through the checker (the others' flags are
        False: they were not looked at)."""
        chosen = [index for index, want in enumerate(wanted) if want]
        flags = [False] * len(images)
        screened = list(images)
        if not chosen:
            return screened, flags
        for index, flagged in zip(chosen, self.flag([images[i] for i in chosen]), strict=True):
            if flagged:
                screened[index] = Image.new("RGB", images[index].size)  # black
                flags[index] = True
        return screened, flags

    @torch.inference_mode()
    def flag(self, images: Sequence[Image.Image]) -> list[bool]:
        """The checker's verdict on each image (True: NSFW concepts found)."""
        features = self.processor(list(images), return_tensors="pt")  # type: ignore[operator]
        clip_input = features.pixel_values.to(self.device, self.dtype)
        # diffusers' own forward, thresholds and all; it blacks out its copies of the flagged
        # images, which are not used: screen() replaces the flagged images itself
        copies = [_zeros_like(image) for image in images]
        _, flags = self.model(clip_input=clip_input, images=copies)
        return [bool(flag) for flag in flags]


def _zeros_like(image: Image.Image):
    import numpy as np

    return np.zeros((image.height, image.width, 3), dtype=np.uint8)


def load_safety_checker(model_id: str, device: str, vram_mode: str, *,
                        placement: str | None = None) -> SafetyChecker:
    """The checker of the model at `model_id` (a Hub id or a local diffusers folder), placed
    for `device` and `vram_mode` (placement_for). Raises what loading raises (OSError for
    missing files): the caller words it for the owner."""
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPImageProcessor

    where = placement_for(device, vram_mode, placement)
    on_gpu = where != "cpu"
    dtype = torch.float16 if on_gpu else torch.float32
    processor = CLIPImageProcessor.from_pretrained(model_id, subfolder=PROCESSOR_SUBFOLDER)
    # the files follow the device (a GPU machine fetched the fp16 ones), the dtype where it runs
    model = _from_pretrained(StableDiffusionSafetyChecker, model_id, dtype,
                             fp16=device == "cuda")
    model.eval()
    if where == "gpu":
        model.to("cuda")
    elif where == "offload":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(model, onload_device=torch.device("cuda"),
                               offload_type="leaf_level", use_stream=True)
    log.info("safety checker of %s loaded (%s, %s)", model_id, where,
             str(dtype).removeprefix("torch."))
    return SafetyChecker(model, processor, "cuda" if on_gpu else "cpu", dtype, where)


def _from_pretrained(cls, model_id: str, dtype: torch.dtype, *, fp16: bool):
    """The checker's weights: the fp16 files where the repository publishes them (what
    `python -m pipeline.download` fetched for a GPU), else the full-precision ones."""
    if fp16:
        try:
            return cls.from_pretrained(model_id, subfolder=SUBFOLDER, dtype=dtype,
                                       variant="fp16")
        except OSError as exc:  # no fp16 files (a local folder saved without the variant)
            if "fp16" not in str(exc):
                raise
    return cls.from_pretrained(model_id, subfolder=SUBFOLDER, dtype=dtype)
