"""`python -m pipeline`: render one dream into a folder, without Discord.

Options mirror /place. Model ids come from PLACE_MODEL_1_4 / PLACE_MODEL_1_5 (or --model-id),
so the same local folder or Hub id serves the bot and the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline.canvases import CANVAS_KEYS
from pipeline.engine import Renderer
from pipeline.errors import PipelineError
from pipeline.models import ModelStore, quiet_libraries
from pipeline.outputs import save_result
from pipeline.params import (
    DEFAULT_MODEL_IDS,
    DEFAULT_RECURSIONS,
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    MODEL_KEYS,
    RenderRequest,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Dream on a 32x32 patch of r/Place with Stable Diffusion img2img.",
    )
    parser.add_argument("--model", choices=MODEL_KEYS, default="1.4", help="SD version")
    parser.add_argument("--model-id", help="Hub id or local diffusers folder for --model "
                        "(default: PLACE_MODEL_1_4 / PLACE_MODEL_1_5, else the Hub model)")
    parser.add_argument("--canvas", choices=CANVAS_KEYS, help="r/Place year (default: random)")
    parser.add_argument("--x", type=int, help="crop's left edge, in tiles (give with --y)")
    parser.add_argument("--y", type=int, help="crop's top edge, in tiles (give with --x)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                        help="how much each pass repaints, (0, 1] (default %(default)s)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="diffusion steps; a pass runs steps x strength (default %(default)s)")
    parser.add_argument("--recursions", type=int, default=DEFAULT_RECURSIONS,
                        help="passes after the first, 0-5 (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("outputs"),
                        help="folder for the files (default %(default)s)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--vram-mode", choices=("auto", "full", "low", "minimal"),
                        default="auto")
    return parser


def _progress(passes: int):
    started = [time.perf_counter()]

    def on_pass(_index: int, number: int, _frames) -> None:
        now = time.perf_counter()
        bar = "#" * number + "-" * (passes - number)
        print(f"[{bar}] pass {number}/{passes} in {now - started[0]:.2f} s", flush=True)
        started[0] = now

    return on_pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    model_ids = {
        key: os.environ.get(f"PLACE_MODEL_{key.replace('.', '_')}") or default
        for key, default in DEFAULT_MODEL_IDS.items()
    }
    if args.model_id:
        model_ids[args.model] = args.model_id
    try:
        job = RenderRequest(
            model=args.model, canvas=args.canvas, x=args.x, y=args.y, seed=args.seed,
            strength=args.strength, steps=args.steps, recursions=args.recursions,
        ).resolve()
        print(f"crop: canvas {job.crop.canvas} at ({job.crop.x}, {job.crop.y}); "
              f"seed {job.seed}; model {job.model} ({model_ids[job.model]})", flush=True)
        # One job: a background compile (minutes) would never pay off here.
        store = ModelStore(model_ids, device=args.device, vram_mode=args.vram_mode,
                           compile="off")
        [result] = Renderer(store).render([job], on_pass=_progress(job.passes))
        paths = save_result(result, args.out)
    except (ValueError, PipelineError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"seed {job.seed}; {len(result.pass_seconds)} passes, "
          + ", ".join(f"{s:.2f}" for s in result.pass_seconds) + " s")
    return 0
