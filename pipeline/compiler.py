"""Compiling the GPU's hot calls with torch.compile in the background, never in a user's job.

A compiled Stable Diffusion UNet is much faster than the eager one under a CUDA graph (H100,
batch 1: 4.8 against 7.9 ms a call), but compiling it takes over a minute per input shape.
So jobs are served at once by the CUDA graphs of the eager code (pipeline/accel.py), and this
module compiles each shape that jobs actually use in a background thread, checks that the
compiled function gives the eager one's numbers on the same inputs, and only then promotes
it: the next call of that shape is captured from the compiled code instead.

A compile that fails (no C compiler for Triton, an unsupported GPU, ...) or whose numbers
differ is logged and left out; the eager graphs keep serving.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

START_DELAY_S = 10.0  # let the first job after a load finish undisturbed (a cold start)
TOLERANCE = 2e-2  # largest |compiled - eager| / max|eager| accepted (fp16 rounding is ~1e-3)


def torch_compile(fn: Callable) -> Callable:
    return torch.compile(fn, fullgraph=True, dynamic=False)


def relative_error(fast: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.float().abs().max().clamp_min(1e-6)
    return float((fast.float() - reference.float()).abs().max() / scale)


@dataclass
class Outcome:
    name: str
    key: tuple
    seconds: float
    error: float | None = None
    problem: str | None = None


class BackgroundCompiler:
    """One daemon thread working through compile requests in the order they arrive.

    Anything with `.fn`, `.name` and `.promote(key, fn)` can ask (cuda_graphs.GraphedCall does).
    """

    def __init__(self, compile_fn: Callable[[Callable], Callable] = torch_compile, *,
                 tolerance: float = TOLERANCE, start_delay_s: float = START_DELAY_S):
        self.compile_fn = compile_fn
        self.tolerance = tolerance
        self.start_delay_s = start_delay_s
        self.promoted: list[Outcome] = []
        self.rejected: list[Outcome] = []
        self._requests: queue.Queue = queue.Queue()
        self._compiled: dict[int, Callable] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(self, call, key: tuple, inputs: list[torch.Tensor]) -> None:
        """Compile `call.fn` for these inputs' shapes (copies of real inputs, for the check)."""
        self._requests.put((call, key, inputs))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="place-compiler",
                                                daemon=True)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request so far is handled; False on timeout (bench and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._requests.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def describe(self) -> dict:
        return {"promoted": [(o.name, o.key[0][0], o.seconds) for o in self.promoted],
                "rejected": [(o.name, o.problem) for o in self.rejected],
                "pending": self._requests.unfinished_tasks}

    def _run(self) -> None:
        time.sleep(self.start_delay_s)
        while True:
            call, key, inputs = self._requests.get()
            try:
                self._compile_one(call, key, inputs)
            except Exception as exc:
                log.warning("compiling %s for %s failed; its CUDA graph keeps serving",
                            call.name, key[0], exc_info=exc)
                self.rejected.append(Outcome(call.name, key, 0.0, problem=repr(exc)[:300]))
            finally:
                self._requests.task_done()

    def _compile_one(self, call, key: tuple, inputs: list[torch.Tensor]) -> None:
        compiled = self._compiled.get(id(call))
        if compiled is None:
            compiled = self._compiled[id(call)] = self.compile_fn(call.fn)
        started = time.perf_counter()
        with torch.inference_mode(key[-1] is True):
            fast = compiled(*inputs)
            reference = call.fn(*inputs)
            error = relative_error(fast, reference)
        outcome = Outcome(call.name, key, round(time.perf_counter() - started, 1), error)
        if error <= self.tolerance:
            call.promote(key, compiled)
            self.promoted.append(outcome)
            log.info("compiled %s for %s in %.0f s (relative difference %.1e): promoted",
                     call.name, key[0][0], outcome.seconds, error)
        else:
            outcome.problem = f"relative difference {error:.2e} over {self.tolerance:g}"
            self.rejected.append(outcome)
            log.warning("compiled %s for %s differs from eager (%s); not used",
                        call.name, key[0][0], outcome.problem)
