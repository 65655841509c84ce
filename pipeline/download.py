"""`python -m pipeline.download`: fetch the bot's models ahead of time and check them.

Without it the first /place downloads 2-4 GB while its user waits. This downloads the files the
bot will load (the fp16 weights for a GPU, fp32 for a CPU) into the Hugging Face cache, with a
progress bar per file, then checks each weight file's SHA-256 against the one the Hub
publishes. What it fetches follows the bot's settings, from the environment or `.env`: the
model ids (PLACE_MODEL_1_4 / PLACE_MODEL_1_5), the device (PLACE_DEVICE, cuda:N pinned as the
bot pins it) and the NSFW checker (fetched unless PLACE_SAFETY_CHECKER=false: under auto, the
default, the bot runs it for every job outside age-restricted channels); flags override the
last two. A model that is a local folder needs nothing.

It also fetches the r/Place Atlas (one file a year, pinned to a commit of each atlas project
and checked: pipeline/atlas/download.py) into PLACE_ATLAS_DIR, for the artworks a result names
and /place artwork:. `--no-atlas` leaves it out, `--model none` fetches only the atlas.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from pipeline.atlas.download import PINNED, AtlasDownloadError, fetch_atlas
from pipeline.config import (
    EngineSettings,
    SettingsError,
    device_flag,
    load_engine_settings,
    model_variable,
    pin_gpu,
)
from pipeline.params import MODEL_KEYS

CHUNK = 16 * 1024 * 1024


class DownloadError(Exception):
    """A model could not be downloaded or did not match what the Hub publishes."""


def download(model_id: str, *, fp16: bool, safety_checker: bool) -> Path:
    """Download what StableDiffusionImg2ImgPipeline.from_pretrained would, as the bot loads it
    (pipeline.models.ModelStore): the fp16 variant where the repository has one."""
    from diffusers import StableDiffusionImg2ImgPipeline

    extra = {} if safety_checker else {"safety_checker": None}  # a passed part is not fetched
    if fp16:
        try:
            return Path(StableDiffusionImg2ImgPipeline.download(model_id, variant="fp16", **extra))
        except ValueError as exc:
            if "variant" not in str(exc):
                raise
    return Path(StableDiffusionImg2ImgPipeline.download(model_id, **extra))


def published_sha256(model_id: str, revision: str | None = None) -> dict[str, str]:
    """The SHA-256 the Hub publishes for each large (LFS) file of the repository."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(model_id, revision=revision, files_metadata=True)
    return {file.rfilename: file.lfs.sha256 for file in info.siblings or () if file.lfs}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path, expected: dict[str, str]) -> int:
    """Check every downloaded file the Hub has a checksum for; return how many were checked.
    DownloadError names the first file whose content differs."""
    checked = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in expected:
            continue
        if sha256_of(path) != expected[name]:
            raise DownloadError(f"{name} in {folder} does not match the Hub's checksum: delete "
                                "that folder and run this command again")
        checked += 1
    if checked == 0:
        raise DownloadError(f"no weight file with a published checksum was found in {folder}")
    return checked


def fetch_model(key: str, model_id: str, *, fp16: bool, safety_checker: bool) -> str:
    """Download and verify one model; return a line saying what was done."""
    from pipeline.models import explain_load_failure

    local = Path(model_id).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise DownloadError(f"model {key}: {model_id} is a folder without model_index.json, "
                                "not a diffusers model: point "
                                f"{model_variable(key)} at the folder that has it")
        return f"model {key}: {model_id} is a local folder; nothing to download"
    if _looks_like_a_path(model_id):  # else the Hub client calls it a malformed repo id
        raise DownloadError(f"model {key}: {model_id} does not exist: point "
                            f"{model_variable(key)} at a diffusers folder, or at a Hub id such "
                            "as CompVis/stable-diffusion-v1-4")
    try:
        folder = download(model_id, fp16=fp16, safety_checker=safety_checker)
        checked = verify(folder, published_sha256(model_id))
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(f"could not download model {key} ({model_id}): "
                            f"{explain_load_failure(key, model_id, exc)}") from exc
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9
    return f"model {key}: {model_id} ready in {folder} ({size:.1f} GB, {checked} files verified)"


def _looks_like_a_path(model_id: str) -> bool:
    """A folder path rather than a Hub id ("owner/name"): absolute, relative or home-based."""
    return (model_id.startswith(("/", "./", "../", "~", ".\\", "..\\"))
            or re.match(r"^[A-Za-z]:[\\/]", model_id) is not None)


def build_parser(engine: EngineSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.download",
        description="Download the bot's models (PLACE_MODEL_1_4 / PLACE_MODEL_1_5) into the "
                    "Hugging Face cache before the first /place, and verify them. Defaults "
                    "come from .env and the PLACE_* variables, as for the bot.")
    parser.add_argument("--model", choices=(*MODEL_KEYS, "all", "none"), default="all",
                        help="which model (default: %(default)s; none: the atlas only)")
    parser.add_argument("--device", type=device_flag, default=engine.device,
                        help="the files for this device: cuda (or cuda:N) the fp16 weights (2 GB "
                             "a model), cpu the fp32 ones (4 GB), auto this machine's "
                             "(default: %(default)s, from PLACE_DEVICE)")
    parser.add_argument("--safety-checker", action=argparse.BooleanOptionalAction,
                        default=engine.safety_checker != "false",
                        help="also fetch the NSFW checker (default: %(default)s: yes unless "
                             "PLACE_SAFETY_CHECKER is false)")
    parser.add_argument("--atlas", action=argparse.BooleanOptionalAction, default=True,
                        help="also fetch the r/Place Atlas (several MB a year, AGPL-3.0, the "
                             f"atlas projects' own) into PLACE_ATLAS_DIR, now {engine.atlas_dir} "
                             "(default: %(default)s)")
    return parser


def fetch_atlases(folder: Path) -> int:
    """Fetch every year's atlas file; 0, or 2 after the first that fails (named on stderr)."""
    for year, pin in PINNED.items():
        print(f"atlas {year}: {pin.url}", flush=True)
        try:
            print(fetch_atlas(pin, folder), flush=True)
        except AtlasDownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        engine = load_engine_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    args = build_parser(engine).parse_args(argv)
    if args.atlas and (failed := fetch_atlases(engine.atlas_dir)):
        return failed
    if args.model == "none":
        return 0
    from pipeline.config import quiet_libraries

    quiet_libraries()
    # cuda:N is the bot's "cuda" once pinned. cuda needs no GPU here: a machine (or a
    # container) may fetch the files before its GPU is attached.
    device = pin_gpu(args.device)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    keys = MODEL_KEYS if args.model == "all" else (args.model,)
    for key in keys:
        model_id = engine.model_ids[key]
        print(f"model {key}: {model_id} ({device} files)", flush=True)
        try:
            print(fetch_model(key, model_id, fp16=device == "cuda",
                              safety_checker=args.safety_checker), flush=True)
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
