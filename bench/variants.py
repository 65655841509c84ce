"""Switching one loaded pipeline between variants of pipeline/accel.py, for the bench only.

The product installs its speed-ups once per loaded model and never takes them back; the bench
compares variants (no speed-ups, UNet layouts) on one pipeline, so it owns the undo: the
methods accel.py replaces are instance attributes (accel.PATCHED), and deleting them gives the
class's plain methods back.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pipeline.accel import Acceleration

# id(pipe) -> what the bench's accelerate() returned for it (None where it installed nothing)
_installed: dict[int, Acceleration | None] = {}
# pipeline.accel.accelerate as the product defines it, kept by the first install_accel_hook
# before its wrapper replaces the module attribute (so that every wrapper wraps the product's)
_product_accelerate: Callable[..., Acceleration | None] | None = None


def install_accel_hook(options: dict | None) -> None:
    """Make ModelStore's loads install accel with `options` (None: install nothing).

    models._place_on_device calls pipeline.accel.accelerate by its module attribute, so this
    wraps that attribute; calling it again replaces the options.
    """
    global _product_accelerate
    import pipeline.accel as accel

    original = _product_accelerate or accel.accelerate
    _product_accelerate = original

    def accelerate(pipe: Any, device: str, vram_mode: str,
                   **kwargs: Any) -> Acceleration | None:
        if options is None:
            return None
        installed = original(pipe, device, vram_mode,
                             **{**kwargs, "allow_cpu": True, **options})
        _installed[id(pipe)] = installed
        return installed

    accel.accelerate = accelerate


def strip_acceleration(pipe) -> None:
    """Give `pipe` back its plain diffusers methods, contiguous UNet and unsliced VAE."""
    from pipeline.accel import PATCHED

    installed = _installed.pop(id(pipe), None)
    if installed is not None:
        for graphed in installed.graphs.values():
            graphed.compiler = None  # no new requests; a compile under way finishes unused
    for path, name in PATCHED:
        owner = pipe
        for part in path.split("."):
            owner = getattr(owner, part)
        owner.__dict__.pop(name, None)
    pipe.unet.to(memory_format=torch.contiguous_format)
    pipe.vae.disable_slicing()


def set_variant(model, device: str, mode: str, options: dict | None) -> Acceleration | None:
    """Strip what an earlier variant installed on a loaded model (pipeline.models.LoadedModel),
    then install `options` (None: nothing).

    The model's own record of its speed-ups is replaced too: it holds the graphs and the
    channels_last twin of the UNet, which would otherwise stay on the GPU beside the new ones.
    """
    import pipeline.accel as accel

    pipe = model.pipe
    strip_acceleration(pipe)
    model.acceleration = None
    gc.collect()  # the old graphs and twin, so that the next variant's peak memory is its own
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if options is None:
        return None
    original = _product_accelerate or accel.accelerate
    installed = original(pipe, device, mode, allow_cpu=True, **options)
    _installed[id(pipe)] = installed
    model.acceleration = installed
    return installed
