"""Which artworks a crop shows: a grid of bounding boxes, then the outlines rasterised on the
crop's tiles.

The grid finds the few artworks whose box meets the window (a cell holds every artwork whose
box meets it); each one's outline is then drawn onto a window-sized mask, tiles on its border
included, and the tiles counted. A lookup takes well under a millisecond (bench/atlas.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pipeline.atlas.entries import Artwork

CELL = 64  # tiles a grid cell spans; a 32-tile window meets at most 4 cells


@dataclass(frozen=True)
class Overlap:
    """An artwork and the share of the window's tiles it covers (0-1)."""

    artwork: Artwork
    share: float


def outline_mask(artwork: Artwork, left: int, top: int, width: int, height: int) -> Image.Image:
    """The artwork's tiles within the box (left, top, width, height): 255 inside (border
    included), 0 outside."""
    mask = Image.new("L", (width, height), 0)
    points = (artwork.outline - (left, top)).ravel().tolist()  # x0, y0, x1, y1, ...
    ImageDraw.Draw(mask).polygon(points, fill=255, outline=255)
    return mask


def tiles_covered(artwork: Artwork, left: int, top: int, size: int) -> int:
    """How many tiles of the size x size window at (left, top) the artwork covers."""
    return outline_mask(artwork, left, top, size, size).histogram()[255]


class GridIndex:
    """A year's artworks by the grid cells their boxes meet."""

    def __init__(self, artworks: Sequence[Artwork]):
        self._cells: dict[tuple[int, int], list[Artwork]] = {}
        for artwork in artworks:
            left, top, right, bottom = artwork.box
            for cx in range(left // CELL, right // CELL + 1):
                for cy in range(top // CELL, bottom // CELL + 1):
                    self._cells.setdefault((cx, cy), []).append(artwork)

    def candidates(self, left: int, top: int, size: int) -> list[Artwork]:
        """Artworks whose box meets the window, each once, in atlas order."""
        right, bottom = left + size - 1, top + size - 1
        seen: dict[int, Artwork] = {}
        for cx in range(left // CELL, right // CELL + 1):
            for cy in range(top // CELL, bottom // CELL + 1):
                for artwork in self._cells.get((cx, cy), ()):
                    a_left, a_top, a_right, a_bottom = artwork.box
                    if a_left <= right and a_right >= left and a_top <= bottom \
                            and a_bottom >= top:
                        seen.setdefault(id(artwork), artwork)
        return list(seen.values())

    def overlapping(self, left: int, top: int, size: int) -> list[Overlap]:
        """Every artwork covering part of the window, largest share first (ties: the smaller
        artwork first, as the more specific name)."""
        found = []
        for artwork in self.candidates(left, top, size):
            covered = tiles_covered(artwork, left, top, size)
            if covered:
                found.append(Overlap(artwork, covered / (size * size)))
        found.sort(key=lambda o: (-o.share, o.artwork.area))
        return found


class TileSampler:
    """Draws tiles of an artwork (its outline and border) uniformly: its mask is drawn once."""

    def __init__(self, artwork: Artwork):
        left, top, right, bottom = artwork.box
        self._corner = left, top
        self._mask = np.asarray(
            outline_mask(artwork, left, top, right - left + 1, bottom - top + 1)) > 0
        self._per_row = np.cumsum(self._mask.sum(axis=1))
        self.tiles = int(self._per_row[-1])

    def tile(self, pick: float) -> tuple[int, int]:
        """The tile at fraction `pick` (0 <= pick < 1) of the artwork's tiles in reading
        order: a uniform draw over its tiles for a uniform `pick`."""
        left, top = self._corner
        if self.tiles == 0:  # an outline whose tiles all lie off the canvas: its box's corner
            return left, top
        index = min(int(pick * self.tiles), self.tiles - 1)
        row = int(np.searchsorted(self._per_row, index, side="right"))
        before = int(self._per_row[row - 1]) if row else 0
        column = int(np.flatnonzero(self._mask[row])[index - before])
        return left + column, top + row
