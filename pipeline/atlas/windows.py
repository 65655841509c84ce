"""A crop window drawn inside an artwork.

The window's centre is a tile of the artwork (its outline or border), drawn uniformly over
its tiles, so every part of it can come up; an artwork no larger than the window in either
direction gets the window centred on its box, so it is shown whole. The window is then moved
inside the canvas where the artwork touches an edge (its centre may then leave the outline,
never the window the artwork). Boring windows (one colour over 90%) are drawn again, as
random crops are, and after MAX_CROP_DRAWS the last one is kept.
"""

from __future__ import annotations

import random

from pipeline.atlas.entries import Artwork
from pipeline.atlas.index import TileSampler
from pipeline.canvases import CROP_SIZE, MAX_CROP_DRAWS, Crop, crop_canvas, crop_range, is_boring

HALF = CROP_SIZE // 2  # the window's centre tile is HALF tiles right of and below its corner


def window_at(artwork: Artwork, centre: tuple[int, int]) -> Crop:
    """The window centred on `centre`, moved inside the canvas."""
    max_x, max_y = crop_range(artwork.year)
    x, y = centre
    return Crop(artwork.year, min(max(x - HALF, 0), max_x), min(max(y - HALF, 0), max_y))


def fits_window(artwork: Artwork) -> bool:
    """The artwork is no larger than a window: one window shows it whole."""
    return artwork.width <= CROP_SIZE and artwork.height <= CROP_SIZE


def box_centre(artwork: Artwork) -> tuple[int, int]:
    left, top, right, bottom = artwork.box
    return (left + right + 1) // 2, (top + bottom + 1) // 2


def artwork_crop(artwork: Artwork, rng: random.Random) -> Crop:
    """A crop of the artwork, redrawn while boring (see the module's docstring)."""
    if fits_window(artwork):
        return window_at(artwork, box_centre(artwork))  # the only window that shows it whole
    tiles = TileSampler(artwork)
    crop = None
    for _ in range(MAX_CROP_DRAWS):
        crop = window_at(artwork, tiles.tile(rng.random()))
        if not is_boring(crop_canvas(crop)):
            return crop
    assert crop is not None  # MAX_CROP_DRAWS >= 1: the loop drew at least once
    return crop
