"""A crop drawn inside an artwork: its centre in the outline, small ones whole, the canvas's
bounds kept, and boring windows drawn again."""

import random

from pipeline.atlas import windows
from pipeline.atlas.index import tiles_covered
from pipeline.atlas.windows import HALF, artwork_crop
from pipeline.canvases import CROP_SIZE, crop_range
from tests.pipeline.atlas.test_index import U, artwork


def test_the_window_centre_is_a_tile_of_the_artwork(monkeypatch):
    """Over many draws of the U, the centre tile is never in its notch."""
    monkeypatch.setattr(windows, "is_boring", lambda tiles: False)
    rng = random.Random(1)
    for _ in range(200):
        crop = artwork_crop(U, rng)
        assert crop.canvas == "2022"
        assert tiles_covered(U, crop.x + HALF, crop.y + HALF, 1) == 1, crop


def test_an_artwork_smaller_than_the_window_is_centred_in_it():
    """A 10x6 heart is shown whole, in the middle of the window, every time."""
    heart = artwork([[1800, 1800], [1809, 1800], [1809, 1805], [1800, 1805]])
    crops = {artwork_crop(heart, random.Random(seed)) for seed in range(5)}
    assert crops == {windows.window_at(heart, (1805, 1803))}
    [crop] = crops
    assert (crop.x, crop.y) == (1805 - HALF, 1803 - HALF)
    assert crop.x <= 1800 and crop.x + CROP_SIZE > 1809


def test_a_window_at_the_canvas_edge_stays_on_the_canvas(monkeypatch):
    """An artwork in the bottom-right corner gets windows inside the canvas."""
    monkeypatch.setattr(windows, "is_boring", lambda tiles: False)
    corner = artwork([[1950, 1950], [1999, 1950], [1999, 1999], [1950, 1999]])
    max_x, max_y = crop_range("2022")
    rng = random.Random(2)
    for _ in range(50):
        crop = artwork_crop(corner, rng)
        assert 0 <= crop.x <= max_x and 0 <= crop.y <= max_y


def test_a_boring_window_is_drawn_again(monkeypatch):
    """As for random crops: a window of one colour is redrawn, the first lively one kept."""
    verdicts = iter([True, True, False])
    monkeypatch.setattr(windows, "is_boring", lambda tiles: next(verdicts))
    artwork_crop(U, random.Random(3))
    assert next(verdicts, "spent") == "spent"


def test_after_every_draw_is_boring_the_last_is_kept(monkeypatch):
    """MAX_CROP_DRAWS boring windows: the last one is the crop (bounded, never an error)."""
    drawn = []
    monkeypatch.setattr(windows, "is_boring", lambda tiles: drawn.append(tiles) or True)
    crop = artwork_crop(U, random.Random(4))
    assert len(drawn) == windows.MAX_CROP_DRAWS
    assert tiles_covered(U, crop.x + HALF, crop.y + HALF, 1) == 1
