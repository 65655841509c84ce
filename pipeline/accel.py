"""Optional GPU speed-ups for a loaded img2img pipeline; none changes what the model computes.

At batch 1 a Stable Diffusion UNet call is about 1,200 small kernels, and launching them one by
one from Python takes three times as long as running them (H100: 30 ms a step launched,
8-10 ms of kernels). This module removes that overhead; the arithmetic stays the same:

- CUDA graphs: the UNet (and, in full mode, the VAE's encoder and decoder) is captured once per
  input shape and replayed. A capture records the very kernels eager PyTorch launches, so the
  images are bit-identical to the eager path's. A capture costs two eager calls plus the
  capture itself (0.1-0.7 s), so no compile step holds up the first job. All graphs of a
  pipeline share one memory pool.
- UNet memory layout: at batch 1 channels_last convolutions are faster (7.9 vs 9.8 ms a UNet
  call), at batch 16 the contiguous layout is (51 vs 60 ms: layout conversions around
  GroupNorm). In full mode, where memory is plentiful, a channels_last twin of the UNet (1.6
  GiB) serves batches of 1-3 and the contiguous UNet larger ones; in low mode the one UNet is
  channels_last. channels_last picks other convolution kernels: images differ from the eager
  path's by float rounding only (measured: mean 0.06/255, max 1/255 after 4 passes).
- Timesteps on the CPU: diffusers' PNDM scheduler indexes a CPU table with the timestep, which
  forces a GPU→CPU sync at every step when the timesteps live on the GPU. Keeping them on the
  CPU (the same integers) lets the CPU queue the next step while the GPU works.
- Images converted on the GPU: the pipeline's PIL → tensor → PIL conversions run in float32
  NumPy on the CPU; the same operations on the GPU give the same bytes (this is the "stay in
  tensors between passes" idea, without changing engine.py or the uint8 round trip).
- The VAE decodes one image at a time (diffusers' slicing): a batch then needs one decoder
  graph of bounded size instead of one per batch size, and no 8 GiB decode at batch 16.
  Batching it buys nothing: compiled, a decode costs 7.9 ms an image at batch 1, 9.4 at 4
  (bench/README.md).
- Attention stays with PyTorch's choice, cuDNN's fused attention on an H100. cuDNN compiles
  those kernels at run time on first use (3.5 s of the first job on a new machine, H100; the
  CUDA kernel cache on the data volume keeps them for later starts). FlashAttention, which
  ships compiled, avoids that but made the full mode slower (H100, same machine: a warm job
  1.47 against 1.42 s before the compile; bench/README.md).

A graph is captured per input shape, so nothing here assumes the empty prompt's: a job with
a prompt runs classifier-free guidance, which doubles the UNet's batch (2 x the jobs) and gets
its own graphs (and its own background compile) the first time that shape comes.

Call `accelerate(pipe, device, vram_mode)` once the pipeline sits on its device (the end of
pipeline.models._place_on_device). It does nothing on the CPU, and in `minimal` mode it skips
the graphs: offloading moves the weights between calls, which a graph cannot follow. The
methods it replaces and the diffusers internals it relies on are named in
pipeline/diffusers_internals.py; when diffusers no longer matches them, accelerate() logs what
changed and leaves the plain pipeline as it is.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from pipeline import diffusers_internals as internals
from pipeline.cuda_graphs import GraphedCall, GraphPool, graphable

if TYPE_CHECKING:  # for the annotation; accelerate() imports it where a compile starts
    from pipeline.compiler import BackgroundCompiler

log = logging.getLogger(__name__)

def _graph_unet(unet, pool: GraphPool, twin=None, twin_below: int = 0) -> list[GraphedCall]:
    """Replace unet.forward (on the instance) by graphed calls for the pipeline's arguments.

    With a twin (the same weights in the other memory layout), batches smaller than
    twin_below replay graphs of the twin: at batch 1 channels_last convolutions are faster,
    at batch 16 the contiguous layout is (layout conversions around GroupNorm dominate).
    """
    output_class = internals.unet_output_class()
    eager = unet.forward

    def plain_of(forward):
        def plain(sample, timestep, encoder_hidden_states):
            return forward(sample, timestep, encoder_hidden_states, return_dict=False)[0]
        return plain

    graphed = GraphedCall(plain_of(eager), "unet", pool, anchor=unet.conv_in.weight)
    small = (GraphedCall(plain_of(twin.forward), "unet_twin", pool,
                         anchor=twin.conv_in.weight) if twin is not None else None)

    @functools.wraps(eager)
    def forward(sample, timestep, encoder_hidden_states, *args, return_dict=True, **kwargs):
        timestep_ok = torch.is_tensor(timestep) and (
            timestep.dim() == 0 or (timestep.is_cuda and timestep.dim() == 1)
        )
        if args or any(v is not None for v in kwargs.values()) or not timestep_ok or not (
            graphable(sample, encoder_hidden_states)
        ):
            return eager(sample, timestep, encoder_hidden_states, *args,
                         return_dict=return_dict, **kwargs)
        use = small if small is not None and sample.shape[0] < twin_below else graphed
        output = use(sample, timestep, encoder_hidden_states)
        return output_class(sample=output) if return_dict else (output,)

    unet.forward = forward
    return [graphed] if small is None else [graphed, small]


def _graph_coder(coder, name: str, pool) -> GraphedCall:
    """The VAE's Encoder / Decoder: forward(sample) with no other argument."""
    eager = coder.forward
    graphed = GraphedCall(lambda sample: eager(sample), name, pool,
                          anchor=coder.conv_in.weight)

    @functools.wraps(eager)
    def forward(sample, *args, **kwargs):
        if args or any(v is not None for v in kwargs.values()) or not graphable(sample):
            return eager(sample, *args, **kwargs)
        return graphed(sample)

    coder.forward = forward
    return graphed


def _cpu_timesteps(scheduler) -> None:
    """Keep scheduler.timesteps on the CPU whatever device the pipeline asks for."""
    original = scheduler.set_timesteps

    @functools.wraps(original)
    def set_timesteps(num_inference_steps, device=None, **kwargs):
        return original(num_inference_steps, device="cpu", **kwargs)

    scheduler.set_timesteps = set_timesteps


def _fast_images(processor, device: torch.device) -> None:
    """PIL ↔ tensor on the GPU for the common case (RGB, size a multiple of 8), byte-exact."""
    config = processor.config
    slow_pre, slow_post = processor.preprocess, processor.postprocess
    simple = (config.do_normalize and not config.do_binarize
              and not config.do_convert_grayscale)

    @functools.wraps(slow_pre)
    def preprocess(image, height=None, width=None, resize_mode="default", crops_coords=None):
        images = image if isinstance(image, list) else [image]
        factor = config.vae_scale_factor
        if not (simple and height is None and width is None and crops_coords is None
                and images and all(isinstance(i, Image.Image) and i.mode == "RGB"
                                   for i in images)
                and len({i.size for i in images}) == 1
                and images[0].width % factor == 0 and images[0].height % factor == 0):
            return slow_pre(image, height, width, resize_mode, crops_coords)
        pixels = torch.from_numpy(np.stack([np.asarray(i) for i in images])).to(device)
        # as pil_to_numpy, numpy_to_pt and normalize: x / 255 in float32, then 2x - 1
        pixels = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return 2.0 * pixels - 1.0

    @functools.wraps(slow_post)
    def postprocess(image, output_type="pil", do_denormalize=None):
        if output_type != "pil" or not torch.is_tensor(image) or image.dim() != 4 or (
            image.shape[1] != 3
        ):
            return slow_post(image, output_type, do_denormalize)
        image = internals.denormalize(processor, image, do_denormalize)
        # as pt_to_numpy and numpy_to_pil: float32, x * 255, round half to even, uint8
        pixels = (image.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        return [Image.fromarray(array) for array in pixels.numpy()]

    processor.preprocess = preprocess
    processor.postprocess = postprocess


@dataclass
class Acceleration:
    """What accelerate() installed on a pipeline (facts for the logs and the bench)."""

    vram_mode: str
    graphs: dict[str, GraphedCall] = field(default_factory=dict)
    unet_layout: str = "contiguous"
    twin: object = None  # the channels_last copy of the UNet, where one is kept
    compiler: BackgroundCompiler | None = None  # where a background compile runs

    @property
    def captures(self) -> int:
        return sum(g.captures for g in self.graphs.values())

    def describe(self) -> dict:
        return {
            "vram_mode": self.vram_mode,
            "cuda_graphs": sorted(self.graphs),
            "captures": self.captures,
            "capture_seconds": {name: g.capture_seconds for name, g in self.graphs.items()},
            "unet_layout": self.unet_layout,
            "channels_last_twin": self.twin is not None,
            "cudnn_attention": torch.backends.cuda.cudnn_sdp_enabled(),
            "background_compile": self.compiler.describe() if self.compiler else None,
        }


# the methods accelerate() replaces on the pipeline's objects (instance attributes that shadow
# the class's methods; deleting them gives the plain pipeline back, which the bench does)
PATCHED = (
    ("scheduler", "set_timesteps"),
    ("image_processor", "preprocess"),
    ("image_processor", "postprocess"),
    ("unet", "forward"),
    ("vae.encoder", "forward"),
    ("vae.decoder", "forward"),
)


UNET_LAYOUTS = ("auto", "contiguous", "channels_last")
TWIN_BELOW = 4  # in "auto" layout, batches of 1-3 run on the channels_last twin
TWIN_MIN_FREE = 6 * 1024**3  # the twin (1.6 GiB) only where a batch of 16 still fits beside it


def _room_for_twin(device) -> bool:
    free, _total = torch.cuda.mem_get_info(device)
    return free >= TWIN_MIN_FREE


def can_compile() -> bool:
    """torch.compile's GPU backend needs Triton and a GPU of compute capability 7.0 or more."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (7, 0)


def accelerate(pipe, device: str, vram_mode: str, *, unet_layout: str = "auto",
               allow_cpu: bool = False,
               background_compile: bool | None = None) -> Acceleration | None:
    """Install the speed-ups on a pipeline already placed per VRAM mode, once; None where it
    installs nothing (on the CPU, or where diffusers changed what this module relies on).

    unet_layout: "contiguous", "channels_last", or "auto": in full mode, if TWIN_MIN_FREE is
    free, a channels_last twin of the UNet (1.6 GiB more) serves batches below TWIN_BELOW and
    the contiguous UNet the larger ones; otherwise the one UNet goes channels_last (batch 1,
    the single user's wait, is what it speeds up). The bench compares the layouts.
    The VAE's graphs (about 2 ms a pass) are for full mode only; low mode keeps the memory.
    background_compile (default: full mode; never where Triton is unusable): compile each graphed
    shape with torch.compile in a background thread and swap it in once it checks out
    (pipeline/compiler.py); jobs never wait for it.
    allow_cpu installs the byte-exact CPU-side parts on a CPU pipeline too (the bench's smoke
    run and the tests, which prove them byte-exact).
    """
    if unet_layout not in UNET_LAYOUTS:
        raise ValueError(f"unet_layout {unet_layout!r} is unknown; choose one of {UNET_LAYOUTS}")
    on_gpu = device == "cuda" and torch.cuda.is_available()
    if not on_gpu and not allow_cpu:
        return None
    problems = internals.missing(pipe)
    if problems:
        import diffusers

        log.warning("GPU speed-ups off: diffusers %s changed what pipeline/accel.py relies on "
                    "(%s); running the plain pipeline, slower but the same images",
                    diffusers.__version__, "; ".join(problems))
        return None
    accel = Acceleration(vram_mode)
    _cpu_timesteps(pipe.scheduler)
    _fast_images(pipe.image_processor, torch.device(device))
    if vram_mode == "minimal" or not on_gpu:  # offload hooks move weights: no graphs
        return accel
    _graph_models(pipe, accel, unet_layout, vram_mode)
    if background_compile is None:
        background_compile = vram_mode == "full"
    if background_compile and can_compile():
        from pipeline.compiler import BackgroundCompiler

        accel.compiler = BackgroundCompiler()
        for graphed in accel.graphs.values():
            graphed.compiler = accel.compiler
    log.info("GPU speed-ups on: %s", accel.describe())
    return accel


def _graph_models(pipe, accel: Acceleration, unet_layout: str, vram_mode: str) -> None:
    """The UNet (in the layout asked for) and, in full mode, the VAE under CUDA graphs."""
    if not pipe.vae.use_slicing:
        pipe.vae.enable_slicing()
    twin = None
    layout = unet_layout
    if unet_layout == "auto":
        layout = "channels_last"
        if vram_mode == "full" and _room_for_twin(pipe.unet.device):
            layout = "contiguous"
            twin = copy.deepcopy(pipe.unet).to(memory_format=torch.channels_last)
            accel.twin = twin
    if layout == "channels_last":
        pipe.unet.to(memory_format=torch.channels_last)
    accel.unet_layout = unet_layout
    pool = GraphPool(pipe.unet.device)
    for graphed in _graph_unet(pipe.unet, pool, twin, TWIN_BELOW):
        accel.graphs[graphed.name] = graphed
    if vram_mode == "full":
        for name in ("encoder", "decoder"):
            coder = getattr(pipe.vae, name)
            accel.graphs[f"vae_{name}"] = _graph_coder(coder, f"vae_{name}", pool)
