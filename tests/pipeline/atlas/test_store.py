"""The atlas of every year from PLACE_ATLAS_DIR: loaded once, missing or corrupt files one log
line each, artworks found by key and by name, and crops drawn inside them."""

import logging
import random

import pytest

from pipeline.atlas import Atlas, AtlasMissing, UnknownArtwork
from pipeline.atlas.index import tiles_covered
from pipeline.atlas.windows import HALF
from pipeline.canvases import Crop
from pipeline.errors import ParamError
from tests.support.atlas_files import write_atlas


@pytest.fixture
def atlas(tmp_path):
    return Atlas(write_atlas(tmp_path / "atlas"))


def test_without_files_nothing_is_named_and_one_line_says_so(tmp_path, caplog):
    """No file: not downloaded, no overlaps (None), a clear refusal; one log line a year."""
    atlas = Atlas(tmp_path / "none")
    caplog.set_level(logging.INFO, logger="pipeline.atlas.store")
    assert not atlas.downloaded()
    assert atlas.overlapping(Crop("2022", 0, 0)) is None
    assert atlas.overlapping(Crop("2022", 5, 5)) is None
    with pytest.raises(AtlasMissing, match="has not downloaded the r/Place Atlas"):
        atlas.find("Star Wars")
    lines = [r.getMessage() for r in caplog.records if "atlas-2022.json" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("no atlas-2022.json")


def test_a_corrupt_year_is_one_warning_and_the_others_still_load(tmp_path, caplog):
    folder = write_atlas(tmp_path / "atlas")
    (folder / "atlas-2022.json").write_text('[{"id": 1, "name": "cut off')
    atlas = Atlas(folder)
    assert atlas.year("2022") is None and atlas.year("2022") is None
    assert atlas.find("bad apple").year == "2023"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the 2022 atlas is left out" in warnings[0].getMessage()


def test_a_year_is_read_once(atlas, monkeypatch):
    """Later calls use what the first one built: the file is not read again."""
    first = atlas.year("2022")
    monkeypatch.setattr("pipeline.atlas.store.read_year", lambda *a: pytest.fail("read again"))
    assert atlas.year("2022") is first
    assert atlas.overlapping(Crop("2022", 600, 750))[0].artwork.name == "Star Wars"


def test_artworks_are_found_by_key_and_by_exact_name(atlas):
    assert atlas.find("2022-000012").name == "Star Wars"
    assert atlas.find("  star wars ").key == "2022-000012"
    assert atlas.find("Flag of Belgium").id == "be1"  # two share the name: the larger
    assert atlas.find("Bad Apple!!", "2023").year == "2023"


def test_an_unknown_name_is_refused_with_the_closest_names(atlas):
    with pytest.raises(UnknownArtwork) as refusal:
        atlas.find("star warz")
    assert "no artwork named 'star warz'" in str(refusal.value)
    assert "closest: Star Wars (2022)" in str(refusal.value)


def test_a_key_of_another_canvas_than_the_chosen_one_is_refused(atlas):
    with pytest.raises(ParamError, match="on the 2022 canvas, not 2017: leave canvas out"):
        atlas.find("2022-000012", "2017")
    with pytest.raises(UnknownArtwork, match="not in the 2022 atlas"):
        atlas.artwork("2022-nosuch")


def test_search_merges_every_year_or_keeps_to_the_chosen_canvas(atlas):
    """Every year's matches, best first, unless a canvas is chosen."""
    assert atlas.search("tux")[0].year == "2017"
    assert atlas.search("bad apple")[0].year == "2023"
    assert {a.year for a in atlas.search("", None)} == {"2017", "2022", "2023"}
    assert {a.year for a in atlas.search("", "2023")} == {"2023"}


def test_a_crop_in_an_artwork_is_on_its_canvas_with_its_centre_inside(atlas):
    """2023's coordinates included: the crop's centre is a tile of Bad Apple on the canvas."""
    bad_apple = atlas.find("Bad Apple!!")
    crop = atlas.crop_in(bad_apple.key, random.Random(8))
    assert crop.canvas == "2023"
    assert tiles_covered(bad_apple, crop.x + HALF, crop.y + HALF, 1) == 1


def test_overlaps_name_up_to_three_artworks(atlas):
    found = atlas.overlapping(Crop("2022", 100, 100))
    assert [(o.artwork.name, o.share) for o in found] == [("Concave U", 0.75)]
    assert atlas.overlapping(Crop("2022", 1000, 1000)) == []  # looked up: nothing charted
