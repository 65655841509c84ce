import random

import numpy as np
import pytest
from PIL import Image

from pipeline.canvases import (
    CANVAS_KEYS,
    canvas_size,
    check_crop_position,
    crop_canvas,
    is_boring,
    random_crop,
    upscale,
)
from pipeline.params import Crop


def test_shipped_canvases_have_their_native_sizes():
    """The three final canvases ship with the project at one pixel per tile."""
    assert {key: canvas_size(key) for key in CANVAS_KEYS} == {
        "2017": (1000, 1000), "2022": (2000, 2000), "2023": (3000, 2000),
    }


def test_crop_is_32x32_rgb_at_the_given_top_left():
    """crop_canvas returns the 32x32 tiles whose top-left is (x, y)."""
    tiles = crop_canvas(Crop("2017", 100, 200))
    assert tiles.size == (32, 32) and tiles.mode == "RGB"


@pytest.mark.parametrize(("x", "y"), [(-1, 0), (0, -1), (969, 0), (0, 969), (5000, 5000)])
def test_crop_outside_canvas_names_canvas_and_range(x, y):
    """A crop that would leave the canvas is a ValueError naming canvas and allowed range."""
    with pytest.raises(ValueError, match=r"canvas 2017 \(1000x1000\).*x must be 0-968 and y 0-968"):
        check_crop_position("2017", x, y)


def test_last_valid_crop_position_is_accepted():
    """The bottom-right-most crop (width - 32, height - 32) is inside."""
    check_crop_position("2023", 2968, 1968)
    assert crop_canvas(Crop("2023", 2968, 1968)).size == (32, 32)


def test_only_one_coordinate_is_rejected():
    """x without y (or y without x) is an error, not a silent random choice."""
    with pytest.raises(ValueError, match="both x and y"):
        check_crop_position("2022", 10, None)


def test_coordinates_without_canvas_are_rejected():
    """x and y mean nothing without a canvas: the message lists the canvases."""
    with pytest.raises(ValueError, match="2017, 2022, 2023"):
        check_crop_position(None, 10, 10)


def test_unknown_canvas_lists_the_known_ones():
    with pytest.raises(ValueError, match="canvas '2019' is unknown; choose one of 2017, 20"):
        canvas_size("2019")


def test_upscale_turns_every_tile_into_an_exact_16x16_block():
    """NEAREST upscaling: each 16x16 block of the 512 image is one tile's colour."""
    tiles = crop_canvas(Crop("2022", 1000, 1000))
    big = np.asarray(upscale(tiles))
    assert big.shape == (512, 512, 3)
    blocks = big.reshape(32, 16, 32, 16, 3)
    assert (blocks == np.asarray(tiles)[:, None, :, None, :]).all()


def test_is_boring_detects_one_colour_over_90_percent():
    image = Image.new("RGB", (32, 32), "white")
    assert is_boring(image)
    for i in range(32 * 4):  # 12.5% other colour: not boring
        image.putpixel((i % 32, i // 32), (255, 0, 0))
    assert not is_boring(image)


def test_random_crop_redraws_boring_crops(monkeypatch):
    """A boring first draw is drawn again; the crop returned is the first interesting one."""
    calls = []

    def fake_boring(tiles):
        calls.append(tiles)
        return len(calls) < 3  # the first two draws are boring

    monkeypatch.setattr("pipeline.canvases.is_boring", fake_boring)
    crop = random_crop(random.Random(5), "2017")
    assert len(calls) == 3 and crop.canvas == "2017"


def test_random_crop_is_inside_and_uses_every_canvas():
    """Uniform crops land inside their canvas, and all three canvases get picked."""
    rng = random.Random(1)
    crops = [random_crop(rng) for _ in range(30)]
    for crop in crops:
        check_crop_position(crop.canvas, crop.x, crop.y)
    assert {crop.canvas for crop in crops} == set(CANVAS_KEYS)
