"""The NSFW checker: run image by image, only for the jobs that are checked, loaded lazily."""

import numpy as np
import pytest

from pipeline.engine import Renderer
from pipeline.errors import ModelLoadError
from pipeline.models import ModelStore
from pipeline.params import RenderRequest
from pipeline.safety import placement_for
from tests.conftest import FAST


def _job(seed, checked):
    return RenderRequest(canvas="2022", x=300, y=400, seed=seed, safety_check=checked,
                         **FAST).resolve()


def _black(image) -> bool:
    return not np.asarray(image).any()


def _store(folder, **options):
    return ModelStore({"1.4": str(folder)}, device="cpu", **options)


def test_checked_and_unchecked_jobs_share_a_batch_and_only_checked_images_are_screened(
        flagging_model_dir):
    """One pipeline call a pass for both jobs; the checker (flagging everything) blacks out
    every pass of the checked job only, and only its result says so."""
    store = _store(flagging_model_dir)
    calls = []
    pipe = store.get("1.4").pipe
    original = pipe.__call__

    class Counting(type(pipe)):
        def __call__(self, *args, **kwargs):
            calls.append(len(kwargs["image"]))
            return original(*args, **kwargs)

    pipe.__class__ = Counting
    checked, unchecked = Renderer(store).render([_job(1, True), _job(2, False)])
    assert calls == [2, 2]  # two passes, each one call for the batch of two
    assert checked.nsfw_flagged and all(_black(frame) for frame in checked.frames[1:])
    assert not unchecked.nsfw_flagged and not any(_black(f) for f in unchecked.frames[1:])


def test_the_checker_loads_only_when_a_job_is_checked(tiny_model_dir):
    """An unchecked job loads the model alone; the first checked one adds the checker,
    which lets every image through (the tiny model's checker flags nothing)."""
    store = _store(tiny_model_dir)
    renderer = Renderer(store)
    [plain] = renderer.render([_job(3, False)])
    assert store.is_loaded("1.4") and not store.has_checker("1.4")
    assert not renderer.is_ready([_job(4, True)]) and renderer.is_ready([_job(4, False)])
    renderer.prepare([_job(4, True)])
    assert store.has_checker("1.4") and renderer.is_ready([_job(4, True)])
    [checked] = renderer.render([_job(3, True)])
    assert not checked.nsfw_flagged
    assert (np.asarray(checked.final) == np.asarray(plain.final)).all()


@pytest.mark.parametrize(("setting", "job_says", "blacked"), [
    ("true", False, True),  # PLACE_SAFETY_CHECKER=true: every job, whatever it says
    ("false", True, False),  # false: none, and the checker is never loaded
    ("auto", True, True),
])
def test_the_owners_true_and_false_override_what_a_job_says(flagging_model_dir, setting,
                                                            job_says, blacked):
    """PLACE_SAFETY_CHECKER=true checks every job, false none; auto follows the job."""
    store = _store(flagging_model_dir, safety_checker=setting)
    [result] = Renderer(store).render([_job(5, job_says)])
    assert result.nsfw_flagged is blacked and _black(result.final) is blacked
    assert store.has_checker("1.4") is blacked


def test_a_model_without_its_checker_fails_a_checked_job_with_the_owners_ways_out(
        tiny_model_dir, tmp_path):
    """A local model folder lacking safety_checker/: ModelLoadError naming the setting that
    turns the checker off and the download command; an unchecked job still renders."""
    import shutil

    folder = tmp_path / "no-checker"
    shutil.copytree(tiny_model_dir, folder)
    shutil.rmtree(folder / "safety_checker")
    renderer = Renderer(_store(folder))
    renderer.render([_job(6, False)])
    with pytest.raises(ModelLoadError) as error:
        renderer.render([_job(6, True)])
    assert "PLACE_SAFETY_CHECKER=false" in str(error.value)
    assert "python -m pipeline.download" in str(error.value)


def test_the_checker_runs_on_the_gpu_in_full_mode_and_streams_in_low_and_minimal():
    """full has the room; low keeps its 3 GiB and minimal its 1 GiB by offloading it; a CPU
    device runs it there. The bench's placement choice is only taken on a GPU."""
    assert [placement_for("cuda", mode) for mode in ("full", "low", "minimal")] == [
        "gpu", "offload", "offload"]
    assert placement_for("cpu", "full", "gpu") == "cpu"
    assert placement_for("cuda", "low", "cpu") == "cpu"
    with pytest.raises(ValueError, match="placement 'disk' is unknown"):
        placement_for("cuda", "low", "disk")
