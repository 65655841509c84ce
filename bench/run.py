"""The GPU benchmark, through the project's own ModelStore, Renderer, JobQueue and Worker.

    python -m bench.run                  # on the GPU machine: every section, JSON in bench/results
    python -m bench.run --smoke          # anywhere: tiny model on the CPU, 1 run, seconds
    python -m bench.run --model DIR      # a real local diffusers folder instead of random weights

Sections (--only picks some): baseline (the original's settings), t1 (one warm job, per
variant of pipeline/accel.py), t2 (16 jobs at once through JobQueue + Worker, per max_batch),
t3 (low / minimal VRAM modes, each in a fresh process), t4 (cold start in a fresh process),
t5 (the optimised image against plain diffusers', same seed), safety (what the NSFW checker
adds: to one job and a batch of 16 in full mode, and to low mode's time and peak VRAM, each
beside the same run without it). README.md explains the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from pipeline.results import RenderResult
    from placebot.jobs.backend import QueuePlace
    from placebot.jobs.jobqueue import Job

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.variants import install_accel_hook, set_variant  # noqa: E402

GIB = 1024**3
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
MODEL_KEY = "1.5"
FULL_JOB = {"strength": 0.8, "steps": 50, "recursions": 3}  # the original's: 4 passes of 40 steps
SMOKE_JOB = {"strength": 0.5, "steps": 4, "recursions": 1}
TARGETS = {  # the goals set for one H100
    "T1_s": 1.0, "T2_s": 6.0, "T3_low_ratio": 1.1, "T3_low_gib": 3.0, "T3_minimal_gib": 1.5,
    "T4_extra_s": 3.0, "T5_mad_255": 2.0,
}
# variants of pipeline/accel.py for section t1 (keyword arguments of accelerate; None: not applied)
# (background_compile off: its compiled path is measured by bench/compiled.py once ready)
VARIANTS = {
    "project-eager": None,
    "graphs": {"unet_layout": "contiguous", "background_compile": False},
    "graphs+channels_last": {"unet_layout": "channels_last", "background_compile": False},
    "graphs+auto": {"unet_layout": "auto", "background_compile": False},  # the default layout
}
DEFAULT_VARIANT = "graphs+auto"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def stats(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "runs_s": [round(t, 4) for t in times], "n": len(times)}


# --- the model and the project's objects -----------------------------------------------------

def ensure_model(args) -> Path:
    if args.model:
        return Path(args.model)
    from bench.sd15 import save_model

    size = "tiny" if args.smoke else "sd15"
    folder = CACHE / f"{size}-random"
    started = time.perf_counter()
    save_model(folder, size, device=args.device)
    log(f"model folder {folder} ready in {time.perf_counter() - started:.1f} s")
    return folder


def make_store(model_dir: Path, device: str, mode: str, checker_placement: str | None = None):
    """The bot's ModelStore, its PLACE_SAFETY_CHECKER the default (auto: each job says)."""
    from pipeline.models import ModelStore

    return ModelStore({MODEL_KEY: str(model_dir)}, device=device, vram_mode=mode,
                      safety_checker="auto", checker_placement=checker_placement)


def job_kwargs(args) -> dict:
    """The bench's job: the smoke or the full one, with --prompt where given (guidance on)."""
    job = SMOKE_JOB if args.smoke else FULL_JOB
    return {**job, "prompt": args.prompt} if args.prompt else job


def make_jobs(count: int, job: dict, seed: int = 1000, *, checked: bool = False):
    """The bench's jobs; `checked`: through the NSFW checker (section safety), else not, as in
    an age-restricted channel (every other section measures the render alone)."""
    from pipeline.params import RenderRequest

    rng = random.Random(seed)
    return [
        RenderRequest(model=MODEL_KEY, seed=seed + i, safety_check=checked, **job).resolve(rng)
        for i in range(count)
    ]


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed_renders(renderer, jobs, runs: int, device: str) -> tuple[dict, list]:
    times, results = [], []
    for _ in range(runs):
        sync(device)
        started = time.perf_counter()
        results = renderer.render(jobs)
        sync(device)
        times.append(time.perf_counter() - started)
    return stats(times), results


def memory_snapshot() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 3)}


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        free_memory()
        torch.cuda.reset_peak_memory_stats()


# --- baseline: the original's settings, plain diffusers --------------------------------------

def load_plain(model_dir: Path, device: str):
    import torch

    from pipeline.models import ModelStore

    dtype = torch.float16 if device == "cuda" else torch.float32
    # ModelStore's own loader (fp16 files first on a GPU), but none of its placement
    pipe = ModelStore({}, device=device)._from_pretrained(str(model_dir), dtype, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def plain_recursion(pipe, job, first_frame, guidance: float) -> list:
    """The original script's loop (plus a seed): 4 img2img passes, each output the next input.
    A job with a prompt (--prompt) runs it at the job's guidance, as the engine does."""
    import torch

    if job.prompt:
        guidance = job.guidance

    generator = torch.Generator("cpu").manual_seed(job.seed)
    frames = [first_frame]
    with torch.inference_mode():
        for _ in range(job.passes):
            frames.append(pipe(job.prompt or "", image=frames[-1], strength=job.strength,
                               num_inference_steps=job.steps, guidance_scale=guidance,
                               generator=generator).images[0])
    return frames


def section_baseline(ctx) -> dict:
    from pipeline.canvases import crop_canvas, upscale

    pipe = ctx.plain_pipe()
    pipe.enable_attention_slicing()  # the original's "required to fit in 4GB VRAM"
    job = ctx.jobs[0]
    first = upscale(crop_canvas(job.crop))
    try:
        plain_recursion(pipe, job, first, 7.5)  # warm-up
        reset_peak()
        times = []
        for _ in range(ctx.runs):
            sync(ctx.device)
            started = time.perf_counter()
            frames = plain_recursion(pipe, job, first, 7.5)
            sync(ctx.device)
            times.append(time.perf_counter() - started)
        ctx.images["baseline"] = frames[-1]
        return {"settings": "attention slicing, CFG 7.5 on the empty prompt, one job",
                **stats(times), **memory_snapshot()}
    finally:
        pipe.disable_attention_slicing()


# --- t1: one warm job ------------------------------------------------------------------------

def section_t1(ctx) -> dict:
    renderer, store = ctx.renderer("full")
    model = store.get(MODEL_KEY)
    out = {}
    for name in ctx.variants:
        set_variant(model, ctx.device, "full", VARIANTS[name])
        job = ctx.jobs[:1]
        started = time.perf_counter()
        renderer.render(job)  # warm-up; captures this shape's graphs
        sync(ctx.device)
        warm_up = time.perf_counter() - started
        reset_peak()
        result, results = timed_renders(renderer, job, max(ctx.runs, 3 if ctx.gpu else 1),
                                        ctx.device)
        out[name] = {**result, "first_call_s": round(warm_up, 3), **memory_snapshot(),
                     "pass_s": [round(s, 4) for s in results[0].pass_seconds]}
        ctx.images[f"t1:{name}"] = results[0].final
        log(f"T1 {name}: {result['median_s']:.3f} s (min {result['min_s']:.3f})")
    set_variant(model, ctx.device, "full", VARIANTS[ctx.default_variant])
    return out


# --- t2: 16 jobs through the project's queue --------------------------------------------------

class Recorder:
    """A Reporter (placebot.jobs.backend) that notes when each job's result is delivered."""

    def __init__(self, expected: int):
        self.expected = expected
        self.finished_at: dict[str, float] = {}
        self.batches: list[int] = []
        self.errors: list[str] = []
        self.done = asyncio.Event()

    async def acknowledge(self, job: Job, place: QueuePlace) -> None:
        pass

    async def loading(self, jobs: Sequence[Job]) -> None:
        pass

    async def started(self, jobs: Sequence[Job]) -> None:
        self.batches.append(len(jobs))

    async def progress(self, job: Job, pass_number: int, frames: list[Image.Image]) -> None:
        pass

    async def finished(self, job: Job, result: RenderResult) -> None:
        self.finished_at[job.id] = time.perf_counter()
        if len(self.finished_at) + len(self.errors) >= self.expected:
            self.done.set()

    async def failed(self, job: Job, error: Exception) -> None:
        self.errors.append(f"{job.id}: {error}")
        self.done.set()

    async def cancelled(self, job: Job) -> None:
        self.errors.append(f"{job.id}: cancelled")
        self.done.set()

    async def restarting(self, job: Job) -> None:
        self.errors.append(f"{job.id}: stopped for a restart")
        self.done.set()

    async def queue_moved(self, waiting: Sequence[tuple[Job, QueuePlace]]) -> None:
        pass


async def queue_run(renderer, jobs, max_batch: int) -> dict:
    from placebot.jobs.jobqueue import Job, JobQueue
    from placebot.jobs.worker import Worker

    queue = JobQueue(max_size=len(jobs), user_max=1)
    recorder = Recorder(len(jobs))
    worker = Worker(queue, renderer, recorder, max_batch=max_batch)
    worker.start()
    started = time.perf_counter()
    for user, render in enumerate(jobs):  # one user each: all accepted at once
        queue.submit(Job(user_id=user, render=render))
    await recorder.done.wait()
    await worker.stop(grace_s=60)
    if recorder.errors:
        raise RuntimeError(f"jobs failed: {recorder.errors[:3]}")
    finishes = sorted(t - started for t in recorder.finished_at.values())
    return {"last_s": finishes[-1], "first_s": finishes[0],
            "mean_s": statistics.fmean(finishes), "batches": recorder.batches}


def section_t2(ctx) -> dict:
    renderer, _store = ctx.renderer("full")
    jobs = ctx.jobs[: ctx.t2_jobs]
    out = {"jobs": len(jobs), "variant": ctx.default_variant}
    for max_batch in ctx.max_batches:
        warm = asyncio.run(queue_run(renderer, jobs, max_batch))  # captures new batch shapes
        reset_peak()
        runs = [asyncio.run(queue_run(renderer, jobs, max_batch)) for _ in range(ctx.runs)]
        last = stats([r["last_s"] for r in runs])
        out[f"max_batch={max_batch}"] = {
            **last, "first_result_median_s": round(
                statistics.median(r["first_s"] for r in runs), 3),
            "mean_result_median_s": round(statistics.median(r["mean_s"] for r in runs), 3),
            "batches": runs[0]["batches"], "warm_up_s": round(warm["last_s"], 3),
            "per_job_s": round(last["median_s"] / len(jobs), 4), **memory_snapshot(),
        }
        log(f"T2 max_batch={max_batch}: last result {last['median_s']:.2f} s")
        if ctx.args.out:  # kept even if a later size does not finish
            ctx.args.out.with_suffix(".t2.json").write_text(json.dumps(out, indent=1))
    return out


# --- t3 / t4: fresh processes ----------------------------------------------------------------

def run_child(ctx, *child_args: str, timeout: float = 400, env: dict | None = None) -> dict:
    command = [sys.executable, "-m", "bench.run", "--child", *child_args,
               "--model-dir", str(ctx.model_dir), "--device", ctx.device,
               "--runs", str(ctx.runs)]
    if "--minimal-runs" not in child_args:
        command += ["--minimal-runs", str(ctx.args.minimal_runs)]
    command += ["--smoke"] if ctx.smoke else []
    command += ["--prompt", ctx.args.prompt] if ctx.args.prompt else []
    if "--checker-placement" not in child_args:
        command += ["--checker-placement", ctx.args.checker_placement]
    if ctx.variant_options is not None:
        command += ["--variant", ctx.default_variant]
    else:
        command += ["--variant", "project-eager"]
    env = {**os.environ, **(env or {}), "BENCH_SPAWNED_AT": repr(time.time())}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {child_args} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def section_t3(ctx) -> dict:
    if not ctx.gpu:
        return {"skipped": "VRAM modes need a GPU"}
    out = {}
    for spec in ctx.args.t3_modes.split(","):
        mode, _, rest = spec.partition(":")
        option, _, runs = rest.partition(":")
        env = {}
        if mode == "minimal" and option:
            extra = ["--minimal-offload", option]
        elif option == "compile":
            extra = ["--low-compile"]
        elif option == "cap":  # the 3 GiB cap set before loading too (low mode sets it itself)
            extra = ["--memory-cap-gib", str(TARGETS["T3_low_gib"])]
        elif option == "expandable":
            extra, env = [], {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
        else:
            extra = []
        if runs:
            extra += ["--minimal-runs", runs]
        out[spec] = run_child(ctx, "mode", "--vram-mode", mode, *extra,
                              timeout=ctx.args.child_timeout, env=env)
        log(f"T3 {spec}: {out[spec]}")
    return out


def _first_start_and_restart(ctx, env: dict) -> dict:
    """A first start with an empty CUDA kernel cache (CUDA_CACHE_PATH: the bot keeps it on the
    data volume, so this is a new installation) and a restart that finds it filled."""
    with tempfile.TemporaryDirectory(prefix="bench-cuda-cache-") as cache:
        env = {**env, "CUDA_CACHE_PATH": cache}
        first = run_child(ctx, "cold", "--vram-mode", "full", env=env)
        log(f"T4 first start: {first}")
        if ctx.smoke:
            return first
        again = run_child(ctx, "cold", "--vram-mode", "full", env=env)
        log(f"T4 restart: {again}")
    return {**again, "first_start_on_machine": first}


def section_t4(ctx) -> dict:
    """The product's default, and with --t4-flash also with cuDNN attention off (the A/B)."""
    out = _first_start_and_restart(ctx, {})
    if ctx.args.t4_flash and not ctx.smoke:
        out["flash_attention"] = _first_start_and_restart(ctx, {"BENCH_NO_CUDNN_SDP": "1"})
    return out


def time_load_phases(device: str) -> dict:
    """Wrap the steps of a model load to report each one's seconds (filled in as they run)."""
    import pipeline.accel
    import pipeline.models as models

    phases: dict[str, float] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(device)
                phases[name] = round(phases.get(name, 0) + time.perf_counter() - started, 3)
        return run

    models.ModelStore._from_pretrained = timed(  # type: ignore[method-assign]
        "from_pretrained", models.ModelStore._from_pretrained)
    models._encode_empty_prompt = timed("encode_empty_prompt", models._encode_empty_prompt)
    pipeline.accel.accelerate = timed("accelerate", pipeline.accel.accelerate)
    return phases


def wait_for_compiles(compiler, renderer, jobs, timeout: float = 300) -> float:
    """Until the background compiles are promoted; one more render captures them."""
    started = time.perf_counter()
    compiler.wait(timeout)
    renderer.render(jobs)
    return round(time.perf_counter() - started, 1)


def child_main(args) -> dict:
    """Runs in a fresh process: load through ModelStore, render, report times and peaks."""
    spawned = float(os.environ.get("BENCH_SPAWNED_AT", time.time()))
    imports_started = time.time()
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline  # noqa: F401  (the bot's start-up)

    from pipeline.engine import Renderer

    imported = time.time()
    if args.device == "cuda":
        torch.cuda.init()
        torch.empty(1, device="cuda")
    cuda_ready = time.time()
    options = VARIANTS[args.variant]
    if args.low_compile:  # section t3's candidate: low mode with the full mode's background compile
        # (the VAE stays without graphs: with them a low job ran out of its 3 GiB at once)
        options = {**(options or {}), "background_compile": True}
    install_accel_hook(options)
    if os.environ.get("BENCH_NO_CUDNN_SDP"):  # PyTorch's own flash kernels, no runtime compile
        torch.backends.cuda.enable_cudnn_sdp(False)
    if args.memory_cap_gib and args.device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(args.memory_cap_gib * GIB / total)
    phases = time_load_phases(args.device)
    store = make_store(Path(args.model_dir), args.device, args.vram_mode,
                       None if args.checker_placement == "auto" else args.checker_placement)
    renderer = Renderer(store)
    jobs = make_jobs(4, job_kwargs(args), checked=args.safety_check)
    load_started = time.time()
    model = store.get(MODEL_KEY)
    sync(args.device)
    loaded = time.time()
    checker = None
    if args.safety_check:  # loaded before the first job, as the bot's worker loads it
        renderer.prepare(jobs)
        sync(args.device)
        checker = model.checker
        phases["safety_checker"] = round(time.time() - loaded, 3)
        loaded = time.time()
    [first] = renderer.render(jobs[:1])
    sync(args.device)
    first_done = time.time()
    accel = model.acceleration
    out = {"vram_mode": model.vram_mode, "variant": args.variant,
           "cudnn_sdp": torch.backends.cuda.cudnn_sdp_enabled(),
           "process_start_to_imports_s": round(imports_started - spawned, 3),
           "imports_s": round(imported - imports_started, 3),
           "cuda_init_s": round(cuda_ready - imported, 3),
           "load_s": round(loaded - load_started, 3), "load_phases_s": phases,
           "first_job_pass_s": [round(s, 3) for s in first.pass_seconds],
           "accel": accel.describe() if accel else None,
           "first_job_s": round(first_done - loaded, 3),
           "safety_check": args.safety_check,
           "checker_placement": checker.placement if checker is not None else None,
           "flagged_in_first_job": first.nsfw_flagged,
           "load_plus_first_job_s": round(first_done - load_started, 3),
           "spawn_to_first_result_s": round(first_done - spawned, 3)}
    compiler = getattr(accel, "compiler", None)
    if args.low_compile and compiler is not None:
        out["compile_wait_s"] = wait_for_compiles(compiler, renderer, jobs[:1])
    runs = 1 if args.smoke else args.runs
    if args.vram_mode == "minimal" and not args.smoke:
        runs = min(runs, args.minimal_runs)
        out["minimal_offload"] = args.minimal_offload
    if runs:
        one, _ = timed_renders(renderer, jobs[:1], runs, args.device)
    else:  # too slow to repeat: the first job is the figure (its graphs/caches are none)
        one = {**stats([first_done - loaded]), "note": "first job only"}
    out["job"] = one
    if args.child == "mode" and args.vram_mode != "minimal":
        renderer.render(jobs)  # warm-up of the batch shape
        if args.low_compile and compiler is not None:
            out["batch_compile_wait_s"] = wait_for_compiles(compiler, renderer, jobs)
            out["compiler"] = compiler.describe()
        four, _ = timed_renders(renderer, jobs, runs, args.device)
        out["batch_of_4"] = {**four, "per_job_s": round(four["median_s"] / 4, 4)}
    if torch.cuda.is_available():
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 3)
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
    return out


# --- t5: the optimised image against plain diffusers -----------------------------------------

def image_facts(image) -> dict:
    import numpy as np

    pixels = np.asarray(image, dtype=np.float64)
    return {"mean": round(float(pixels.mean()), 2), "std": round(float(pixels.std()), 2),
            "colours": len({tuple(p) for p in pixels.reshape(-1, 3)[::7].astype(int)})}


def degenerate(facts: dict) -> str | None:
    if facts["std"] < 4:
        return "nearly one flat colour"
    if facts["mean"] < 3 or facts["mean"] > 252:
        return "black or white"
    if facts["colours"] < 64:
        return "few colours"
    return None


def mad(a, b) -> dict:
    import numpy as np

    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return {"mean_abs_255": round(float(diff.mean()), 4), "max_abs_255": int(diff.max()),
            "share_of_pixels_changed": round(float((diff > 0).mean()), 4)}


def section_t5(ctx) -> dict:
    from pipeline.canvases import crop_canvas, upscale

    renderer, store = ctx.renderer("full")
    model = store.get(MODEL_KEY)
    job = ctx.jobs[0]
    set_variant(model, ctx.device, "full", VARIANTS[ctx.default_variant])
    optimised = renderer.render([job])[0]
    set_variant(model, ctx.device, "full", None)
    eager = renderer.render([job])[0]
    set_variant(model, ctx.device, "full", VARIANTS[ctx.default_variant])
    other_seed = renderer.render([ctx.jobs[1].with_seed(job.seed + 1)])[0]
    batch = renderer.render(ctx.jobs[:4]) if ctx.gpu else None  # batches of 4: no twin
    first = upscale(crop_canvas(job.crop))
    plain = plain_recursion(ctx.plain_pipe(), job, first, 1.0)
    out = {
        "seed": job.seed,
        "facts": {"optimised": image_facts(optimised.final), "plain": image_facts(plain[-1]),
                  "input": image_facts(first)},
        "optimised_vs_plain_diffusers": mad(optimised.final, plain[-1]),
        "optimised_vs_project_eager": mad(optimised.final, eager.final),
        "project_eager_vs_plain_diffusers": mad(eager.final, plain[-1]),
        "optimised_vs_input": mad(optimised.final, first),
        "seed_vs_next_seed": mad(optimised.final, other_seed.final),
        "per_pass_optimised_vs_plain": [
            mad(a, b)["mean_abs_255"] for a, b in zip(optimised.frames[1:], plain[1:],
                                                        strict=True)],
    }
    if batch is not None:
        out["batch_of_4_job0_vs_plain_diffusers"] = mad(batch[0].final, plain[-1])
    if "baseline" in ctx.images:
        out["optimised_vs_baseline_settings"] = mad(optimised.final, ctx.images["baseline"])
    for name, image in ctx.images.items():
        if name.startswith("t1:"):
            out[f"{name}_vs_plain_diffusers"] = mad(image, plain[-1])
    problems = {name: degenerate(facts) for name, facts in out["facts"].items()
                if name != "input" and degenerate(facts)}
    if out["seed_vs_next_seed"]["mean_abs_255"] < 2:
        problems["seeds"] = "two seeds give nearly the same image"
    if out["optimised_vs_input"]["mean_abs_255"] < 2:
        problems["input"] = "the passes left the input nearly unchanged"
    out["degenerate"] = problems or None
    if ctx.save_images:
        for name, image in (("optimised", optimised.final), ("plain", plain[-1]),
                            ("input", first)):
            image.save(ctx.save_images / f"t5-{name}.png")
    return out


# --- safety: what the NSFW checker adds ------------------------------------------------------

def section_safety(ctx) -> dict:
    """The checker's cost, each figure beside the same run without it. First `low`, in fresh
    processes (time and peak VRAM under its 3 GiB cap), the checker where the bot places it
    and each placement of --safety-low; then `full` on the shared renderer: one job and a
    batch of 16, checked and not, their runs interleaved."""
    out: dict = {}
    if ctx.gpu:
        low = {"plain": _child_or_error(ctx, "mode", "--vram-mode", "low")}
        for placement in ctx.args.safety_low.split(","):
            low[f"checked:{placement}"] = _child_or_error(
                ctx, "mode", "--vram-mode", "low", "--safety-check",
                "--checker-placement", placement)
            log(f"safety low, checker {placement}: {low[f'checked:{placement}']}")
        out["low"] = low
    else:
        out["low"] = {"skipped": "VRAM modes need a GPU"}
    out["full"] = checker_cost_in_full(ctx)
    return out


def _child_or_error(ctx, *child_args: str) -> dict:
    """A child's figures, or its error: one placement that does not fit must not cost the
    others their figures."""
    try:
        return run_child(ctx, *child_args, timeout=ctx.args.child_timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)[-2000:]}


def checker_cost_in_full(ctx) -> dict:
    from dataclasses import replace

    renderer, store = ctx.renderer("full")
    model = store.get(MODEL_KEY)
    set_variant(model, ctx.device, "full", VARIANTS[ctx.default_variant])
    size = min(16, len(ctx.jobs))
    plain = {"one job": ctx.jobs[:1], f"{size} jobs": ctx.jobs[:size]}
    runs: dict[str, list] = {}
    for name, jobs in plain.items():
        runs[name] = jobs
        runs[f"{name}, checked"] = [replace(job, safety_check=True) for job in jobs]
    started = time.perf_counter()
    renderer.prepare(runs["one job, checked"])  # loads the checker, as the bot's worker does
    sync(ctx.device)
    out: dict = {"checker_load_s": round(time.perf_counter() - started, 3),
                 "placement": model.checker.placement, "batch": size,
                 "checker_call_ms": _checker_calls(model.checker, ctx, size)}
    for jobs in runs.values():  # warm-up: each batch shape's graphs captured
        renderer.render(jobs)
    reset_peak()
    times: dict[str, list[float]] = {name: [] for name in runs}
    flagged = 0
    for _ in range(max(ctx.runs, 3 if ctx.gpu else 1)):
        for name, jobs in runs.items():
            sync(ctx.device)
            started = time.perf_counter()
            results = renderer.render(jobs)
            sync(ctx.device)
            times[name].append(time.perf_counter() - started)
            flagged += sum(result.nsfw_flagged for result in results)
    for name, measured in times.items():
        out[name] = stats(measured)
    for name in plain:
        added = out[f"{name}, checked"]["median_s"] - out[name]["median_s"]
        out[f"{name}: added_s"] = round(added, 4)
        out[f"{name}: added_share"] = round(added / out[name]["median_s"], 4)
        log(f"safety full, {name}: +{added:.3f} s ({added / out[name]['median_s']:.1%})")
    out["flagged_images"] = flagged  # 0: the random checker's thresholds let all through
    out.update(memory_snapshot())
    return out


def _checker_calls(checker, ctx, size: int) -> dict:
    """One checker call (input preparation included) on 1 and on `size` images, median ms."""
    image = ctx.renderer("full")[0].render(ctx.jobs[:1])[0].final
    out = {}
    for count in sorted({1, size}):
        images = [image] * count
        checker.flag(images)  # warm-up
        measured = []
        for _ in range(5):
            sync(ctx.device)
            started = time.perf_counter()
            checker.flag(images)
            sync(ctx.device)
            measured.append((time.perf_counter() - started) * 1000)
        out[f"{count} image(s)"] = round(statistics.median(measured), 2)
    return out


# --- the run ---------------------------------------------------------------------------------

class Context:
    def __init__(self, args, model_dir: Path):
        self.args = args
        self.smoke = args.smoke
        self.device = args.device
        self.gpu = self.device == "cuda"
        self.model_dir = model_dir
        self.runs = 1 if args.smoke else args.runs
        self.variants = args.variants.split(",")
        self.default_variant = args.variant
        self.variant_options = VARIANTS[self.default_variant]
        self.max_batches = [2] if args.smoke else [int(n) for n in args.max_batch.split(",")]
        self.t2_jobs = 4 if args.smoke else args.jobs
        self.jobs = make_jobs(max(self.t2_jobs, 2), job_kwargs(args))
        self.images: dict = {}
        self.save_images = args.save_images
        self._renderer: tuple[Any, Any] | None = None
        self._plain = None

    def renderer(self, mode: str):
        from pipeline.engine import Renderer

        if self._renderer is None:
            install_accel_hook(self.variant_options)
            store = make_store(self.model_dir, self.device, mode)
            started = time.perf_counter()
            store.get(MODEL_KEY)
            self.load_s = time.perf_counter() - started
            self._renderer = (Renderer(store), store)
        return self._renderer

    def plain_pipe(self):
        if self._plain is None:
            self._plain = load_plain(self.model_dir, self.device)
        return self._plain


def environment(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "device": "cpu"}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gib=round(props.total_memory / GIB, 1),
                    multiprocessors=props.multi_processor_count)
    return info


SECTIONS = {"baseline": section_baseline, "t1": section_t1, "t2": section_t2,
            "t3": section_t3, "t4": section_t4, "t5": section_t5, "safety": section_safety}
# fresh processes first, on a quiet GPU
ORDER = ("t4", "t3", "baseline", "t1", "t5", "t2", "safety")


def evaluate(results: dict) -> list[dict]:
    """Each goal against its measured figure (none for a smoke run)."""
    rows: list[dict] = []
    if results.get("smoke"):
        return rows

    def add(name, target, measured, met, note=""):
        """met None: a figure with no goal."""
        rows.append({"target": name, "wanted": target, "measured": measured,
                     "met": bool(met) if met is not None else None, "note": note})

    t1 = results.get("t1", {}).get(results.get("default_variant", DEFAULT_VARIANT), {})
    t1_s = t1.get("median_s")
    if t1_s is not None:
        add("T1 one job, warm", f"<= {TARGETS['T1_s']} s", t1_s, t1_s <= TARGETS["T1_s"])
    t2 = results.get("t2", {})
    best = min((v for k, v in t2.items() if k.startswith("max_batch=")),
               key=lambda v: v["median_s"], default=None)
    if best is not None:
        add("T2 16 jobs, last result", f"<= {TARGETS['T2_s']} s", best["median_s"],
            best["median_s"] <= TARGETS["T2_s"])
    t3 = results.get("t3", {})
    for spec, low in t3.items():
        if not spec.startswith("low") or "job" not in low or not t1_s:
            continue
        ratio = round(low["job"]["median_s"] / t1_s, 3)
        add(f"T3 {spec}: speed vs T1", f"<= {TARGETS['T3_low_ratio']}x", ratio,
            ratio <= TARGETS["T3_low_ratio"])
        add(f"T3 {spec}: peak reserved incl. a batch of 4", f"<= {TARGETS['T3_low_gib']} GiB",
            low["peak_reserved_gib"], low["peak_reserved_gib"] <= TARGETS["T3_low_gib"])
    for spec, minimal in t3.items():
        if spec.startswith("minimal") and "peak_reserved_gib" in minimal:
            add(f"T3 {spec}: peak reserved", f"<= {TARGETS['T3_minimal_gib']} GiB",
                minimal["peak_reserved_gib"],
                minimal["peak_reserved_gib"] <= TARGETS["T3_minimal_gib"],
                f"job {minimal['job']['median_s']} s")
    t4 = results.get("t4")
    if t4 and t1_s and "load_plus_first_job_s" in t4:
        add("T4 cold: load + first job", f"<= T1 + {TARGETS['T4_extra_s']} s",
            t4["load_plus_first_job_s"],
            t4["load_plus_first_job_s"] <= t1_s + TARGETS["T4_extra_s"],
            f"restart; with interpreter start and imports: {t4['spawn_to_first_result_s']} s")
        first = t4.get("first_start_on_machine", {})
        if "load_plus_first_job_s" in first:
            add("T4 cold, first start on the machine", f"<= T1 + {TARGETS['T4_extra_s']} s",
                first["load_plus_first_job_s"],
                first["load_plus_first_job_s"] <= t1_s + TARGETS["T4_extra_s"],
                "CUDA's on-disk kernel caches cold")
    safety = results.get("safety", {})
    full = safety.get("full", {})
    for name in ("one job", f"{full.get('batch')} jobs"):
        if f"{name}: added_s" in full:
            add(f"safety: the checker added to {name} (full)", "-", full[f"{name}: added_s"],
                None, f"{full[f'{name}: added_share']:.1%} of {full[name]['median_s']} s")
    low = safety.get("low", {})
    plain_low = low.get("plain", {}).get("job", {}).get("median_s")
    for spec, run in low.items():
        if spec.startswith("checked") and "peak_reserved_gib" in run:
            note = (f"job {run['job']['median_s']} s (without: {plain_low} s), placed "
                    f"{run['checker_placement']}")
            add(f"safety: low + checker ({spec.partition(':')[2]}): peak reserved incl. a "
                "batch of 4", f"<= {TARGETS['T3_low_gib']} GiB", run["peak_reserved_gib"],
                run["peak_reserved_gib"] <= TARGETS["T3_low_gib"], note)
    t5 = results.get("t5", {}).get("optimised_vs_plain_diffusers")
    if t5:
        ok = t5["mean_abs_255"] <= TARGETS["T5_mad_255"] and not results["t5"]["degenerate"]
        add("T5 vs plain diffusers, mean abs diff", f"<= {TARGETS['T5_mad_255']}/255",
            t5["mean_abs_255"], ok, f"degenerate: {results['t5']['degenerate']}")
    return rows


def table(results: dict) -> str:
    device = results["environment"]["device"]
    lines = [f"Card: {device}.", "", "| figure | wanted | measured | met | note |",
             "|---|---|---|---|---|"]
    for row in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {row['wanted']} | {row['measured']} | {met} "
                     f"| {row['note']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU, 1 run")
    parser.add_argument("--model", help="a local diffusers SD folder (default: random SD v1.5)")
    parser.add_argument("--device", choices=("cuda", "cpu"))
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(ORDER)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--minimal-runs", type=int, default=3)
    parser.add_argument("--t3-modes", default="low,low:cap,minimal:group,minimal:sequential:0",
                        help="MODE[:OPTION[:RUNS]], comma-separated; each MODE is loaded "
                        "as the bot loads it (low within its 3 GiB cap, minimal with group "
                        "offloading). OPTION for low: cap (the cap also set before loading), "
                        "expandable (expandable_segments), compile (the background compile); "
                        "for minimal, a label kept with the result. RUNS 0: first job only")
    parser.add_argument("--child-timeout", type=float, default=400)
    parser.add_argument("--minimal-offload", default="sequential", help=argparse.SUPPRESS)
    parser.add_argument("--memory-cap-gib", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--low-compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--t4-flash", action="store_true",
                        help="T4 again with cuDNN attention off (PyTorch's flash kernels)")
    parser.add_argument("--jobs", type=int, default=16, help="T2's job count")
    parser.add_argument("--checker-placement", default="auto",
                        choices=("auto", "gpu", "offload", "cpu"),
                        help="where the NSFW checker runs in fresh processes (auto: as the "
                        "bot places it for the VRAM mode)")
    parser.add_argument("--safety-low", default="auto,cpu",
                        help="section safety: the checker placements tried in low mode "
                        "(comma-separated; auto: as the bot places it, offload)")
    parser.add_argument("--safety-check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prompt", default="",
                        help="give every job this prompt (guidance 7.5 on, the UNet's batch "
                        "doubled); t5 then compares with plain diffusers given the same prompt")
    parser.add_argument("--max-batch", default="4,8,16", help="T2's Worker max_batch values")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS),
                        help="the optimised path used by T2-T5")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/...)")
    parser.add_argument("--save-images", type=Path)
    parser.add_argument("--child", choices=("mode", "cold"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--vram-mode", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    from pipeline.config import quiet_libraries

    quiet_libraries()
    with contextlib.suppress(Exception):
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    if args.device is None:
        args.device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if args.child:
        print(json.dumps(child_main(args)), flush=True)
        return 0
    model_dir = ensure_model(args)
    ctx = Context(args, model_dir)
    results = {"environment": environment(args.device), "smoke": args.smoke,
               "model": str(args.model or "random SD v1.5 weights (bench/sd15.py)")
               if not args.smoke else "tiny random model",
               "job": job_kwargs(args), "default_variant": args.variant,
               "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    wanted = args.only.split(",") if args.only else list(ORDER)
    out_path = args.out or (CACHE / "smoke.json" if args.smoke else RESULTS / (
        results["environment"]["device"].replace(" ", "-").lower() + ".json"))
    for name in ORDER:
        if name not in wanted:
            continue
        log(f"section {name}")
        started = time.perf_counter()
        try:
            results[name] = SECTIONS[name](ctx)
        except Exception as exc:
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
        results["targets"] = evaluate(results)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    baseline = results.get("baseline", {}).get("median_s")
    if baseline:
        ratios = {}
        t1 = results.get("t1", {})
        for name, row in t1.items():
            if "median_s" in row:
                ratios[f"t1 {name}"] = round(baseline / row["median_s"], 2)
        for name, row in results.get("t2", {}).items():
            if isinstance(row, dict) and "per_job_s" in row:
                ratios[f"t2 {name} per job"] = round(baseline / row["per_job_s"], 2)
        results["speedup_vs_baseline"] = ratios
    results["table_md"] = table(results)
    out_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(results["table_md"])
    print(f"wrote {out_path}")
    with contextlib.suppress(Exception):
        print(json.dumps(results.get("speedup_vs_baseline", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
