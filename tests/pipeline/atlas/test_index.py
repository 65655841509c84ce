"""Which artworks a crop shows: the grid, and outlines counted tile by tile."""

import random

import numpy as np

from pipeline.atlas.entries import Artwork
from pipeline.atlas.index import GridIndex, TileSampler, tiles_covered
from tests.support.atlas_files import U_SHAPE, U_TILES


def artwork(outline, name="A", id_="a"):
    """An artwork of the 2022 canvas with this outline (its points already canvas tiles)."""
    return Artwork.on_canvas("2022", id_, name, (), np.array(outline, dtype=np.int32),
                             (2000, 2000))


U = artwork(U_SHAPE, "Concave U")


def test_a_concave_outline_covers_its_arms_and_not_its_notch():
    """Tile level: the U's notch is outside it, its border tiles inside, every tile counted."""
    assert tiles_covered(U, 116, 116, 32) == 0  # the window lies in the notch
    assert tiles_covered(U, 100, 100, 32) == 32 * 32 - 16 * 16  # a corner, a quarter notch
    assert tiles_covered(U, 100, 100, 64) == U_TILES
    assert tiles_covered(U, 84, 100, 32) == 16 * 32  # half the window on the left arm


def test_a_window_in_the_notch_shows_no_artwork_though_its_box_does():
    """The grid offers the U (its box meets the window); the tiles then leave it out."""
    grid = GridIndex([U])
    assert grid.candidates(116, 120, 32) == [U]
    assert grid.overlapping(116, 120, 32) == []


def test_overlaps_are_ranked_by_the_share_of_the_window_they_cover():
    """The artwork covering more of the window comes first; each share is tiles / 1024."""
    wide = artwork([[0, 0], [40, 0], [40, 19], [0, 19]], "Wide", "w")  # rows 0-19
    low = artwork([[0, 20], [40, 20], [40, 40], [0, 40]], "Low", "l")  # rows 20-40
    far = artwork([[500, 500], [540, 500], [540, 540]], "Far", "f")
    found = GridIndex([low, far, wide]).overlapping(0, 0, 32)
    assert [(o.artwork.name, o.share) for o in found] == [("Wide", 20 / 32), ("Low", 12 / 32)]


def test_the_grid_finds_an_artwork_spanning_many_cells_once():
    """A strip across the canvas is listed in every cell it meets, and found once."""
    strip = artwork([[0, 300], [1999, 300], [1999, 310], [0, 310]], "Strip", "s")
    grid = GridIndex([strip])
    assert [o.artwork for o in grid.overlapping(1000, 290, 32)] == [strip]
    assert [o.artwork for o in grid.overlapping(1000, 320, 32)] == []


def test_drawn_tiles_are_the_artworks_own_and_reach_all_of_it():
    """Every drawn tile of the U lies in it (not in the notch), and draws reach both arms."""
    sampler = TileSampler(U)
    rng = random.Random(5)
    tiles = [sampler.tile(rng.random()) for _ in range(400)]
    assert sampler.tiles == U_TILES
    assert all(tiles_covered(U, x, y, 1) == 1 for x, y in tiles)
    assert any(x < 116 and y > 120 for x, y in tiles) and any(x > 147 and y > 120
                                                               for x, y in tiles)
    assert sampler.tile(0.0) == (100, 100) and sampler.tile(0.999999) == (163, 163)
