"""A small locator picture of a crop: the whole canvas scaled down, the crop marked on it.

It becomes the result embed's thumbnail, so people see where on r/Place their dream came
from. The scaled canvas is made once per canvas (tens of milliseconds) and kept; each locator
is a copy with a mark drawn on it, a JPEG of 30-45 KB. Blocking: run it in a thread.
"""

from __future__ import annotations

import io
import threading

from PIL import Image, ImageDraw

from pipeline.canvases import CROP_SIZE, Crop, canvas_size, check_crop_position, load_canvas

LOCATOR_SIDE = 200  # pixels on the long side (Discord shows a thumbnail at 80 at most)
MIN_MARK = 12  # the mark's side in pixels: a 32-tile crop is 2-6 pixels once scaled
MARK = (255, 0, 255)  # magenta, ringed in white: seen on any part of any canvas
RING = (255, 255, 255)

_scaled: dict[str, Image.Image] = {}
_lock = threading.Lock()


def scaled_canvas(canvas: str) -> Image.Image:
    """The canvas, LOCATOR_SIDE on its long side (shared: copy it before drawing)."""
    with _lock:
        if canvas not in _scaled:
            image = load_canvas(canvas)
            scale = LOCATOR_SIDE / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            _scaled[canvas] = image.resize(size, Image.Resampling.BOX)
        return _scaled[canvas]


def mark_box(crop: Crop, scaled: tuple[int, int], full: tuple[int, int]) -> tuple[int, ...]:
    """The mark's (left, top, right, bottom) on the scaled canvas: the crop's own square,
    grown to MIN_MARK around its centre, and kept on the picture."""
    scale = scaled[0] / full[0]
    centre_x = (crop.x + CROP_SIZE / 2) * scale
    centre_y = (crop.y + CROP_SIZE / 2) * scale
    half = max(CROP_SIZE * scale, MIN_MARK) / 2
    left = min(max(round(centre_x - half), 0), scaled[0] - 2 * round(half) - 1)
    top = min(max(round(centre_y - half), 0), scaled[1] - 2 * round(half) - 1)
    return left, top, left + 2 * round(half), top + 2 * round(half)


def locator_jpeg(crop: Crop) -> bytes:
    """The locator picture of the crop, as JPEG bytes."""
    check_crop_position(crop.canvas, crop.x, crop.y)
    base = scaled_canvas(crop.canvas)
    picture = base.copy()
    left, top, right, bottom = mark_box(crop, base.size, canvas_size(crop.canvas))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), outline=RING, width=1)
    draw.rectangle((left, top, right, bottom), outline=MARK, width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, subsampling=0)  # 4:4:4: a crisp mark
    return buffer.getvalue()
