"""A user's picture as the source of a dream: decoded safely, pixelated, squared, upscaled.

The picture is untrusted. Its size is read from the header and refused above MAX_PIXELS before
any pixel is decoded (a decompression bomb costs nothing); only PNG, JPEG, WebP and GIF are
opened; an animation gives its first frame. Every colour mode comes out as RGB: CMYK and
palettes are converted, 16-bit greys scaled to 8 bits (not clipped to white), and transparent
areas composited on white (BACKGROUND), as a chat client shows them on its light theme.

Then it is made to look like a canvas crop: the picture is reduced so its short side is `pixel`
tiles (the default 32 is the r/Place look; 512 keeps the picture as it is), and one square of
it is upscaled NEAREST to 512x512 (pipeline.canvases.upscale). The reduced picture (the
"source") keeps the long side, up to MAX_SQUARES squares of it around the centre, so that New
crop can take another square of a picture that is not square.
"""

from __future__ import annotations

import base64
import io
import random
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.canvases import OUTPUT_SIZE
from pipeline.errors import PipelineError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_PIXELS = 25_000_000  # width x height, checked before decoding
BACKGROUND = (255, 255, 255)  # transparent areas are composited on white
DEFAULT_PIXEL = 32  # tiles on the short side: a canvas crop's 32
MIN_PIXEL = 8
MAX_PIXEL = OUTPUT_SIZE  # 512: the picture as it is
MAX_SQUARES = 4  # the source keeps at most this many squares' length of the long side


class ImageSourceError(PipelineError):
    """The picture cannot be used; the message says why, for the person who sent it."""


def decode(data: bytes) -> Image.Image:
    """The picture's first frame as RGB; ImageSourceError naming what is wrong otherwise."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageSourceError("that file is not an image this bot reads "
                               f"({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise ImageSourceError(f"the image has more than {MAX_PIXELS / 1e6:.0f} megapixels, "
                               "which is the most allowed") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageSourceError(f"the image is {width}x{height} ({width * height / 1e6:.0f} "
                               f"megapixels); at most {MAX_PIXELS / 1e6:.0f} are allowed")
    if min(width, height) < 1:
        raise ImageSourceError(f"the image is {width}x{height}: it has no pixels")
    try:
        image.seek(0)  # the first frame of an animation
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):
        raise ImageSourceError("the image file is truncated or damaged") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the mode: 16-bit scaled, palettes and CMYK converted, alpha composited."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.uint32)
        peak = 65535 if image.mode.startswith("I;16") or pixels.max() > 255 else 255
        image = Image.fromarray((pixels * 255 // peak).astype(np.uint8), "L")
    has_alpha = image.mode in ("PA", "LA", "La", "RGBa")
    if has_alpha or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def check_pixel(pixel: int) -> None:
    if not (MIN_PIXEL <= pixel <= MAX_PIXEL):
        raise ImageSourceError(f"pixel must be {MIN_PIXEL}-{MAX_PIXEL} but is {pixel}")


def pixelate(image: Image.Image, pixel: int = DEFAULT_PIXEL) -> Image.Image:
    """The source: `image` reduced so its short side is `pixel`, its long side at most
    MAX_SQUARES times that (the centre part is kept)."""
    check_pixel(pixel)
    width, height = image.size
    short = min(width, height)
    keep = min(max(width, height), short * MAX_SQUARES)
    if width >= height:
        box = ((width - keep) // 2, 0, (width - keep) // 2 + keep, height)
        size = (max(pixel, round(keep * pixel / short)), pixel)
    else:
        box = (0, (height - keep) // 2, width, (height - keep) // 2 + keep)
        size = (pixel, max(pixel, round(keep * pixel / short)))
    # averaging blocks when reducing (the pixel-art look); sharp blocks when enlarging
    method = Image.Resampling.BOX if short >= pixel else Image.Resampling.NEAREST
    return image.resize(size, method, box=box)


def square_count(source: Image.Image) -> int:
    """How many distinct offsets a square can take along the source's long side."""
    return abs(source.width - source.height) + 1


def centre_offset(source: Image.Image) -> int:
    return (square_count(source) - 1) // 2


def random_offset(source: Image.Image, rng: random.Random) -> int:
    return rng.randrange(square_count(source))


def square(source: Image.Image, offset: int) -> Image.Image:
    """The pixel x pixel tiles at `offset` along the long side (0 = left or top)."""
    side = min(source.size)
    if not (0 <= offset < square_count(source)):
        raise ImageSourceError(f"offset must be 0-{square_count(source) - 1} but is {offset}")
    if source.width >= source.height:
        return source.crop((offset, 0, offset + side, side))
    return source.crop((0, offset, side, offset + side))


def tiles_text(tiles: Image.Image) -> str:
    """A square as the text a RenderJob carries (base64 PNG): small, and lossless."""
    buffer = io.BytesIO()
    tiles.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def tiles_from_text(text: str) -> Image.Image:
    """The square a RenderJob carries, decoded within the same bounds as any user's picture
    (a job may come from a journal row or another machine): RGB, square, MIN_PIXEL-MAX_PIXEL."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ImageSourceError("the job's picture is not valid base64") from None
    tiles = decode(data)
    if tiles.width != tiles.height or not (MIN_PIXEL <= tiles.width <= MAX_PIXEL):
        raise ImageSourceError(f"the job's picture is {tiles.width}x{tiles.height}; a square "
                               f"{MIN_PIXEL}-{MAX_PIXEL} tiles wide is needed")
    return tiles
