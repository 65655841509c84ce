"""A user's picture as the source of a dream: decoded safely, pixelated, squared, upscaled.

The picture is untrusted. Its size is read from the header and refused above MAX_PIXELS before
any pixel is decoded (a decompression bomb costs nothing), and so is a picture whose decoded
form would take more than MAX_DECODED_BYTES of memory, counted as the decoder stores it (its
colour mode's bytes per pixel, and a pointer per row: a 1x25,000,000 strip of 48 KB would take
300 MB). A picture is decoded no larger than its dream needs where the format allows (a JPEG
at 1/2, 1/4 or 1/8 of its size) and reduced to that at once otherwise, before any colour
conversion copies it. Only PNG, JPEG, WebP and GIF are opened; an animation gives its first
frame; a damaged file of any kind is an ImageSourceError, never another exception. Every
colour mode comes out as RGB: CMYK and palettes are converted, 16-bit greys scaled to 8 bits
(not clipped to white), and transparent areas (an alpha channel, or a PNG's transparent
colour) composited on white (BACKGROUND), as a chat client shows them on its light theme. A
photo's EXIF orientation is applied, so that it dreams the right way up.

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
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.canvases import OUTPUT_SIZE
from pipeline.errors import PipelineError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_PIXELS = 25_000_000  # width x height, checked before decoding
# The memory the decoded picture may take, as Pillow stores it: a 25-megapixel RGB or RGBA
# picture (4 bytes a pixel) fits; a strip whose row pointers alone would outweigh it does not.
MAX_DECODED_BYTES = 128 * 1024 * 1024
ROW_OVERHEAD = 8  # bytes Pillow keeps for each row (its pointer)
BACKGROUND = (255, 255, 255)  # transparent areas are composited on white
DEFAULT_PIXEL = 32  # tiles on the short side: a canvas crop's 32
MIN_PIXEL = 8
MAX_PIXEL = OUTPUT_SIZE  # 512: the picture as it is
MAX_SQUARES = 4  # the source keeps at most this many squares' length of the long side
# A picture is reduced early to no less than this many times the tiles it becomes (the
# pixelation averages blocks of what is left: the same look, from far less memory).
REDUCE_MARGIN = 2
DAMAGED = "the image file is truncated or damaged"
# Why Pillow (or a plug-in of it) fails on a bad file: it has no single error type.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                 struct.error, zlib.error, Image.DecompressionBombWarning,
                 Image.DecompressionBombError)
_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


class ImageSourceError(PipelineError):
    """The picture cannot be used; the message says why, for the person who sent it."""


def bytes_per_pixel(mode: str) -> int:
    """How many bytes Pillow stores a pixel of this mode in."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4  # RGB is stored as RGBX; LA, PA, RGBA, CMYK, I, F are 4 bytes too


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """The memory Pillow takes for a decoded picture of this mode and size."""
    return height * (width * bytes_per_pixel(mode) + ROW_OVERHEAD)


def decode(data: bytes, min_short: int | None = None) -> Image.Image:
    """The picture's first frame as RGB, the right way up; ImageSourceError naming what is
    wrong otherwise. `min_short`: the dream needs no more than this many pixels on the short
    side (a larger picture may come back reduced, never below it)."""
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageSourceError("that file is not an image this bot reads "
                               f"({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise ImageSourceError(f"the image has more than {MAX_PIXELS / 1e6:.0f} megapixels, "
                               "which is the most allowed") from None
    except DECODE_ERRORS:  # a truncated WebP, a PNG text chunk past Pillow's limit ...
        raise ImageSourceError(DAMAGED) from None
    try:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageSourceError(f"the image is {width}x{height} ({width * height / 1e6:.0f} "
                                   f"megapixels); at most {MAX_PIXELS / 1e6:.0f} are allowed")
        if min(width, height) < 1:
            raise ImageSourceError(f"the image is {width}x{height}: it has no pixels")
        image.seek(0)  # the first frame of an animation
        if min_short is not None and image.format == "JPEG":  # decoded at 1/2, 1/4, 1/8
            scale = min(width, height) / (REDUCE_MARGIN * min_short)
            if scale >= 2:
                image.draft("RGB", (int(width / scale), int(height / scale)))
        if decoded_bytes(image.mode, *image.size) > MAX_DECODED_BYTES:
            raise ImageSourceError(f"the image is {width}x{height} pixels of mode {image.mode}, "
                                   "too large to decode within this bot's memory bounds "
                                   f"({MAX_DECODED_BYTES // 2**20} MB); try a smaller picture")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            orientation = _orientation(image)  # after the load: a PNG's may follow its pixels
            image = to_rgb(_reduced(image, min_short))
    except ImageSourceError:
        raise
    except DECODE_ERRORS:
        raise ImageSourceError(DAMAGED) from None
    transpose = _TRANSPOSES.get(orientation)
    return image if transpose is None else image.transpose(transpose)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored); an unreadable EXIF block counts as none."""
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except DECODE_ERRORS:
        return 1


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("PA", "LA", "La", "RGBA", "RGBa") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def _reduced(image: Image.Image, min_short: int | None) -> Image.Image:
    """The picture reduced by a whole factor to no less than REDUCE_MARGIN x min_short on its
    short side, before any colour conversion copies it at full size. Transparent pictures are
    averaged premultiplied (RGBa), so that a transparent pixel's hidden colour does not bleed
    into its neighbours."""
    if min_short is None:
        return image
    factor = min(image.size) // (REDUCE_MARGIN * min_short)
    if factor < 2:
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        image = _grey_8_bit(image)
    if _has_alpha(image):
        if image.mode not in ("RGBA", "RGBa"):
            image = image.convert("RGBA")
        image = image.convert("RGBa")
    elif image.mode in ("1", "P"):  # reduce() takes neither
        image = image.convert("RGB" if image.mode == "P" else "L")
    return image.reduce(factor)


def _grey_8_bit(image: Image.Image) -> Image.Image:
    """16- or 32-bit grey as 8-bit grey, scaled (65535 is white), not clipped; through a
    table, so that no full-size temporary array is made."""
    pixels = np.asarray(image)
    sixteen = image.mode.startswith("I;16") or int(pixels.max()) > 255
    peak = 65535 if sixteen else 255
    table = np.minimum(np.arange(65536, dtype=np.uint32) * 255 // peak, 255).astype(np.uint8)
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize > 2:
        pixels = np.clip(pixels, 0, 65535).astype(np.uint16)
    return Image.fromarray(table[pixels], "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the mode: 16-bit scaled, palettes and CMYK converted, transparency (an
    alpha channel, or a PNG's transparent colour) composited on white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        image = _grey_8_bit(image)
    if _has_alpha(image):
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
