import random

import pytest

from pipeline.params import Crop, RenderJob, RenderRequest, check_steps_strength


def test_defaults_are_what_the_original_really_ran():
    """strength 0.8 (its 0.05 never applied), 50 steps, 3 recursions = 4 passes."""
    job = RenderRequest().resolve(random.Random(0))
    assert (job.strength, job.steps, job.passes) == (0.8, 50, 4)


def test_resolve_reports_a_seed_when_none_given():
    job = RenderRequest().resolve(random.Random(0))
    assert isinstance(job.seed, int) and 0 <= job.seed < 2**32


def test_explicit_crop_and_seed_are_kept():
    job = RenderRequest(canvas="2022", x=5, y=6, seed=42).resolve()
    assert job.crop == Crop("2022", 5, 6) and job.seed == 42


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strength": 0.0}, r"strength must be in \(0, 1\] but is 0.0"),
        ({"strength": 1.5}, r"strength must be in \(0, 1\] but is 1.5"),
        ({"recursions": 6}, "recursions must be 0-5 but is 6"),
        ({"steps": 0}, "steps must be 1-150 but is 0"),
        ({"seed": -1}, "seed must be"),
        ({"model": "2.1"}, "model '2.1' is unknown"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(changes, message):
    with pytest.raises(ValueError, match=message):
        RenderRequest(**changes).validate()


def test_steps_times_strength_below_one_is_rejected():
    """int(steps * strength) == 0 would run no denoising step at all."""
    with pytest.raises(ValueError, match=r"2 x 0.3 = 0.6 runs no denoising step"):
        check_steps_strength(2, 0.3)


def test_job_round_trips_through_a_dict():
    job = RenderRequest(canvas="2017", x=1, y=2, seed=3).resolve()
    assert RenderJob.from_dict(job.to_dict()) == job
