"""The files a result is posted as, encoded to fit a server's upload limit, and progress previews.

Plain bytes: what carries them to Discord is placebot/discord_side/transport.py's job.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from pipeline.locator import locator_jpeg
from pipeline.outputs import animation_bytes, file_stem, filmstrip, job_metadata, png_bytes
from pipeline.results import RenderResult
from placebot import texts
from placebot.messages import UserFacingError

PREVIEW_HEIGHT = 192
LOCATOR_NAME = "locator.jpg"  # the embed's thumbnail: where on the canvas the crop is

NamedFile = tuple[str, bytes]


def jpeg_bytes(image: Image.Image, quality: int, scale: float = 1.0) -> bytes:
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def encode_result_files(result: RenderResult, size_limit: int) -> list[NamedFile]:
    """The final image, the filmstrip and the animation, in the best encoding that fits.

    PNGs carry the parameters in their metadata; when all three are too large for this
    server, the animation goes first, then JPEGs (then a smaller strip, then the final image
    alone) are used instead. A canvas crop whose artworks were looked up in the atlas also
    gets its locator picture (LOCATOR_NAME), where it fits beside the best of these.
    """
    stem = file_stem(result)
    metadata = job_metadata(result)
    strip = filmstrip(result.frames)
    encoded: dict[str, bytes] = {}

    def once(name: str, encode: Callable[[], bytes]) -> NamedFile:
        """Each file is encoded at most once, however many rungs of the ladder use it."""
        if name not in encoded:
            encoded[name] = encode()
        return name, encoded[name]

    def final_png() -> NamedFile:
        return once(f"{stem}.png", lambda: png_bytes(result.final, metadata))

    def strip_png() -> NamedFile:
        return once(f"{stem}_strip.png", lambda: png_bytes(strip, metadata))

    ladder: list[Callable[[], list[NamedFile]]] = [
        lambda: [final_png(), strip_png(),
                 (f"{stem}.webp", animation_bytes(result.frames))],
        lambda: [final_png(), strip_png()],
        lambda: [final_png(), (f"{stem}_strip.jpg", jpeg_bytes(strip, 90))],
        lambda: [(f"{stem}.jpg", jpeg_bytes(result.final, 90)),
                 (f"{stem}_strip.jpg", jpeg_bytes(strip, 80, 0.5))],
        lambda: [(f"{stem}.jpg", jpeg_bytes(result.final, 75))],
        lambda: [(f"{stem}.jpg", jpeg_bytes(result.final, 60, 0.5))],
    ]
    locator = ([(LOCATOR_NAME, locator_jpeg(result.job.crop))]
               if result.artworks is not None and not result.job.on_picture else [])
    for option in ladder:
        files = option()
        size = sum(len(data) for _, data in files)
        if size + sum(len(data) for _, data in locator) <= size_limit:
            return files + locator
        if size <= size_limit:
            return files
    raise UserFacingError(texts.OVER_UPLOAD_LIMIT.format(size_limit=size_limit))


def preview_jpeg(frames: list[Image.Image]) -> NamedFile:
    """A small JPEG filmstrip of the passes so far, for progress messages."""
    strip = filmstrip(frames)
    scale = PREVIEW_HEIGHT / strip.height
    return "progress.jpg", jpeg_bytes(strip, 80, scale)
