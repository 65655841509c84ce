"""Component timings on the GPU: one UNet call, one VAE encode/decode, per variant.

    python -m bench.micro [--batches 1,4,16] [--compile] [--profile] [--offload-model DIR]

Eager vs CUDA graphs (pipeline/accel.py) vs channels_last vs cudnn.benchmark vs torch.compile,
at the shapes a job uses (64x64 latents, 512x512 images); the minimal mode's offload variants;
a kernel-time breakdown of one UNet call. Prints one JSON line per row.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import CACHE  # noqa: E402
from bench.sd15 import build_pipeline  # noqa: E402
from pipeline.cuda_graphs import GraphedCall, GraphPool  # noqa: E402

ROWS: list[dict] = []
OUT: list[Path] = []  # where each row is also written at once (a call may time out)


def emit(row: dict) -> None:
    ROWS.append(row)
    print(json.dumps(row), flush=True)
    for path in OUT:
        path.write_text(json.dumps(ROWS, indent=1))


def cuda_time(fn, repeat: int = 10, warmup: int = 2) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3)}


class UNetCase:
    def __init__(self, pipe):
        self.unet = pipe.unet
        self.eager = pipe.unet.forward
        self.emb = torch.randn(1, 77, 768, device="cuda", dtype=torch.float16)
        self.pool = GraphPool()

    def plain(self, s, t, e):
        return self.eager(s, t, e, return_dict=False)[0]

    def call(self, fn, b):
        x = torch.randn(b, 4, 64, 64, device="cuda", dtype=torch.float16)
        t = torch.tensor(500, device="cuda")
        e = self.emb.expand(b, -1, -1)
        return lambda: fn(x, t, e)

    def graphed(self, fn, name):
        return GraphedCall(fn, name, self.pool, anchor=self.unet.conv_in.weight)


def unet_variants(case: UNetCase, batches) -> None:
    with torch.inference_mode():
        for fmt in ("contiguous", "channels_last"):
            case.unet.to(memory_format=getattr(torch, "channels_last" if fmt != "contiguous"
                                               else "contiguous_format"))
            suffix = "" if fmt == "contiguous" else "+channels_last"
            graphed = case.graphed(case.plain, "unet" + suffix)
            for b in batches:
                emit({"part": "unet", "variant": "eager" + suffix, "batch": b,
                      **cuda_time(case.call(case.plain, b), repeat=5)})
                emit({"part": "unet", "variant": "graph" + suffix, "batch": b,
                      **cuda_time(case.call(graphed, b), repeat=20)})
        torch.backends.cudnn.benchmark = True
        graphed = case.graphed(case.plain, "unet-bench")
        for b in batches[:1] + batches[-1:]:
            start = time.perf_counter()
            case.call(graphed, b)()
            torch.cuda.synchronize()
            emit({"part": "unet", "variant": "graph+channels_last+cudnn.benchmark", "batch": b,
                  "first_call_s": round(time.perf_counter() - start, 2),
                  **cuda_time(case.call(graphed, b), repeat=20)})
        torch.backends.cudnn.benchmark = False


def compiled_variants(case: UNetCase, batches, tuned: bool) -> None:
    """torch.compile (inductor, no cudagraphs of its own) under our graph, channels_last."""
    import torch._inductor.config as inductor

    if tuned:  # the diffusers guide's settings for SD UNets
        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
        inductor.epilogue_fusion = False
        inductor.coordinate_descent_check_all_directions = True
    name = "compile" + ("-tuned" if tuned else "") + "+graph+channels_last"
    case.unet.to(memory_format=torch.channels_last)
    torch._dynamo.reset()
    compiled = torch.compile(case.plain, fullgraph=True, dynamic=False)
    graphed = case.graphed(compiled, name)
    with torch.inference_mode():
        for b in batches[:1] + batches[-1:]:
            try:
                start = time.perf_counter()
                case.call(graphed, b)()
                torch.cuda.synchronize()
                first = time.perf_counter() - start
                emit({"part": "unet", "variant": name, "batch": b,
                      "first_call_s": round(first, 1),
                      **cuda_time(case.call(graphed, b), repeat=20)})
            except Exception as exc:  # a compile failure is a result too
                emit({"part": "unet", "variant": name, "batch": b, "error": repr(exc)[:800]})


COMPILE_MODES = ("default", "flash", "tuned", "fuse_qkv", "channels_last", "max-autotune",
                 "freezing", "cudnn_benchmark")


def _mode_settings(mode: str):
    """(inductor config patch, torch.compile mode, cuDNN SDPA on, fuse qkv, channels_last)."""
    parts = set(mode.split("+"))
    patch = {}
    if "tuned" in parts:  # the diffusers guide's settings for SD UNets
        patch = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True,
                 "epilogue_fusion": False, "coordinate_descent_check_all_directions": True}
    if "freezing" in parts:  # weights as constants: their layout conversions fold away
        patch["freezing"] = True
    compile_mode = "max-autotune-no-cudagraphs" if "max-autotune" in parts else None
    return patch, compile_mode, "flash" not in parts, "fuse_qkv" in parts, (
        "channels_last" in parts)


def compile_modes(case: UNetCase, batches, modes) -> None:
    """One UNet shape per row: compile time, time a call under our CUDA graph, and the
    relative difference from the eager UNet on the same inputs."""
    import torch._inductor.config as inductor

    for mode in modes:
        patch, compile_mode, cudnn, fuse, channels_last = _mode_settings(mode)
        torch._dynamo.reset()
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        # the compile caches' keys leave the attention backend out: never reuse across it
        patch = {**patch, "fx_graph_cache": cudnn}
        torch.backends.cudnn.benchmark = "cudnn_benchmark" in mode
        if fuse:
            case.unet.fuse_qkv_projections()
        case.unet.to(memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)
        compiled = torch.compile(case.plain, fullgraph=True, dynamic=False, mode=compile_mode)
        graphed = case.graphed(compiled, "unet-" + mode)
        try:
            with torch.inference_mode(), inductor.patch(patch):
                for b in batches:
                    x = torch.randn(b, 4, 64, 64, device="cuda", dtype=torch.float16)
                    t = torch.tensor(500, device="cuda")
                    e = case.emb.expand(b, -1, -1)
                    start = time.perf_counter()
                    fast = graphed(x, t, e)
                    torch.cuda.synchronize()
                    first = time.perf_counter() - start
                    reference = case.plain(x, t, e)
                    call = case.call(graphed, b)
                    scale = reference.float().abs().max()
                    error = float((fast.float() - reference.float()).abs().max() / scale)
                    emit({"part": "unet", "variant": "compile:" + mode, "batch": b,
                          "first_call_s": round(first, 1), "rel_err": round(error, 5),
                          **cuda_time(call, repeat=20)})
        except Exception as exc:  # a compile failure is a result too
            emit({"part": "unet", "variant": "compile:" + mode, "error": repr(exc)[:800]})
        finally:
            del graphed, compiled
            if fuse:
                case.unet.unfuse_qkv_projections()
            torch.backends.cuda.enable_cudnn_sdp(True)
            torch.backends.cudnn.benchmark = False
            case.unet.to(memory_format=torch.contiguous_format)
            gc.collect()
            torch.cuda.empty_cache()


def vae_batches(pipe, batches) -> None:
    """The compiled decoder and encoder per image at batch 1, 2, 4 (the VAE slices to 1)."""
    vae = pipe.vae
    pool = GraphPool()
    for name, module in (("decoder", vae.decoder), ("encoder", vae.encoder)):
        torch._dynamo.reset()
        graphed = GraphedCall(torch.compile(module.forward, fullgraph=True, dynamic=False),
                              name, pool, anchor=module.conv_in.weight)
        for b in batches:
            arg = (torch.randn(b, 4, 64, 64, device="cuda", dtype=torch.float16)
                   if name == "decoder" else
                   torch.rand(b, 3, 512, 512, device="cuda", dtype=torch.float16) * 2 - 1)
            with torch.inference_mode():
                start = time.perf_counter()
                graphed(arg)
                torch.cuda.synchronize()
                first = time.perf_counter() - start
                timing = cuda_time(lambda g=graphed, x=arg: g(x), repeat=10)
            emit({"part": name, "variant": "compile+graph", "batch": b,
                  "first_call_s": round(first, 1), **timing,
                  "per_image_ms": round(timing["median_ms"] / b, 3)})


def profile_unet(case: UNetCase, batch: int) -> None:
    """Where one UNet call's GPU time goes (eager kernels, channels_last)."""
    from torch.profiler import ProfilerActivity, profile

    case.unet.to(memory_format=torch.channels_last)
    fn = case.call(case.plain, batch)
    with torch.inference_mode():
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
    groups: dict[str, float] = {}
    kernels = []
    for event in prof.key_averages():
        us = event.self_device_time_total / 3
        if us <= 0:
            continue
        name = event.key.lower()
        group = next((g for g, keys in (
            ("attention", ("flash", "fmha", "attention", "sdpa")),
            ("conv", ("conv", "cudnn", "xmma", "implicit", "fprop", "sm90_")),
            ("gemm", ("gemm", "cutlass", "nvjet", "cublas", "matmul")),
            ("norm", ("norm", "welford")),
        ) if any(k in name for k in keys)), "elementwise/other")
        groups[group] = groups.get(group, 0) + us
        kernels.append((us, event.count // 3, event.key[:90]))
    kernels.sort(reverse=True)
    emit({"part": "profile", "batch": batch, "total_ms": round(sum(groups.values()) / 1000, 3),
          "by_group_ms": {g: round(v / 1000, 3) for g, v in groups.items()},
          "kernels_per_call": sum(k[1] for k in kernels),
          "top": [(round(us / 1000, 3), n, k) for us, n, k in kernels[:14]]})


def vae_variants(pipe) -> None:
    vae = pipe.vae
    pool = GraphPool()
    image = torch.rand(1, 3, 512, 512, device="cuda", dtype=torch.float16) * 2 - 1
    latent = torch.randn(1, 4, 64, 64, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        for fmt in ("contiguous", "channels_last"):
            vae.to(memory_format=getattr(torch, "channels_last" if fmt != "contiguous"
                                         else "contiguous_format"))
            suffix = "" if fmt == "contiguous" else "+channels_last"
            enc = GraphedCall(vae.encoder.forward, "enc", pool, anchor=vae.encoder.conv_in.weight)
            dec = GraphedCall(vae.decoder.forward, "dec", pool, anchor=vae.decoder.conv_in.weight)
            for name, eager, graphed, arg in (("encoder", vae.encoder.forward, enc, image),
                                              ("decoder", vae.decoder.forward, dec, latent)):
                emit({"part": name, "variant": "eager" + suffix, "batch": 1,
                      **cuda_time(lambda fn=eager, x=arg: fn(x), repeat=5)})
                emit({"part": name, "variant": "graph" + suffix, "batch": 1,
                      **cuda_time(lambda fn=graphed, x=arg: fn(x), repeat=10)})
        vae.to(memory_format=torch.contiguous_format)


def vae_compiled(pipe) -> None:
    vae = pipe.vae
    pool = GraphPool()
    image = torch.rand(1, 3, 512, 512, device="cuda", dtype=torch.float16) * 2 - 1
    latent = torch.randn(1, 4, 64, 64, device="cuda", dtype=torch.float16)
    for fmt in ("contiguous", "channels_last"):
        vae.to(memory_format=getattr(torch, "channels_last" if fmt != "contiguous"
                                     else "contiguous_format"))
        for name, module, arg in (("decoder", vae.decoder, latent),
                                  ("encoder", vae.encoder, image)):
            torch._dynamo.reset()
            graphed = GraphedCall(torch.compile(module.forward, fullgraph=True, dynamic=False),
                                  name, pool, anchor=module.conv_in.weight)
            try:
                with torch.inference_mode():
                    start = time.perf_counter()
                    graphed(arg)
                    torch.cuda.synchronize()
                    first = time.perf_counter() - start
                    emit({"part": name, "variant": f"compile+graph+{fmt}", "batch": 1,
                          "first_call_s": round(first, 1),
                          **cuda_time(lambda g=graphed, x=arg: g(x), repeat=10)})
            except Exception as exc:
                emit({"part": name, "variant": f"compile+graph+{fmt}", "error": repr(exc)[:800]})
    vae.to(memory_format=torch.contiguous_format)


def _time_parts(pipe, latent, image, emb) -> dict:
    unet, vae = pipe.unet, pipe.vae
    t = torch.tensor(500, device="cuda")
    with torch.inference_mode():
        return {"unet": cuda_time(lambda: unet(latent, t, emb), repeat=3, warmup=1),
                "decode": cuda_time(lambda: vae.decode(latent), repeat=2, warmup=1),
                "encode": cuda_time(lambda: vae.encode(image), repeat=2, warmup=1)}


def _offload_one(variant, model_dir, latent, image, emb) -> dict:
    from pipeline.models import ModelStore

    pipe = ModelStore({}, device="cuda")._from_pretrained(str(model_dir), torch.float16, "cuda")
    started = time.perf_counter()
    if variant == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        kind = "leaf_level" if "leaf" in variant else "block_level"
        extra = {} if kind == "leaf_level" else {"num_blocks_per_group": 1}
        for part in (pipe.unet, pipe.vae):
            part.enable_group_offload(onload_device=torch.device("cuda"),
                                      offload_type=kind, use_stream=True, **extra)
    setup = time.perf_counter() - started
    row = {"part": "offload", "variant": variant, "setup_s": round(setup, 2),
           **_time_parts(pipe, latent, image, emb)}
    row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 1024**3, 3)
    return row


def offload_variants(model_dir: Path) -> None:
    """minimal mode's candidates: sequential CPU offload vs group offload with streams."""
    emb = torch.randn(1, 77, 768, device="cuda", dtype=torch.float16)
    latent = torch.randn(1, 4, 64, 64, device="cuda", dtype=torch.float16)
    image = torch.rand(1, 3, 512, 512, device="cuda", dtype=torch.float16) * 2 - 1
    for variant in ("sequential", "group-leaf-stream", "group-block-stream"):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            emit(_offload_one(variant, model_dir, latent, image, emb))
        except Exception as exc:
            emit({"part": "offload", "variant": variant, "error": repr(exc)[:500]})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--parts", default="vae,unet,profile",
                        help="of vae, unet, profile, compile, compile-tuned, vae-compile, "
                        "compile-modes, vae-batches")
    parser.add_argument("--compile-modes", default=",".join(COMPILE_MODES[:5]),
                        help=f"for --parts compile-modes, of {', '.join(COMPILE_MODES)}")
    parser.add_argument("--compile-batches", default="16")
    parser.add_argument("--vae-batches", default="1,2,4")
    parser.add_argument("--offload-model", type=Path, help="saved model folder: time offloads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.out:
        OUT.append(args.out)
    parts = args.parts.split(",")
    pipe = build_pipeline("sd15", device="cuda", dtype=torch.float16,
                          tokenizer_dir=CACHE / "tokenizer-src")
    case = UNetCase(pipe)
    if "vae" in parts:
        vae_variants(pipe)
    if "unet" in parts:
        unet_variants(case, batches)
    if "profile" in parts:
        for b in batches[:1] + batches[-1:]:
            profile_unet(case, b)
    if "vae-compile" in parts:
        vae_compiled(pipe)
    if "compile-modes" in parts:
        compile_modes(case, [int(b) for b in args.compile_batches.split(",")],
                      args.compile_modes.split(","))
    if "vae-batches" in parts:
        vae_batches(pipe, [int(b) for b in args.vae_batches.split(",")])
    for tuned in (False, True):
        if ("compile-tuned" if tuned else "compile") in parts:
            compiled_variants(case, batches, tuned)
    if args.offload_model:
        del pipe, case
        gc.collect()
        offload_variants(args.offload_model)
    if args.out:
        args.out.write_text(json.dumps(ROWS, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
