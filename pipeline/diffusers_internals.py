"""Every diffusers internal that pipeline/accel.py relies on, named once, and a check of them.

accel.py replaces a few methods on a loaded pipeline's objects (on the instances, never on the
classes) and calls one private helper. That works only while diffusers keeps the names and the
call signatures below; none of them is public API, so a diffusers upgrade may change any of
them. `missing(pipe)` lists what no longer matches, and accel.accelerate() then installs
nothing and says so in the log: the plain pipeline is slower but computes the same images.

accel.py reaches diffusers only through this module (the import of UNet2DConditionOutput and
the call of `_denormalize_conditionally` live here).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

# (where, the parameters it must take first, in order): the wrappers in accel.py take these
# arguments by position and pass them on, so a renamed or reordered parameter breaks them.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "unet.forward": ("sample", "timestep", "encoder_hidden_states"),
    "vae.encoder.forward": ("sample",),
    "vae.decoder.forward": ("sample",),
    "scheduler.set_timesteps": ("num_inference_steps", "device"),
    "image_processor.preprocess": ("image", "height", "width", "resize_mode", "crops_coords"),
    "image_processor.postprocess": ("image", "output_type", "do_denormalize"),
    "image_processor._denormalize_conditionally": ("images", "do_denormalize"),
}
# keyword parameters a wrapper passes by name
KEYWORDS: dict[str, tuple[str, ...]] = {"unet.forward": ("return_dict",)}
# attributes read: the weights whose address tells a CUDA graph that the model moved, the VAE's
# slicing switch and the image processor's settings that decide the fast path
ATTRIBUTES: tuple[str, ...] = (
    "unet.conv_in.weight",
    "vae.encoder.conv_in.weight",
    "vae.decoder.conv_in.weight",
    "vae.use_slicing",
    "vae.enable_slicing",
    "image_processor.config.do_normalize",
    "image_processor.config.do_binarize",
    "image_processor.config.do_convert_grayscale",
    "image_processor.config.vae_scale_factor",
)
UNET_OUTPUT = "diffusers.models.unets.unet_2d_condition.UNet2DConditionOutput"


def _lookup(pipe, dotted: str):
    """pipe.<dotted>, where `config.x` reads a diffusers config (a dict with attribute access)."""
    value = pipe
    for name in dotted.split("."):
        value = value[name] if isinstance(value, dict) else getattr(value, name)
    return value


def _parameters(fn: Callable) -> list[str]:
    return [
        p.name for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def missing(pipe) -> list[str]:
    """What accel.py needs from this pipeline and diffusers but does not find; [] when all is
    there. Each entry names the internal and what is wrong with it."""
    problems = []
    for dotted in ATTRIBUTES:
        try:
            _lookup(pipe, dotted)
        except (AttributeError, KeyError):
            problems.append(f"{dotted} is gone")
    for dotted, expected in SIGNATURES.items():
        try:
            names = _parameters(_lookup(pipe, dotted))
        except (AttributeError, KeyError):
            problems.append(f"{dotted} is gone")
            continue
        except (TypeError, ValueError):  # no signature to read
            problems.append(f"{dotted} has no readable signature")
            continue
        if tuple(names[: len(expected)]) != expected:
            problems.append(f"{dotted} takes {tuple(names)}, not {expected} first")
        absent = [name for name in KEYWORDS.get(dotted, ()) if name not in names]
        if absent:
            problems.append(f"{dotted} lacks the keyword {', '.join(absent)}")
    try:
        unet_output_class()
    except (ImportError, AttributeError):
        problems.append(f"{UNET_OUTPUT} is gone")
    return problems


def unet_output_class() -> type:
    """What UNet2DConditionModel.forward returns with return_dict=True."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    return UNet2DConditionOutput


def denormalize(processor, images, do_denormalize):
    """The image processor's own [-1, 1] → [0, 1] step, per image as postprocess() does it."""
    return processor._denormalize_conditionally(images, do_denormalize)
