"""The locator picture: the whole canvas scaled down, the crop marked where it is."""

import io

from PIL import Image

from pipeline.canvases import Crop
from pipeline.locator import LOCATOR_SIDE, MARK, locator_jpeg, mark_box


def _picture(crop):
    return Image.open(io.BytesIO(locator_jpeg(crop))).convert("RGB")


def _magenta(colour):
    red, green, blue = colour
    return red > 180 and blue > 180 and green < 100


def test_the_whole_canvas_is_scaled_to_the_locator_side():
    """2023's 3000x2000 canvas becomes 200x133, the square ones 200x200."""
    assert _picture(Crop("2023", 0, 0)).size == (LOCATOR_SIDE, round(2000 * LOCATOR_SIDE / 3000))
    assert _picture(Crop("2017", 0, 0)).size == (LOCATOR_SIDE, LOCATOR_SIDE)


def test_the_mark_is_drawn_around_the_crop():
    """The mark's edge is magenta where the crop is, and no mark is drawn far away."""
    crop = Crop("2022", 1000, 400)
    left, top, right, bottom = mark_box(crop, (200, 200), (2000, 2000))
    assert left <= 1016 / 10 <= right and top <= 416 / 10 <= bottom
    picture = _picture(crop)
    assert _magenta(picture.getpixel((left + 1, (top + bottom) // 2)))
    assert _magenta(picture.getpixel((right - 1, (top + bottom) // 2)))  # 2 pixels wide
    assert not any(_magenta(picture.getpixel((x, 180))) for x in range(200))
    assert MARK == (255, 0, 255)


def test_a_crop_in_a_corner_is_marked_inside_the_picture():
    """The mark is kept on the picture: the bottom-right crop's box ends at the edge."""
    left, top, right, bottom = mark_box(Crop("2017", 968, 968), (200, 200), (1000, 1000))
    assert 0 <= left < right <= 199 and 0 <= top < bottom <= 199
    assert right - left >= 12
