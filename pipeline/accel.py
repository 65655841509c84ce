"""Optional GPU speed-ups for a loaded img2img pipeline; none changes what the model computes.

At batch 1 a Stable Diffusion UNet call is about a thousand small kernels, and launching them
one by one from Python costs more than running them: the GPU idles most of the time. This
module removes that overhead without touching the arithmetic:

- CUDA graphs: the UNet and the VAE's encoder and decoder are captured once per input shape
  and replayed. Capturing records the very kernels eager PyTorch launches, so the numbers are
  those of the eager path. A capture costs about three eager calls (tens of milliseconds), so
  no compile step holds up the first job. All graphs of a pipeline share one memory pool.
- Timesteps on the CPU: diffusers' PNDM scheduler indexes a CPU table with the timestep,
  which forces a GPU→CPU sync at every step when the timesteps live on the GPU. Keeping them
  on the CPU (the same integers) lets the CPU queue the next step while the GPU works.
- Images converted on the GPU: the pipeline's PIL → tensor → PIL conversions run in float32
  NumPy on the CPU; the same operations on the GPU give the same bytes, faster.
- The VAE decodes one image at a time (diffusers' slicing): batched jobs then need one decoder
  graph of bounded size instead of one per batch size.

Call `accelerate(pipe, device, vram_mode)` once the pipeline sits on its device (the end of
pipeline.models._place_on_device). It does nothing on the CPU, and in `minimal` mode it skips
the graphs: sequential offload moves the weights between calls, which a graph cannot follow.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

MAX_GRAPHS = 24  # per module: batch sizes 1..16 of the UNet fit with room to spare


@dataclass
class _Entry:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    output: torch.Tensor


class GraphedCall:
    """Runs `fn(*tensors) -> tensor` by replaying a CUDA graph captured for the inputs' shapes.

    The inputs are copied into the graph's own tensors and the output is cloned out, so a
    caller may keep the result (PNDM keeps the last four UNet outputs) and pass any tensors.
    A 0-d CPU tensor (a timestep) is written with fill_, which needs no host-device copy.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], name: str, pool, *,
                 anchor: torch.Tensor, max_graphs: int = MAX_GRAPHS, warmup_runs: int = 2):
        self.fn = fn
        self.name = name
        self.pool = pool
        self.max_graphs = max_graphs
        self.warmup_runs = warmup_runs
        self._anchor = anchor  # a weight: if it moves, the captured addresses are stale
        self._anchor_ptr = anchor.data_ptr()
        self._graphs: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.captures = 0

    @staticmethod
    def _key(inputs) -> tuple:
        shapes = tuple((tuple(x.shape), x.dtype) for x in inputs)
        return (*shapes, torch.is_inference_mode_enabled())

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        with self._lock:
            if self._anchor.data_ptr() != self._anchor_ptr:
                self._graphs.clear()
                self._anchor_ptr = self._anchor.data_ptr()
            key = self._key(inputs)
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(inputs)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            for static, value in zip(entry.inputs, inputs, strict=True):
                if value.device.type == "cpu" and value.dim() == 0:
                    static.fill_(value.item())
                else:
                    static.copy_(value)
            entry.graph.replay()
            return entry.output.clone()

    def _capture(self, inputs) -> _Entry:
        device = self._anchor.device
        static = [
            torch.full((), x.item(), dtype=x.dtype, device=device)
            if x.device.type == "cpu" and x.dim() == 0 else x.to(device).clone()
            for x in inputs
        ]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # first calls pick kernels and allocate workspaces
            for _ in range(self.warmup_runs):
                self.fn(*static)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            output = self.fn(*static)
        self.captures += 1
        log.debug("captured a CUDA graph of %s for %s", self.name,
                  [tuple(x.shape) for x in inputs])
        return _Entry(graph, static, output)


def _graphable(*tensors: torch.Tensor) -> bool:
    return (
        not torch.is_grad_enabled()
        and all(t.is_cuda for t in tensors)
        and not torch.cuda.is_current_stream_capturing()
    )


def _graph_unet(unet, pool) -> GraphedCall:
    """Replace unet.forward (on the instance) by a graphed call for the pipeline's arguments."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    eager = unet.forward

    def plain(sample, timestep, encoder_hidden_states):
        return eager(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    graphed = GraphedCall(plain, "unet", pool, anchor=unet.conv_in.weight)

    @functools.wraps(eager)
    def forward(sample, timestep, encoder_hidden_states, *args, return_dict=True, **kwargs):
        timestep_ok = torch.is_tensor(timestep) and (
            timestep.dim() == 0 or (timestep.is_cuda and timestep.dim() == 1)
        )
        if args or any(v is not None for v in kwargs.values()) or not timestep_ok or not (
            _graphable(sample, encoder_hidden_states)
        ):
            return eager(sample, timestep, encoder_hidden_states, *args,
                         return_dict=return_dict, **kwargs)
        output = graphed(sample, timestep, encoder_hidden_states)
        return UNet2DConditionOutput(sample=output) if return_dict else (output,)

    unet.forward = forward
    return graphed


def _graph_coder(coder, name: str, pool) -> GraphedCall:
    """The VAE's Encoder / Decoder: forward(sample) with no other argument."""
    eager = coder.forward
    graphed = GraphedCall(lambda sample: eager(sample), name, pool,
                          anchor=coder.conv_in.weight)

    @functools.wraps(eager)
    def forward(sample, *args, **kwargs):
        if args or any(v is not None for v in kwargs.values()) or not _graphable(sample):
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
        image = processor._denormalize_conditionally(image, do_denormalize)
        # as pt_to_numpy and numpy_to_pil: float32, x * 255, round half to even, uint8
        pixels = (image.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        return [Image.fromarray(array) for array in pixels.numpy()]

    processor.preprocess = preprocess
    processor.postprocess = postprocess


@dataclass
class Acceleration:
    """What accelerate() installed on a pipeline; undo() restores the plain pipeline."""

    vram_mode: str
    graphs: dict[str, GraphedCall] = field(default_factory=dict)
    undo_steps: list[Callable[[], None]] = field(default_factory=list)
    channels_last: bool = False

    @property
    def captures(self) -> int:
        return sum(g.captures for g in self.graphs.values())

    def describe(self) -> dict:
        return {
            "vram_mode": self.vram_mode,
            "cuda_graphs": sorted(self.graphs),
            "captures": self.captures,
            "channels_last": self.channels_last,
        }

    def undo(self) -> None:
        for step in reversed(self.undo_steps):
            step()
        self.undo_steps.clear()
        self.graphs.clear()


def _drop_attribute(obj, name: str) -> Callable[[], None]:
    return lambda: obj.__dict__.pop(name, None)


def accelerate(pipe, device: str, vram_mode: str, *, cuda_graphs: bool = True,
               channels_last: bool = False, cpu_timesteps: bool = True,
               fast_images: bool = True, allow_cpu: bool = False) -> Acceleration | None:
    """Install the speed-ups on a pipeline already placed per VRAM mode; None on the CPU.

    Calling it again replaces what an earlier call installed (the bench compares variants on
    one loaded pipeline); the result is also kept as pipe._place_acceleration. allow_cpu
    installs the byte-exact CPU-side parts on a CPU pipeline too (the bench's smoke run).
    """
    previous = getattr(pipe, "_place_acceleration", None)
    if previous is not None:
        previous.undo()
        pipe._place_acceleration = None
    on_gpu = device == "cuda" and torch.cuda.is_available()
    if not on_gpu and not allow_cpu:
        return None
    accel = Acceleration(vram_mode)
    pipe._place_acceleration = accel
    if cpu_timesteps:
        _cpu_timesteps(pipe.scheduler)
        accel.undo_steps.append(_drop_attribute(pipe.scheduler, "set_timesteps"))
    if fast_images:
        _fast_images(pipe.image_processor, torch.device(device))
        for name in ("preprocess", "postprocess"):
            accel.undo_steps.append(_drop_attribute(pipe.image_processor, name))
    if vram_mode == "minimal" or not on_gpu:  # offload hooks move weights: no graphs
        return accel
    if not pipe.vae.use_slicing:
        pipe.vae.enable_slicing()
        accel.undo_steps.append(pipe.vae.disable_slicing)
    if channels_last:
        for module in (pipe.unet, pipe.vae):
            module.to(memory_format=torch.channels_last)
            accel.undo_steps.append(
                functools.partial(module.to, memory_format=torch.contiguous_format))
        accel.channels_last = True
    if cuda_graphs:
        pool = torch.cuda.graph_pool_handle()
        accel.graphs["unet"] = _graph_unet(pipe.unet, pool)
        accel.graphs["vae_encoder"] = _graph_coder(pipe.vae.encoder, "vae_encoder", pool)
        accel.graphs["vae_decoder"] = _graph_coder(pipe.vae.decoder, "vae_decoder", pool)
        for module in (pipe.unet, pipe.vae.encoder, pipe.vae.decoder):
            accel.undo_steps.append(_drop_attribute(module, "forward"))
    log.info("GPU speed-ups on: %s", accel.describe())
    return accel
