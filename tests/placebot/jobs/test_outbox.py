"""The outbox keeps a finished result losslessly until it is removed."""

import itertools

import pytest
from PIL import Image

from pipeline.params import RenderJob
from pipeline.results import RenderResult
from placebot.jobs.outbox import MAX_RETRY_S, Outbox, retry_delays


def _result() -> RenderResult:
    job = RenderJob.from_dict({"model": "1.4", "canvas": "2017", "x": 1, "y": 2, "seed": 3,
                               "strength": 0.5, "steps": 4, "passes": 2})
    frames = [Image.new("RGB", (64, 64), (n * 40, 10, 200)) for n in range(3)]
    return RenderResult(job=job, tiles=Image.new("RGB", (32, 32), (1, 2, 3)), frames=frames,
                        pass_seconds=[0.5, 0.25], model_id="tiny", prompt_used="cut")


def test_a_kept_result_comes_back_pixel_for_pixel_with_its_facts(tmp_path):
    """keep then load: same frames, crop, timings and model id; remove forgets it."""
    outbox, result = Outbox(tmp_path / "outbox"), _result()
    outbox.keep("abc123", result)
    kept = outbox.load("abc123", result.job)
    assert [f.tobytes() for f in kept.frames] == [f.tobytes() for f in result.frames]
    assert kept.tiles.tobytes() == result.tiles.tobytes()
    assert (kept.pass_seconds, kept.model_id, kept.prompt_used) == ([0.5, 0.25], "tiny", "cut")
    outbox.remove("abc123")
    assert not outbox.holds("abc123")


def test_a_write_cut_short_is_not_taken_for_a_result(tmp_path):
    """Only a finished write (renamed into place) counts as a kept result."""
    outbox = Outbox(tmp_path / "outbox")
    (tmp_path / "outbox" / ".abc123.partial").mkdir(parents=True)
    assert not outbox.holds("abc123")


def test_a_job_id_that_is_not_plain_is_refused(tmp_path):
    """An id that could reach outside the folder raises, naming it."""
    with pytest.raises(ValueError, match=r"\.\./x"):
        Outbox(tmp_path).holds("../x")


def test_retries_back_off_up_to_a_ceiling():
    """Each delay doubles the last, and none exceeds MAX_RETRY_S."""
    delays = list(itertools.islice(retry_delays(), 12))
    assert delays[1] == 2 * delays[0] and max(delays) == MAX_RETRY_S
