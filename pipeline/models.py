"""Loading Stable Diffusion img2img pipelines lazily, once, in the VRAM mode that fits the GPU.

VRAM modes (PLACE_VRAM_MODE):
- full:    everything on the GPU.
- low:     the empty prompt is encoded once and the text encoder leaves the GPU (it is never
           needed again); the VAE decodes a batch one image at a time; the process's CUDA
           allocator is capped at 3 GiB, so it hands back cached blocks instead of growing.
           Same speed as full; a job, or a batch of 4, stays within 3 GiB.
- minimal: diffusers' group offloading, layer by layer, the next layer's weights copied on a
           side stream while one computes. About 12x slower than full (18 s a job on an
           H100); stays near 1 GiB.
- auto:    picks by the GPU's free memory.
Attention slicing (the original's "required to fit in 4GB") is slower than PyTorch's SDPA
and is not needed below 3 GiB any more, so no mode uses it.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from pipeline.config import COMPILE_CHOICES, DEVICES, SAFETY_CHOICES, VRAM_MODES, model_variable
from pipeline.errors import ModelLoadError
from pipeline.params import RenderJob
from pipeline.safety import SafetyChecker, load_safety_checker

log = logging.getLogger(__name__)

GIB = 1024**3
FULL_MODE_MIN_FREE = 10 * GIB  # room for batches of several jobs at full speed
LOW_MODE_MIN_FREE = 3.5 * GIB
LOW_MODE_CAP = 3 * GIB  # what `low` promises; peak allocated is 2.5 GiB with a batch of 4
# The most images one UNet call may take in a mode that promises a memory bound: `low`'s 3 GiB
# hold a batch of 4 (measured: 2.99 GiB reserved on an H100), and a prompted job counts twice
# (guidance runs the UNet on the prompt and on the empty prompt). `minimal` offloads weights,
# not activations, so the same bound keeps its peak near 1 GiB. `full` has no such bound.
MAX_UNET_BATCH = {"low": 4, "minimal": 4}


def resolve_device(requested: str) -> str:
    """'auto' → cuda when a GPU is usable, else cpu. 'cuda' without one is an error. A cuda:N
    setting arrives here as 'cuda': pipeline.config.pin_gpu turned it into this process's only
    GPU before CUDA started."""
    if requested not in DEVICES:
        raise ValueError(f"device {requested!r} is unknown; choose one of {', '.join(DEVICES)} "
                         "(cuda:N is pinned with pipeline.config.pin_gpu first)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("PLACE_DEVICE is cuda but no CUDA GPU is available; use auto or cpu")
    return requested


NO_VRAM = "none (CPU)"  # what a status shows as the VRAM mode of a CPU render


def choose_vram_mode(requested: str, device: str, free_bytes: int | None = None) -> str:
    """The VRAM mode to load in. On the CPU there is no VRAM: always 'full'."""
    if device != "cuda":
        return "full"
    if requested != "auto":
        if requested not in VRAM_MODES:
            raise ValueError(f"VRAM mode {requested!r} is unknown; choose auto, {VRAM_MODES}")
        return requested
    if free_bytes is None:
        free_bytes, _total = torch.cuda.mem_get_info()
    if free_bytes >= FULL_MODE_MIN_FREE:
        return "full"
    if free_bytes >= LOW_MODE_MIN_FREE:
        return "low"
    return "minimal"


def lower_vram_mode(mode: str) -> str | None:
    """The next mode down, for a retry after running out of memory; None below minimal."""
    order = list(VRAM_MODES)
    index = order.index(mode)
    return order[index + 1] if index + 1 < len(order) else None


@dataclass
class LoadedModel:
    """A ready pipeline and the embedding of the empty prompt, computed once at load."""

    key: str
    model_id: str
    pipe: object  # diffusers.StableDiffusionImg2ImgPipeline
    empty_prompt_embeds: torch.Tensor
    device: str
    dtype: torch.dtype
    vram_mode: str
    acceleration: object = None  # pipeline.accel.Acceleration, where speed-ups were installed
    checker: SafetyChecker | None = None  # loaded by the first job that is checked


# How a Hub that cannot be reached shows up below diffusers' OSError: builtin socket errors, the
# HTTP clients' connection errors (httpx, requests) and huggingface_hub's offline mode.
_CONNECTION_ERRORS = {"ConnectError", "ConnectTimeout", "ConnectionError", "OfflineModeIsEnabled"}


def _hub_unreachable(exc: BaseException) -> BaseException | None:
    """The connection error behind `exc`, if loading failed because the Hub was unreachable."""
    seen = set()
    link: BaseException | None = exc  # walks the chain of causes down from exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ConnectionError | TimeoutError | socket.gaierror) or \
                type(link).__name__ in _CONNECTION_ERRORS:
            return link
        link = link.__cause__ or link.__context__
    return None


def explain_load_failure(key: str, model_id: str, exc: BaseException) -> str:
    """What went wrong, in words an owner can act on. diffusers says of an unreachable Hub that
    "outgoing traffic has been disabled", which the owner never did."""
    unreachable = _hub_unreachable(exc)
    if unreachable is None:
        return _describe(exc)
    variable = model_variable(key)
    if type(unreachable).__name__ == "OfflineModeIsEnabled":
        why = "HF_HUB_OFFLINE is set, so the Hugging Face Hub is not asked"
    else:
        why = f"the Hugging Face Hub could not be reached ({_describe(unreachable)})"
    return (f"{why} and {model_id} is not fully downloaded in the local cache: check this "
            f"machine's network connection (or proxy), or download the model where the Hub can "
            f"be reached and set {variable} to its local diffusers folder")


def explain_checker_failure(key: str, model_id: str, exc: BaseException) -> str:
    """Why the NSFW checker of a model could not be loaded, and the owner's ways out."""
    cause = explain_load_failure(key, model_id, exc)
    return (f"its NSFW safety checker could not be loaded ({cause}). PLACE_SAFETY_CHECKER "
            "runs it for jobs outside age-restricted channels (auto) or for all (true): "
            "fetch it with `python -m pipeline.download`, use a model folder that has its "
            "safety_checker and feature_extractor, or set PLACE_SAFETY_CHECKER=false")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:300] + "…"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class ModelStore:
    """Loads each model on the first job that needs it and keeps it for the next ones.

    Thread-safe: the bot's worker thread and the CLI call get() directly. On a GPU only one
    model is kept, whatever the VRAM mode: switching 1.4 <-> 1.5 unloads the other first, so
    two models never need room at once (a consumer card holds one). On the CPU both stay.

    The NSFW checker (pipeline/safety.py) is a model's own, loaded with checker() by the first
    job that is checked and unloaded with its model. `safety_checker` is PLACE_SAFETY_CHECKER:
    true checks every job, false none (the checker is never loaded), auto each job as it says.
    """

    def __init__(
        self,
        model_ids: Mapping[str, str],
        *,
        device: str = "auto",
        vram_mode: str = "auto",
        safety_checker: str = "auto",
        compile: str = "auto",
        checker_placement: str | None = None,
    ):
        if compile not in COMPILE_CHOICES:
            raise ValueError(f"compile {compile!r} is unknown; choose one of {COMPILE_CHOICES}")
        if safety_checker not in SAFETY_CHOICES:
            raise ValueError(f"safety checker {safety_checker!r} is unknown; choose one of "
                             f"{SAFETY_CHOICES}")
        self.model_ids = dict(model_ids)
        self.compile = compile  # the background torch.compile (pipeline/compiler.py)
        self.requested_device = device
        self.requested_vram_mode = vram_mode
        self.safety_checker = safety_checker
        # where the checker runs (pipeline.safety.PLACEMENTS); None: by the VRAM mode
        self.checker_placement = checker_placement
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()
        self._vram_override: str | None = None

    @property
    def loaded_keys(self) -> list[str]:
        return list(self._loaded)

    def is_loaded(self, key: str) -> bool:
        return key in self._loaded

    def describe(self) -> dict:
        """Plain facts for a status display. Takes no lock: a load holds the lock for minutes
        (a first download) and the status is read from the event loop."""
        loaded = tuple(self._loaded.values())  # a snapshot; the dict may change meanwhile
        current = loaded[0] if loaded else None
        device = current.device if current else self.requested_device
        # a VRAM mode means nothing on the CPU: saying "full" there misled owners
        on_cpu = str(device).startswith("cpu")
        return {
            "loaded": [model.key for model in loaded],
            "device": device,
            "vram_mode": NO_VRAM if on_cpu else (current.vram_mode if current
                                                 else self.requested_vram_mode),
        }

    def checks(self, job: RenderJob) -> bool:
        """Whether this job's passes go through the NSFW checker."""
        if self.safety_checker == "auto":
            return job.safety_check
        return self.safety_checker == "true"

    def has_checker(self, key: str) -> bool:
        model = self._loaded.get(key)
        return model is not None and model.checker is not None

    def checker(self, key: str) -> SafetyChecker:
        """Model `key`'s NSFW checker, loaded (with the model) on first use. ModelLoadError,
        naming what the owner can do, when it can't be loaded."""
        with self._lock:
            model = self.get(key)
            if model.checker is None:
                try:
                    model.checker = load_safety_checker(
                        model.model_id, model.device, model.vram_mode,
                        placement=self.checker_placement)
                except Exception as exc:
                    _free_memory()
                    raise ModelLoadError(key, model.model_id,
                                         explain_checker_failure(key, model.model_id, exc)
                                         ) from exc
            return model.checker

    def get(self, key: str) -> LoadedModel:
        if key not in self.model_ids:
            raise ValueError(f"model {key!r} is unknown; choose one of {tuple(self.model_ids)}")
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            device = resolve_device(self.requested_device)
            if device == "cuda" or self._vram_override:
                self._unload_others(key)
            mode = self._vram_override or choose_vram_mode(self.requested_vram_mode, device)
            model = self._load(key, device, mode)
            self._loaded[key] = model
            return model

    def reload_lower(self, key: str) -> str | None:
        """After an out-of-memory error: reload `key` one VRAM mode lower. None if none left."""
        with self._lock:
            current = self._loaded.get(key)
            mode = current.vram_mode if current else "full"
            lower = lower_vram_mode(mode)
            if lower is None:
                return None
            self.unload(key)
            self._vram_override = lower
            return lower

    def unload(self, key: str) -> None:
        with self._lock:
            model = self._loaded.pop(key, None)
        if model is not None:
            log.info("unloading model %s", key)
            del model
            _free_memory()

    def _unload_others(self, key: str) -> None:
        for other in [k for k in self._loaded if k != key]:
            self.unload(other)

    def _load(self, key: str, device: str, mode: str) -> LoadedModel:
        model_id = self.model_ids[key]
        dtype = torch.float16 if device == "cuda" else torch.float32
        # VRAM modes are about a GPU's memory: on the CPU there is none to name
        memory = f", VRAM mode {mode}" if device == "cuda" else " (in RAM: no VRAM mode)"
        log.info("loading model %s (%s) on %s, %s%s", key, model_id, device,
                 str(dtype).removeprefix("torch."), memory)
        try:
            pipe = self._from_pretrained(model_id, dtype, device)
            embeds, accel = _place_on_device(pipe, device, mode, compile=self.compile)
        except Exception as exc:
            _free_memory()
            raise ModelLoadError(key, model_id, explain_load_failure(key, model_id, exc)) from exc
        return LoadedModel(key, model_id, pipe, embeds, device, dtype, mode, accel)

    def _from_pretrained(self, model_id: str, dtype: torch.dtype, device: str):
        from diffusers import StableDiffusionImg2ImgPipeline

        # never with its checker: that is loaded apart, when a job needs it (checker())
        load = lambda **kw: StableDiffusionImg2ImgPipeline.from_pretrained(  # noqa: E731
            model_id, dtype=dtype, safety_checker=None, requires_safety_checker=False, **kw
        )
        if device != "cuda":
            return load()
        try:  # half-size download where the repository publishes fp16 files
            return load(variant="fp16")
        except ValueError as exc:
            if "variant" not in str(exc):
                raise
            return load()


def compiles_in_background(setting: str, mode: str) -> bool:
    """Whether a model loaded in VRAM mode `mode` gets the background torch.compile.

    auto: full mode only. on: low mode too; measured on an H100 under low mode's 3 GiB cap, a
    job took 0.99 s instead of 1.47 s at a peak of 2.998 GiB reserved, with the compile run
    between jobs. That leaves almost no headroom (an out-of-memory job falls back to minimal
    mode), so it is the owner's choice. off: never. (Where Triton is missing, never.)
    """
    return {"auto": mode == "full", "on": mode in ("full", "low"), "off": False}[setting]


def _place_on_device(pipe, device: str, mode: str, *, compile: str = "auto"):
    """Move the pipeline's parts per VRAM mode; return the empty prompt's embedding and the
    speed-ups installed (pipeline.accel.Acceleration, or None)."""
    from pipeline import accel

    pipe.set_progress_bar_config(disable=True)
    if mode == "minimal":
        embeds = _offload_by_layer(pipe)
    else:
        pipe.to(device)
        embeds = _encode_empty_prompt(pipe, device)
    if mode == "low":
        pipe.text_encoder.to("cpu")
        pipe.vae.enable_slicing()
        _free_memory()
        _cap_process_memory(LOW_MODE_CAP)
    # CUDA graphs etc. (nothing on the CPU)
    installed = accel.accelerate(pipe, device, mode,
                                 background_compile=compiles_in_background(compile, mode))
    return embeds, installed


def _offload_by_layer(pipe) -> torch.Tensor:
    """minimal: weights stay in pinned CPU memory, each layer's are copied in on a side stream
    while the previous layer computes (4.5x faster than enable_sequential_cpu_offload)."""
    cuda = torch.device("cuda")
    pipe.text_encoder.to(cuda)
    embeds = _encode_empty_prompt(pipe, "cuda")
    pipe.text_encoder.to("cpu")  # never needed again
    for part in (pipe.unet, pipe.vae):
        part.enable_group_offload(onload_device=cuda, offload_type="leaf_level", use_stream=True)
    _free_memory()
    return embeds


def _cap_process_memory(limit: float) -> None:
    """Keep this process's CUDA allocator under `limit` bytes: past it, it frees its cache and
    retries (and raises OutOfMemoryError only if the live tensors need more)."""
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))


@torch.inference_mode()
def _encode_empty_prompt(pipe, device: str) -> torch.Tensor:
    """The original prompt is empty: its embedding is the same for every job, so encode it once.

    With an empty prompt, classifier-free guidance is a no-op (the conditional and
    unconditional embeddings are equal), so jobs run with guidance off and this one embedding.
    """
    embeds, _ = pipe.encode_prompt(
        "", device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    return embeds


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
