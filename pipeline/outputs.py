"""Turning a render into files: the final PNG (with every parameter in its text chunks), the
filmstrip of the crop and every pass (the original's N_stich.png), and an animation."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin

if TYPE_CHECKING:  # the engine imports torch; reading metadata must not
    from pipeline.atlas import Overlap
    from pipeline.results import RenderResult

METADATA_KEY = "place-dream"  # one JSON text chunk holding every parameter
FRAME_MS = 700


def job_metadata(result: RenderResult) -> dict:
    """Everything needed to reproduce the image: every render parameter (RenderJob.to_dict,
    with its schema version, so RenderJob.from_dict reads it back) and the model's id. A
    picture's square is left out (up to 1 MB of text): the crop file and the strip show it.
    The artworks the crop shows are added where they were looked up (`artworks`)."""
    row = {key: value for key, value in result.job.to_dict().items() if key != "tiles"}
    named = {} if result.artworks is None else {"artworks": artworks_metadata(result.artworks)}
    return {**row, "model_id": result.model_id, **named}


def artworks_metadata(found: list[Overlap]) -> list[dict]:
    """The artworks a crop shows, as plain data: name, atlas page, subreddits, share."""
    return [{"name": o.artwork.name, "url": o.artwork.url,
             "subreddits": list(o.artwork.subreddits), "share": round(o.share, 3)}
            for o in found]


def png_bytes(image: Image.Image, metadata: dict | None = None, *, optimize=False) -> bytes:
    info = None
    if metadata is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
        for key, value in metadata.items():  # also readable one by one in image viewers
            info.add_text(key, json.dumps(value) if isinstance(value, list | dict) else str(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, optimize=optimize)
    return buffer.getvalue()


def read_metadata(data: bytes) -> dict:
    """The parameters stored by png_bytes(); {} when the PNG has none."""
    with Image.open(io.BytesIO(data)) as image:
        text = getattr(image, "text", {}).get(METADATA_KEY)  # PNG text chunks; none elsewhere
    return json.loads(text) if text else {}


def filmstrip(frames: list[Image.Image]) -> Image.Image:
    """The frames side by side: (passes + 1) * 512 wide, 512 high."""
    width, height = frames[0].size
    strip = Image.new("RGB", (width * len(frames), height))
    for index, frame in enumerate(frames):
        strip.paste(frame, (index * width, 0))
    return strip


def animation_bytes(frames: list[Image.Image], fmt: str = "WEBP", size: int = 512) -> bytes:
    """A looping animation of the input and every pass."""
    scaled = [frame.resize((size, size)) if frame.width != size else frame for frame in frames]
    buffer = io.BytesIO()
    options = {"quality": 80} if fmt == "WEBP" else {}
    scaled[0].save(
        buffer, format=fmt, save_all=True, append_images=scaled[1:],
        duration=FRAME_MS, loop=0, **options,
    )
    return buffer.getvalue()


def file_stem(result: RenderResult) -> str:
    """A name built from validated numbers only: no user text reaches a path."""
    job = result.job
    source = (f"picture{job.picture}_o{job.offset}" if job.on_picture
              else f"place{job.crop.canvas}_{job.crop.x}_{job.crop.y}")
    return f"{source}_sd{job.model}_seed{job.seed}_s{job.strength:g}_st{job.steps}_p{job.passes}"


def save_result(result: RenderResult, folder: Path) -> dict[str, Path]:
    """Write final PNG, filmstrip PNG, animation and the 32x32 crop; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(result)
    metadata = job_metadata(result)
    files = {
        "final": (f"{stem}.png", png_bytes(result.final, metadata)),
        "filmstrip": (f"{stem}_strip.png", png_bytes(filmstrip(result.frames), metadata)),
        "animation": (f"{stem}.webp", animation_bytes(result.frames)),
        "crop": (f"{stem}_crop.png", png_bytes(result.tiles, metadata)),
    }
    paths = {}
    for kind, (name, data) in files.items():
        path = folder / name
        path.write_bytes(data)
        paths[kind] = path
    return paths
