import io

from PIL import Image

from pipeline.outputs import (
    animation_bytes,
    filmstrip,
    job_metadata,
    png_bytes,
    read_metadata,
    save_result,
)
from pipeline.params import PARAMS, RenderJob, RenderRequest
from tests.conftest import FAST


def _result(renderer, **changes):
    job = RenderRequest(canvas="2017", x=10, y=20, seed=5, **{**FAST, **changes}).resolve()
    return renderer.render([job])[0]


def test_filmstrip_is_passes_plus_one_frames_wide(renderer):
    """The strip holds the crop and every pass: (passes + 1) * 512 x 512."""
    result = _result(renderer, recursions=2)
    assert filmstrip(result.frames).size == ((3 + 1) * 512, 512)


def test_png_metadata_round_trips_every_parameter(renderer):
    """The final PNG alone is enough to reproduce a canvas crop's: every parameter is in its
    text (but a picture's square, which the crop file and the strip show)."""
    result = _result(renderer)
    metadata = read_metadata(png_bytes(result.final, job_metadata(result)))
    assert RenderJob.from_dict(metadata) == result.job
    assert metadata["model_id"] == result.model_id
    assert set(metadata) >= {"schema", *(name for name in PARAMS if name != "tiles")}


def test_animation_has_one_frame_per_image(renderer):
    result = _result(renderer)
    with Image.open(io.BytesIO(animation_bytes(result.frames))) as animation:
        assert animation.format == "WEBP" and animation.n_frames == len(result.frames)


def test_save_result_writes_all_files_with_safe_names(renderer, tmp_path):
    result = _result(renderer)
    paths = save_result(result, tmp_path)
    assert set(paths) == {"final", "filmstrip", "animation", "crop"}
    assert all(path.parent == tmp_path and path.stat().st_size > 0 for path in paths.values())
    assert paths["final"].name == "place2017_10_20_sd1.4_seed5_s0.5_st4_p2.png"


def _named_result(artworks):
    """A canvas result without a render, carrying the artworks its crop was found to show."""
    from pipeline.results import RenderResult

    job = RenderRequest(canvas="2022", x=600, y=750, seed=1).resolve()
    frame = Image.new("RGB", (512, 512))
    return RenderResult(job=job, tiles=Image.new("RGB", (32, 32)), frames=[frame, frame],
                        model_id="m", artworks=artworks)


def test_the_artworks_a_crop_shows_go_into_the_metadata():
    """Name, atlas page, subreddits and share of each; nothing where none was looked up."""
    from pipeline.atlas import Overlap
    from tests.pipeline.atlas.test_index import artwork

    poster = artwork([[571, 698], [671, 698], [671, 844]], "Star Wars", "000012")
    metadata = read_metadata(png_bytes(Image.new("RGB", (8, 8)),
                                       job_metadata(_named_result([Overlap(poster, 0.5)]))))
    assert metadata["artworks"] == [{"name": "Star Wars", "subreddits": [], "share": 0.5,
                                     "url": "https://2022.place-atlas.stefanocoding.me/#000012"}]
    assert "artworks" not in job_metadata(_named_result(None))
