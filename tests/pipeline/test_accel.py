"""pipeline/accel.py on the CPU: the check of diffusers' internals and the byte-exact parts.

The CUDA graphs and the UNet layouts need a GPU; bench/run.py measures them (its t5 section
compares their images with plain diffusers').
"""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import accel, diffusers_internals
from pipeline.canvases import crop_canvas, upscale
from pipeline.params import Crop


@pytest.fixture
def pipe(tiny_model_dir):
    """A pipeline of its own (the session's shared store must stay plain)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    loaded = StableDiffusionImg2ImgPipeline.from_pretrained(
        str(tiny_model_dir), safety_checker=None, requires_safety_checker=False
    )
    loaded.set_progress_bar_config(disable=True)
    return loaded


def _run(pipe, image, seed=5):
    embeds = torch.zeros(1, 77, pipe.text_encoder.config.hidden_size)
    with torch.inference_mode():
        return pipe(prompt_embeds=embeds, image=image, strength=0.5, num_inference_steps=4,
                    guidance_scale=1.0, generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="pil").images[0]


def _changed_patch_targets(pipe) -> list[str]:
    return [f"{path}.{name}" for path, name in accel.PATCHED
            if name in diffusers_internals._lookup(pipe, path).__dict__]


def test_this_diffusers_has_every_internal_accel_relies_on(pipe):
    """The installed diffusers matches every name and signature accel.py relies on."""
    assert diffusers_internals.missing(pipe) == []


def test_a_changed_signature_is_named(pipe):
    """A diffusers method whose parameters changed is reported with what it takes now."""
    pipe.scheduler.set_timesteps = lambda steps, where=None: None
    [problem] = diffusers_internals.missing(pipe)
    assert problem.startswith("scheduler.set_timesteps takes ('steps', 'where')")


def test_a_missing_internal_turns_the_speedups_off_and_leaves_the_pipeline_plain(
    pipe, caplog, monkeypatch
):
    """When diffusers changed an internal, accelerate() logs it and patches nothing."""
    from diffusers.image_processor import VaeImageProcessor

    monkeypatch.delattr(VaeImageProcessor, "_denormalize_conditionally")  # a future diffusers
    with caplog.at_level(logging.WARNING, logger="pipeline.accel"):
        installed = accel.accelerate(pipe, "cpu", "full", allow_cpu=True)
    assert installed is None
    assert "image_processor._denormalize_conditionally is gone" in caplog.text
    assert _changed_patch_targets(pipe) == []


def test_nothing_is_installed_on_the_cpu_unless_asked(pipe):
    """The bot's CPU path stays plain diffusers: accelerate() returns None and patches nothing."""
    assert accel.accelerate(pipe, "cpu", "full") is None
    assert _changed_patch_targets(pipe) == []


def test_the_cpu_side_speedups_change_no_pixel(pipe):
    """CPU timesteps and the tensor image conversions give the plain pipeline's bytes."""
    image = upscale(crop_canvas(Crop("2022", 300, 400)))
    plain = _run(pipe, image)
    installed = accel.accelerate(pipe, "cpu", "full", allow_cpu=True)
    assert installed is not None and installed.graphs == {}
    assert set(_changed_patch_targets(pipe)) == {
        "scheduler.set_timesteps", "image_processor.preprocess", "image_processor.postprocess"}
    fast = _run(pipe, image)
    assert np.array_equal(np.asarray(fast), np.asarray(plain))


def test_fast_image_conversion_falls_back_for_other_inputs(pipe):
    """A greyscale image takes diffusers' own conversion, with its result."""
    grey = Image.new("L", (64, 64), 100)
    plain = pipe.image_processor.preprocess(grey)
    accel.accelerate(pipe, "cpu", "full", allow_cpu=True)
    assert torch.equal(pipe.image_processor.preprocess(grey), plain)


def test_an_unknown_unet_layout_is_refused(pipe):
    """A layout name outside UNET_LAYOUTS is an error naming the choices."""
    with pytest.raises(ValueError, match="channels_last"):
        accel.accelerate(pipe, "cpu", "full", unet_layout="nhwc", allow_cpu=True)
