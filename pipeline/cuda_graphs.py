"""CUDA graphs of a module's forward call, one per input shape, sharing one memory pool.

A capture records the very kernels eager PyTorch launches, so a replay computes what the eager
call computes, bit for bit, without launching ~1,200 kernels one by one from Python (why this
matters: pipeline/accel.py). A shape's first calls run eagerly (a warm-up, then the capture);
a background compile may later promote a shape to a compiled function, captured again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # for the annotation; accelerate() imports it where a compile starts
    pass

log = logging.getLogger(__name__)

MAX_GRAPHS = 24  # per module: batch sizes 1..16 of the UNet fit with room to spare


@dataclass
class _Entry:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    output: torch.Tensor
    fn: Callable[..., torch.Tensor]  # what was captured: the eager fn or a compiled one


class GraphedCall:
    """Runs `fn(*tensors) -> tensor` by replaying a CUDA graph captured for the inputs' shapes.

    The inputs are copied into the graph's own tensors and the output is cloned out, so a
    caller may keep the result (PNDM keeps the last four UNet outputs) and pass any tensors.
    A 0-d CPU tensor (a timestep) is written with fill_, which needs no host-device copy.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], name: str, pool: GraphPool, *,
                 anchor: torch.Tensor, max_graphs: int = MAX_GRAPHS, warmup_runs: int = 2,
                 compiler=None):
        self.fn = fn
        self.compiler = compiler  # pipeline.compiler.BackgroundCompiler, or None
        self._promoted: dict[tuple, Callable[..., torch.Tensor]] = {}
        self._requested: set[tuple] = set()
        self.name = name
        self.pool = pool
        self.max_graphs = max_graphs
        self.warmup_runs = warmup_runs
        self._anchor = anchor  # a weight: if it moves, the captured addresses are stale
        self._anchor_ptr = anchor.data_ptr()
        self._graphs: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.captures = 0
        self.capture_seconds: list[float] = []

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
            fn = self._promoted.get(key, self.fn)
            entry = self._graphs.get(key)
            if entry is not None and entry.fn is not fn:  # a compiled fn was promoted
                del self._graphs[key]
                entry = None
            if entry is None:
                entry = self._capture(inputs, fn)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
                self._ask_compiler(key, entry)
            else:
                self._graphs.move_to_end(key)
            for static, value in zip(entry.inputs, inputs, strict=True):
                if value.device.type == "cpu" and value.dim() == 0:
                    static.fill_(value.item())
                else:
                    static.copy_(value)
            entry.graph.replay()
            return entry.output.clone()

    def promote(self, key: tuple, fn: Callable[..., torch.Tensor]) -> None:
        """From the next call of this shape on, capture and replay `fn` (a compiled twin)."""
        with self._lock:
            self._promoted[key] = fn

    def _ask_compiler(self, key: tuple, entry: _Entry) -> None:
        if self.compiler is not None and key not in self._requested:
            self._requested.add(key)
            self.compiler.request(self, key, [x.clone() for x in entry.inputs])

    def _capture(self, inputs, fn) -> _Entry:
        started = time.perf_counter()
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
                fn(*static)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool.handle, capture_error_mode="thread_local"):
            output = fn(*static)
        self.captures += 1
        self.capture_seconds.append(round(time.perf_counter() - started, 3))
        log.debug("captured a CUDA graph of %s for %s", self.name,
                  [tuple(x.shape) for x in inputs])
        return _Entry(graph, static, output, fn)


class GraphPool:
    """One CUDA graph memory pool for several GraphedCalls, kept alive by a tiny graph.

    PyTorch frees a private pool once no graph uses it; capturing into the freed pool's handle
    then fails an internal assert. That happens as soon as every graph of the pool has been
    evicted or dropped (after the model moved, say), so the pool holds one trivial graph.
    """

    def __init__(self, device: torch.device | str = "cuda"):
        self.handle = torch.cuda.graph_pool_handle()
        self._scratch = torch.zeros(1, device=device)
        self._keeper = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._keeper, pool=self.handle, capture_error_mode="thread_local"):
            self._scratch.add_(1)


def graphable(*tensors: torch.Tensor) -> bool:
    return (
        not torch.is_grad_enabled()
        and all(t.is_cuda for t in tensors)
        and not torch.cuda.is_current_stream_capturing()
    )
