"""`python -m pipeline`: render one dream into a folder, without Discord.

Its flags are derived from the render parameters (pipeline.params), and their defaults are the
owner's: the CLI reads `.env` and the PLACE_* variables through pipeline.config, as the bot
does, so the same model folders, default model and strength serve both. torch is imported only
once the arguments are parsed and checked: `--help` and a typo answer at once.

`--artwork` takes an artwork of the r/Place Atlas by name (or key): the crop is drawn inside
it, on its year's canvas. Where the atlas is downloaded (PLACE_ATLAS_DIR), the artworks the
crop shows are printed and stored in the PNGs' metadata, as the bot's results carry them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import (
    DEVICE_ACCEPTS,
    VRAM_MODE_CHOICES,
    EngineSettings,
    SettingsError,
    device_flag,
    load_engine_settings,
    model_variable,
    pin_gpu,
)
from pipeline.errors import ParamError, PipelineError
from pipeline.params import PARAMS, Param, RenderRequest

if TYPE_CHECKING:
    from pipeline.atlas import Atlas


def _flag_type(name: str, spec: Param):
    def convert(raw: str) -> Any:
        return spec.parse(name, raw)

    convert.__name__ = spec.kind.__name__  # argparse names it in "invalid int value"
    return convert


def _flag_help(spec: Param, default: Any) -> str:
    allowed = "" if spec.choices or spec.kind is str else f"; {spec.bounds_text()}"
    shown = spec.unset if default is None else spec.encode_value(default)
    return f"{spec.help}{allowed} (default: {shown})".replace("%", "%%")


def build_parser(engine: EngineSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Dream on a 32x32 patch of r/Place with Stable Diffusion img2img. "
        "Defaults come from .env and the PLACE_* variables, as for the bot.",
    )
    for name, spec in PARAMS.items():
        if spec.scope == "picture":  # the CLI dreams on canvas crops
            continue
        default = engine.render_defaults[name]
        parser.add_argument(f"--{name}", type=_flag_type(name, spec),
                            choices=spec.choices or None, default=default,
                            help=_flag_help(spec, default))
    variables = " / ".join(model_variable(key) for key in engine.model_ids)
    parser.add_argument("--model-id", help="Hub id or local diffusers folder for --model "
                        f"(default: {variables}, else the Hub model)")
    parser.add_argument("--out", type=Path, default=Path("outputs"),
                        help="folder for the files (default: %(default)s)")
    parser.add_argument("--device", type=device_flag, default=engine.device,
                        help=f"{DEVICE_ACCEPTS} (default: %(default)s, from PLACE_DEVICE)")
    parser.add_argument("--vram-mode", choices=VRAM_MODE_CHOICES, default=engine.vram_mode,
                        help="(default: %(default)s, from PLACE_VRAM_MODE)")
    return parser


def check_writable(folder: Path) -> None:
    """OSError unless files can be written in `folder` (created if missing): checked before a
    model loads, so a typo in --out costs nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder):
        pass


def _progress(passes: int):
    started = [time.perf_counter()]

    def on_pass(_index: int, number: int, _frames) -> None:
        now = time.perf_counter()
        bar = "#" * number + "-" * (passes - number)
        print(f"[{bar}] pass {number}/{passes} in {now - started[0]:.2f} s", flush=True)
        started[0] = now

    return on_pass


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        engine = load_engine_settings()
    except SettingsError as exc:
        return _fail(str(exc))
    args = build_parser(engine).parse_args(argv)
    model_ids = dict(engine.model_ids)
    if args.model_id:
        model_ids[args.model] = args.model_id
    from pipeline.atlas import Atlas

    atlas = Atlas(engine.atlas_dir)
    try:
        request = RenderRequest(**{name: getattr(args, name) for name in PARAMS
                                   if hasattr(args, name)})
        if request.artwork is not None:
            request = on_artwork(request, atlas)
        job = request.resolve(atlas=atlas)
    except PipelineError as exc:
        return _fail(str(exc))
    try:
        check_writable(args.out)
    except OSError as exc:
        return _fail(f"--out {args.out}: cannot write there ({exc.strerror or exc})")
    print(f"crop: canvas {job.crop.canvas} at ({job.crop.x}, {job.crop.y}); "
          f"seed {job.seed}; model {job.model} ({model_ids[job.model]})", flush=True)
    args.device = pin_gpu(args.device)  # cuda:N: before CUDA starts, as the bot does
    args.safety_checker = engine.safety_checker  # PLACE_SAFETY_CHECKER; auto: --safety_check
    return _render(job, model_ids, args, atlas)


def on_artwork(request: RenderRequest, atlas: Atlas) -> RenderRequest:
    """The request on the artwork that --artwork names (a name, or a key), on its canvas."""
    from dataclasses import replace

    assert request.artwork is not None  # the caller checked
    if request.x is not None or request.y is not None:
        raise ParamError("--artwork picks the crop inside the artwork: leave --x and --y out")
    artwork = atlas.find(request.artwork, request.canvas)
    print(f"artwork: {artwork.name} ({artwork.year}, {artwork.url})", flush=True)
    return replace(request, artwork=artwork.key, canvas=artwork.year)


def _render(job, model_ids: dict[str, str], args: argparse.Namespace,
            atlas: Atlas | None = None) -> int:
    # torch and diffusers load here, after every cheap check has passed
    from pipeline.config import quiet_libraries
    from pipeline.engine import Renderer
    from pipeline.models import ModelStore
    from pipeline.outputs import save_result

    quiet_libraries()
    try:
        # One job: a background compile (minutes) would never pay off here.
        store = ModelStore(model_ids, device=args.device, vram_mode=args.vram_mode,
                           safety_checker=args.safety_checker, compile="off")
        # Loaded before the first pass's clock starts, so pass times are render times, as in
        # the summary below.
        loading_started = time.perf_counter()
        store.get(job.model)
        print(f"model {job.model} loaded in {time.perf_counter() - loading_started:.2f} s",
              flush=True)
        [result] = Renderer(store).render([job], on_pass=_progress(job.passes))
        if atlas is not None:
            result.artworks = atlas.overlapping(job.crop)
        paths = save_result(result, args.out)
    except (PipelineError, ValueError, OSError) as exc:  # ValueError: a device not present
        return _fail(str(exc))
    if result.artworks:
        print("on r/Place: " + "; ".join(f"{o.artwork.name} ({o.share:.0%} of the crop)"
                                         for o in result.artworks))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"seed {job.seed}; {len(result.pass_seconds)} passes, "
          + ", ".join(f"{s:.2f}" for s in result.pass_seconds) + " s")
    return 0
