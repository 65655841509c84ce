"""The files of a result: the locator picture beside them where the atlas was looked up."""

from PIL import Image

from pipeline.params import RenderRequest
from pipeline.results import RenderResult
from placebot.discord_side.result_files import LOCATOR_NAME, encode_result_files


def _result(artworks, **where):
    job = RenderRequest(seed=1, **(where or {"canvas": "2022", "x": 600, "y": 750})).resolve()
    frame = Image.new("RGB", (512, 512))
    return RenderResult(job=job, tiles=Image.new("RGB", (32, 32)), frames=[frame, frame],
                        model_id="m", artworks=artworks)


def test_a_crop_whose_artworks_were_looked_up_gets_its_locator():
    names = [name for name, _ in encode_result_files(_result([]), 8 * 1024 * 1024)]
    assert names[-1] == LOCATOR_NAME and len(names) == 4


def test_without_the_atlas_the_files_are_what_they_were():
    """artworks None (no atlas for the canvas): the final image, the strip, the animation."""
    names = [name for name, _ in encode_result_files(_result(None), 8 * 1024 * 1024)]
    assert LOCATOR_NAME not in names and len(names) == 3


def test_the_locator_gives_way_to_the_result_when_the_limit_is_tight():
    """A limit that the best files meet only without the locator: they are kept, it is not."""
    files = encode_result_files(_result(None), 8 * 1024 * 1024)
    limit = sum(len(data) for _, data in files) + 100
    names = [name for name, _ in encode_result_files(_result([]), limit)]
    assert names == [name for name, _ in files]
