"""Reading a year's atlas file: both formats, the final period's outline, the coordinates."""

import json

import pytest

from pipeline.atlas.entries import AtlasFileError, covers_period, read_year
from tests.support.atlas_files import entries_2022, write_atlas

SIZES = {"2017": (1000, 1000), "2022": (2000, 2000), "2023": (3000, 2000)}


@pytest.mark.parametrize(("key", "period", "covered"), [
    ("1-166, T", 164, True),  # 2022's migrated keys: the main canvas, and the Final Clean
    ("T:0-1, 144", 144, True),  # 2017's: the main canvas's period 144 is in it
    ("T:0-1, 144", 1, False),  # period 1 of the variation T is not the main canvas's
    ("16-77, 80-247", 78, False),
    ("16-77, 80-247", 80, True),
    ("258-2", 254, True),  # a reversed range, as the atlas site reads it
    ("T", 1, False),  # a bare variation code: that variation's default period
    ("164", 164, True),
])
def test_a_period_key_covers_the_main_canvas_periods_it_lists(key, period, covered):
    """Comma-separated spans and single periods of the main canvas; variations never."""
    assert covers_period(key, period) is covered


def test_the_current_format_takes_the_outline_of_the_final_period(tmp_path):
    """An entry that moved is where its final-period outline puts it; entries painted over,
    only in a variation, or malformed are left out and counted."""
    read = read_year(write_atlas(tmp_path, ["2022"]) / "atlas-2022.json", "2022", SIZES["2022"])
    by_id = {a.id: a for a in read.artworks}
    assert by_id["mover"].box == (300, 300, 340, 340)
    assert "gone" not in by_id and "tfc" not in by_id and "broken" not in by_id
    assert read.skipped == 3
    assert by_id["000012"].subreddits == ("starwars_place",)
    assert by_id["000012"].box == (570, 698, 671, 844)  # the real atlas's Star Wars outline


def test_the_older_format_is_read_with_its_points_floored_to_tiles(tmp_path):
    """One outline per entry on pixel centres (838.5) names tile 838; the subreddit text
    "/r/linux, /r/archlinux" gives both names."""
    read = read_year(write_atlas(tmp_path, ["2017"]) / "atlas-2017.json", "2017", SIZES["2017"])
    [tux] = read.artworks
    assert tux.box == (838, 415, 886, 483)
    assert tux.subreddits == ("linux", "archlinux")
    assert tux.key == "2017-0" and tux.url == "https://2017.place-atlas.stefanocoding.me/#0"


def test_2023_coordinates_are_moved_onto_the_shipped_canvas(tmp_path):
    """The 2023 atlas centres (0, 0) on the canvas: its top-left is (-1500, -1000)."""
    read = read_year(write_atlas(tmp_path, ["2023"]) / "atlas-2023.json", "2023", SIZES["2023"])
    [bad_apple] = read.artworks
    assert bad_apple.box == (147 + 1500, 172 + 1000, 203 + 1500, 230 + 1000)


def test_an_outline_past_the_canvas_edge_is_clipped_to_it(tmp_path):
    """The box stays on the canvas (the atlas charts a few points just outside it)."""
    path = tmp_path / "atlas-2017.json"
    path.write_text(json.dumps([{"id": 1, "name": "Edge", "path": [[-8, -7], [20, -7],
                                                                  [20, 30]]}]))
    [edge] = read_year(path, "2017", SIZES["2017"]).artworks
    assert edge.box == (0, 0, 20, 30)


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG not json", "cannot be read as JSON"),
    (b'{"not": "a list"}', "not a list of entries"),
    (json.dumps(entries_2022()).encode(), "none is an artwork of the final 2023 canvas"),
])
def test_a_file_that_is_no_atlas_is_one_domain_error(tmp_path, content, message):
    """Not JSON, not a list, or another year's file: AtlasFileError saying which."""
    path = tmp_path / "atlas-2023.json"
    path.write_bytes(content)
    with pytest.raises(AtlasFileError, match=message):
        read_year(path, "2023", SIZES["2023"])
