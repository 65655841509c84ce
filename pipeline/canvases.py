"""The three final r/Place canvases (shipped in pipeline/canvas_files/, see PROVENANCE.md
there), and the crops taken from them.

A canvas image is decoded once, on first use, and shared: the 2023 canvas is 3000x2000 and
decoding it costs tens of milliseconds and 18 MB of RAM, so nothing loads at import time.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.errors import ParamError

CANVAS_DIR = Path(__file__).with_name("canvas_files")
CANVAS_FILES = {"2017": "place2017.png", "2022": "place2022.png", "2023": "place2023.png"}
CANVAS_KEYS = tuple(CANVAS_FILES)
CROP_SIZE = 32
OUTPUT_SIZE = 512
BORING_FRACTION = 0.9  # one colour over this share of a crop: blank or unfinished area
MAX_CROP_DRAWS = 20



@dataclass(frozen=True)
class Crop:
    """A CROP_SIZE square of a canvas, by its top-left tile."""

    canvas: str
    x: int
    y: int


_images: dict[str, Image.Image] = {}
_sizes: dict[str, tuple[int, int]] = {}
_lock = threading.Lock()


def _check_key(canvas: str) -> None:
    if canvas not in CANVAS_FILES:
        raise ParamError(f"canvas {canvas!r} is unknown; choose one of {', '.join(CANVAS_KEYS)}")


def canvas_size(canvas: str) -> tuple[int, int]:
    """(width, height) in tiles, read from the PNG header without decoding the pixels."""
    _check_key(canvas)
    if canvas not in _sizes:
        with Image.open(CANVAS_DIR / CANVAS_FILES[canvas]) as image:
            _sizes[canvas] = image.size
    return _sizes[canvas]


def load_canvas(canvas: str) -> Image.Image:
    """The whole canvas as RGB, decoded once per process."""
    _check_key(canvas)
    with _lock:
        if canvas not in _images:
            with Image.open(CANVAS_DIR / CANVAS_FILES[canvas]) as image:
                _images[canvas] = image.convert("RGB")
        return _images[canvas]


def crop_range(canvas: str) -> tuple[int, int]:
    """The largest allowed top-left (x, y) for a crop of this canvas."""
    width, height = canvas_size(canvas)
    return width - CROP_SIZE, height - CROP_SIZE


def widest_crop_range() -> tuple[int, int]:
    """The largest top-left (x, y) over all canvases: the bounds a form can offer before the
    canvas is known (read from the PNG headers only)."""
    ranges = [crop_range(key) for key in CANVAS_KEYS]
    return max(x for x, _ in ranges), max(y for _, y in ranges)


def check_crop_position(canvas: str | None, x: int | None, y: int | None) -> None:
    """Raise ParamError unless (canvas, x, y) names a crop inside the canvas, or leaves it open."""
    if canvas is not None:
        _check_key(canvas)
    if x is None and y is None:
        return
    if x is None or y is None:
        raise ParamError("give both x and y (the crop's top-left corner), or neither")
    if canvas is None:
        raise ParamError(f"x and y need a canvas: choose one of {', '.join(CANVAS_KEYS)}")
    max_x, max_y = crop_range(canvas)
    if not (0 <= x <= max_x and 0 <= y <= max_y):
        width, height = canvas_size(canvas)
        raise ParamError(
            f"({x}, {y}) is outside canvas {canvas} ({width}x{height}): "
            f"x must be 0-{max_x} and y 0-{max_y} for a {CROP_SIZE}x{CROP_SIZE} crop"
        )


def crop_canvas(crop: Crop) -> Image.Image:
    """The crop's 32x32 tiles, RGB."""
    check_crop_position(crop.canvas, crop.x, crop.y)
    box = (crop.x, crop.y, crop.x + CROP_SIZE, crop.y + CROP_SIZE)
    return load_canvas(crop.canvas).crop(box)


def is_boring(tiles: Image.Image) -> bool:
    """True when one colour covers BORING_FRACTION of the crop or more."""
    area = tiles.width * tiles.height
    colours = tiles.getcolors(maxcolors=area)
    # getcolors gives None only past maxcolors, and an image has no more colours than pixels
    assert colours is not None
    most = max(count for count, _colour in colours)
    return most >= BORING_FRACTION * area


def random_crop(rng: random.Random, canvas: str | None = None) -> Crop:
    """A uniform random crop (of a random canvas unless one is named), redrawn while boring.

    After MAX_CROP_DRAWS boring draws the last one is kept: a user gets a dull picture
    rather than an error, and the draw count stays bounded.
    """
    if canvas is not None:
        _check_key(canvas)
    crop = None
    for _ in range(MAX_CROP_DRAWS):
        key = canvas or rng.choice(CANVAS_KEYS)
        max_x, max_y = crop_range(key)
        crop = Crop(key, rng.randint(0, max_x), rng.randint(0, max_y))
        if not is_boring(crop_canvas(crop)):
            return crop
    assert crop is not None  # MAX_CROP_DRAWS >= 1: the loop drew at least once
    return crop


def upscale(tiles: Image.Image) -> Image.Image:
    """Nearest-neighbour to 512x512: every tile becomes an exact 16x16 block."""
    return tiles.convert("RGB").resize((OUTPUT_SIZE, OUTPUT_SIZE), Image.Resampling.NEAREST)
