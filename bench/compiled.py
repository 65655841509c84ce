"""The product's full mode once its background compile has finished: one job, 16 jobs, fidelity.

    python -m bench.compiled --out bench/results/NAME.json   (GPU machine, as bench/README.md)

Through the project's own ModelStore / Renderer / JobQueue / Worker, nothing monkeypatched:
1. load in full mode and render one job (CUDA graphs of the eager code; this queues the
   background compiles of the shapes it used) and keep its image;
2. wait for the compiles, then time one job (section t1, median of 3) and compare its image
   with step 1's and with plain diffusers' (section t5);
3. section t2: 16 jobs through the queue at max_batch 4 and 16: a first round captures and queues
   the new batch shapes, then after their compiles one timed round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import torch

from bench.run import (
    CACHE,
    FULL_JOB,
    MODEL_KEY,
    image_facts,
    load_plain,
    mad,
    make_jobs,
    plain_recursion,
    queue_run,
)
from pipeline.canvases import crop_canvas, upscale
from pipeline.engine import Renderer
from pipeline.models import ModelStore


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(renderer, jobs) -> tuple[float, list]:
    torch.cuda.synchronize()
    started = time.perf_counter()
    results = renderer.render(jobs)
    torch.cuda.synchronize()
    return time.perf_counter() - started, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-batch", default="4,16")
    parser.add_argument("--compile-timeout", type=float, default=400)
    parser.add_argument("--flash-attention", action="store_true",
                        help="turn cuDNN attention off (PyTorch's flash kernels): the A/B")
    parser.add_argument("--prompt", default="",
                        help="give every job this prompt (guidance on: the UNet's batch doubles)")
    args = parser.parse_args(argv)
    from bench.sd15 import save_model

    torch.backends.cuda.enable_cudnn_sdp(not args.flash_attention)
    if args.flash_attention:
        # The compile caches' keys leave the attention backend out: a cached graph traced
        # with cuDNN would be reused (measured: compiles of 2-16 s, cuDNN's timings).
        from torch._functorch import config as functorch_config
        from torch._inductor import config as inductor_config

        inductor_config.fx_graph_cache = False
        functorch_config.enable_autograd_cache = False

    folder = CACHE / "sd15-random"
    if not (folder / "model_index.json").is_file():
        save_model(folder, "sd15", device="cuda")
    out: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                 "flash_attention": args.flash_attention}
    store = ModelStore({MODEL_KEY: str(folder)}, device="cuda", vram_mode="full")
    renderer = Renderer(store)
    jobs = make_jobs(16, {**FULL_JOB, "prompt": args.prompt} if args.prompt else FULL_JOB)
    started = time.perf_counter()
    accel = store.get(MODEL_KEY).acceleration
    first_s, [graphs_only] = timed(renderer, jobs[:1])
    out["load_plus_first_job_s"] = round(time.perf_counter() - started, 3)
    out["first_job_s"] = round(first_s, 3)
    eager_graph_runs = [timed(renderer, jobs[:1])[0] for _ in range(3)]
    out["t1_graphs_before_compile_s"] = round(statistics.median(eager_graph_runs), 3)
    log(f"graphs only: {out['t1_graphs_before_compile_s']} s; waiting for the compiles")
    waited = time.perf_counter()
    out["compiles_done"] = accel.compiler.wait(args.compile_timeout)
    out["compile_wait_s"] = round(time.perf_counter() - waited, 1)
    out["compiler"] = accel.compiler.describe()
    log(f"compiler: {out['compiler']}")
    timed(renderer, jobs[:1])  # captures the promoted functions
    runs = [timed(renderer, jobs[:1]) for _ in range(3)]
    times = [t for t, _ in runs]
    out["t1_compiled"] = {"median_s": round(statistics.median(times), 4),
                          "min_s": round(min(times), 4), "runs_s": [round(t, 4) for t in times]}
    log(f"T1 compiled: {out['t1_compiled']}")
    compiled_image = runs[0][1][0].final
    job = jobs[0]
    plain = plain_recursion(load_plain(folder, "cuda"), job, upscale(crop_canvas(job.crop)), 1.0)
    out["t5"] = {"compiled_vs_plain_diffusers": mad(compiled_image, plain[-1]),
                 "compiled_vs_graphs_only": mad(compiled_image, graphs_only.final),
                 "facts": {"compiled": image_facts(compiled_image),
                           "plain": image_facts(plain[-1])}}
    log(f"T5: {out['t5']}")
    out["t2"] = {}
    for max_batch in [int(b) for b in args.max_batch.split(",")]:
        asyncio.run(queue_run(renderer, jobs, max_batch))  # new shapes: captured, queued
        accel.compiler.wait(args.compile_timeout)
        timed(renderer, jobs[:max_batch])  # capture the promoted batch shape
        result = asyncio.run(queue_run(renderer, jobs, max_batch))
        out["t2"][f"max_batch={max_batch}"] = {k: v if k == "batches" else round(v, 3)
                                              for k, v in result.items()}
        log(f"T2 max_batch={max_batch}: {out['t2'][f'max_batch={max_batch}']}")
        args.out.write_text(json.dumps(out, indent=1))
    out["compiler"] = accel.compiler.describe()
    out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    args.out.write_text(json.dumps(out, indent=1))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
