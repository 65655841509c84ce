"""A user's picture as a source: bounded decoding, every colour mode, pixelation, squares."""

import io
import random

import numpy as np
import pytest
from PIL import Image

from pipeline.canvases import upscale
from pipeline.image_source import (
    BACKGROUND,
    ImageSourceError,
    centre_offset,
    decode,
    pixelate,
    random_offset,
    square,
    square_count,
)
from tests.support import big_pictures


def _encode(image, fmt="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_a_file_that_is_not_an_image_is_named_so():
    """Text bytes give a clear error listing the formats read."""
    with pytest.raises(ImageSourceError, match=r"not an image .* \(PNG, JPEG, WEBP, GIF\)"):
        decode(b"hello, this is not a picture")


def test_a_bmp_is_not_among_the_formats_read():
    """Only PNG, JPEG, WebP and GIF are opened."""
    with pytest.raises(ImageSourceError, match="not an image"):
        decode(_encode(Image.new("RGB", (8, 8)), "BMP"))


def test_a_truncated_file_is_named_so():
    """A PNG cut in half is reported as truncated or damaged."""
    data = _encode(Image.effect_noise((64, 64), 50).convert("RGB"))
    with pytest.raises(ImageSourceError, match="truncated"):
        decode(data[: len(data) // 2])


def test_more_than_25_megapixels_is_refused_before_decoding():
    """A 6000x5000 picture (a small file: one colour) is refused by its header's size."""
    data = _encode(Image.new("1", (6000, 5000)))
    assert len(data) < 100_000
    with pytest.raises(ImageSourceError, match=r"6000x5000 \(30 megapixels\); at most 25"):
        decode(data)


def test_an_animated_gif_gives_its_first_frame():
    """The first frame of an animation is the picture."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert decode(data).getpixel((8, 8)) == (255, 0, 0)


def test_a_cmyk_jpeg_comes_out_rgb():
    """CMYK is converted: pure cyan ink reads as a cyan-ish RGB."""
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    red, green, blue = decode(_encode(cyan, "JPEG")).getpixel((8, 8))
    assert red < 40 and green > 200 and blue > 200


def test_a_16_bit_grey_png_is_scaled_not_clipped():
    """A mid-grey 16-bit PNG stays mid-grey (clipping would make it white)."""
    grey = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    assert decode(_encode(grey)).getpixel((8, 8)) == (127, 127, 127)


def test_a_palette_png_keeps_its_colours():
    """A palette image decodes to the palette's colours."""
    image = Image.new("RGB", (16, 16), (10, 200, 30)).quantize(colors=4)
    assert decode(_encode(image)).getpixel((8, 8)) == (10, 200, 30)


def test_transparency_is_composited_on_white():
    """A fully transparent pixel becomes BACKGROUND (white); an opaque one keeps its colour."""
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    image.putpixel((0, 0), (200, 0, 0, 255))
    decoded = decode(_encode(image))
    assert decoded.getpixel((8, 8)) == BACKGROUND == (255, 255, 255)
    assert decoded.getpixel((0, 0)) == (200, 0, 0)


def test_a_1x1_image_gives_a_flat_512_input():
    """The smallest picture still makes a 512x512 input, of its one colour."""
    source = pixelate(decode(_encode(Image.new("RGB", (1, 1), (9, 99, 199)))))
    tiles = square(source, centre_offset(source))
    assert tiles.size == (32, 32)
    assert upscale(tiles).getcolors() == [(512 * 512, (9, 99, 199))]


def test_a_wide_picture_keeps_its_long_side_for_new_crops():
    """1600x900 at pixel 32 → a 57x32 source: 26 squares, the centre one by default."""
    source = pixelate(Image.new("RGB", (1600, 900)), 32)
    assert source.size == (57, 32)
    assert square_count(source) == 26 and centre_offset(source) == 12
    offsets = {random_offset(source, random.Random(seed)) for seed in range(50)}
    assert len(offsets) > 1 and all(0 <= o < 26 for o in offsets)
    assert square(source, 25).size == (32, 32)


def test_a_very_long_picture_keeps_four_squares_around_its_centre():
    """A 100x2000 strip keeps 4 squares' length of its middle."""
    strip = Image.new("RGB", (100, 2000), (0, 0, 0))
    strip.paste((255, 255, 255), (0, 800, 100, 1200))  # a white band in the middle
    source = pixelate(strip, 10)
    assert source.size == (10, 40)
    assert source.getpixel((5, 20)) == (255, 255, 255)


def test_pixel_512_keeps_the_picture_as_it_is():
    """pixel=512 on a 512x512 picture changes no pixel, and the upscale is the identity."""
    picture = Image.effect_noise((512, 512), 60).convert("RGB")
    tiles = square(pixelate(picture, 512), 0)
    assert np.array_equal(np.asarray(upscale(tiles)), np.asarray(picture))


def test_the_512_input_is_exact_blocks_like_a_canvas_crop():
    """At pixel 32 every tile becomes one 16x16 block of one colour."""
    source = pixelate(Image.effect_noise((300, 300), 80).convert("RGB"), 32)
    big = np.asarray(upscale(square(source, 0)))
    blocks = big.reshape(32, 16, 32, 16, 3)
    assert (blocks == blocks[:, :1, :, :1, :]).all()


def test_a_pixel_size_out_of_bounds_is_named():
    """pixel outside 8-512 is an error naming the allowed range."""
    with pytest.raises(ImageSourceError, match="pixel must be 8-512 but is 4"):
        pixelate(Image.new("RGB", (64, 64)), 4)


def test_a_jobs_square_round_trips_as_text_and_is_bounded():
    """tiles_text/tiles_from_text are lossless; a non-square or oversized one is refused."""
    from pipeline.image_source import tiles_from_text, tiles_text

    square_tiles = Image.effect_noise((32, 32), 60).convert("RGB")
    assert tiles_from_text(tiles_text(square_tiles)).tobytes() == square_tiles.tobytes()
    with pytest.raises(ImageSourceError, match="a square"):
        tiles_from_text(tiles_text(Image.new("RGB", (32, 16))))
    with pytest.raises(ImageSourceError, match="not valid base64"):
        tiles_from_text("!!!")


def test_a_transparent_colour_in_an_rgb_png_is_composited_on_white():
    """An RGB PNG whose tRNS chunk makes black transparent: black comes out white (it came
    out black), other colours stay."""
    image = Image.new("RGB", (16, 16), (0, 0, 0))
    image.putpixel((0, 0), (200, 0, 0))
    decoded = decode(_encode(image, transparency=(0, 0, 0)))
    assert decoded.getpixel((8, 8)) == BACKGROUND
    assert decoded.getpixel((0, 0)) == (200, 0, 0)


def test_a_photos_exif_orientation_is_applied():
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to show)
    comes out upright: its stored 40x20 is shown 20x40, its stored top on the right."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 5))  # the stored top rows are red
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(_encode(stored, "JPEG", exif=exif, quality=95))
    assert decoded.size == (20, 40)
    red, _green, blue = decoded.getpixel((18, 20))
    assert red > 200 and blue < 60


def test_a_picture_whose_rows_would_outweigh_the_memory_bound_is_refused_before_decoding():
    """A 1x25,000,000 strip (25 megapixels, a 97 KB file) would take 300 MB as Pillow
    stores it (a pointer per row): refused by its shape, in one line, before any row."""
    with pytest.raises(ImageSourceError, match=r"1x25000000 .* too large to decode"):
        decode(big_pictures.strip_png())


def test_a_large_picture_is_decoded_no_larger_than_its_dream_needs():
    """A 5000x5000 picture for a 32-tile source comes back reduced, never below twice the
    tiles; its colours (transparency on white, premultiplied) as at full size."""
    decoded = decode(big_pictures.rgba_png(), min_short=32)
    assert 64 <= min(decoded.size) < 5000 / 2
    assert decoded.getpixel((10, 10)) == (135, 191, 247)  # 50% (16, 128, 240) on white
    grey = decode(big_pictures.grey16_png(), min_short=32)
    assert 64 <= min(grey.size) < 2500 and grey.getpixel((0, 0)) == (127, 127, 127)


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size():
    """A 5000x5000 JPEG is drafted at 1/8 before its pixels are read."""
    decoded = decode(big_pictures.large_jpeg(), min_short=32)
    assert 64 <= min(decoded.size) <= 5000 // 8


def test_pixelating_a_reduced_picture_looks_the_same():
    """The early reduction changes nothing a user sees: the source from a picture reduced
    while decoded matches the one from the whole picture, within a few levels of 255 (its
    blocks fall a pixel apart), even on noise."""
    image = Image.effect_noise((1600, 1200), 60).convert("RGB")
    data = _encode(image)
    whole, reduced = pixelate(decode(data), 32), pixelate(decode(data, min_short=32), 32)
    assert whole.size == reduced.size
    difference = np.abs(np.asarray(whole, np.int16) - np.asarray(reduced, np.int16))
    assert difference.max() <= 8 and difference.mean() < 2
