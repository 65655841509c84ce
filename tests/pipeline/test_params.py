import random
import re
from dataclasses import dataclass, fields
from unittest.mock import patch

import pytest

from pipeline.errors import ParamError
from pipeline.params import (
    PARAMS,
    RECROP_FIELDS,
    RESEED_FIELDS,
    Crop,
    RenderJob,
    RenderRequest,
    check_steps_strength,
    decode_payload,
    encode_payload,
    param,
    payload_pattern,
)


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
        ({"model": "2.1"}, "model '2.1' is unknown; choose one of 1.4, 1.5"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(changes, message):
    """validate() raises the domain error, naming the value and its bounds."""
    with pytest.raises(ParamError, match=message):
        RenderRequest(**changes).validate()


def test_steps_times_strength_below_one_is_rejected():
    """int(steps * strength) == 0 would run no denoising step at all."""
    with pytest.raises(ParamError, match=r"2 x 0.3 = 0.6 runs no denoising step"):
        check_steps_strength(2, 0.3)


def test_job_round_trips_through_a_dict():
    """to_dict then from_dict gives the same job, with the schema version in the row."""
    job = RenderRequest(canvas="2017", x=1, y=2, seed=3).resolve()
    assert RenderJob.from_dict(job.to_dict()) == job and job.to_dict()["schema"] == 2


# A journal row as written before the schema version existed (passes, not recursions).
ROW_WRITTEN_BY_THE_FIRST_VERSION = {"canvas": "2022", "x": 5, "y": 6, "model": "1.5",
                                    "seed": 42, "strength": 0.75, "steps": 20, "passes": 3}


def test_row_of_the_first_version_still_decodes():
    """An old journal row (no schema, passes) decodes to the job it described."""
    job = RenderJob.from_dict(ROW_WRITTEN_BY_THE_FIRST_VERSION)
    assert (job.crop, job.model, job.seed, job.strength, job.steps, job.passes) == (
        Crop("2022", 5, 6), "1.5", 42, 0.75, 20, 3)


def test_row_of_today_decodes_after_a_new_parameter_is_added():
    """A row written before a parameter existed decodes; the parameter takes its default."""
    row = RenderRequest(canvas="2017", x=1, y=2, seed=3).resolve().to_dict()

    @dataclass(frozen=True)
    class Extended(RenderJob):
        sharpness: int = param(3, label="Sharpness", help="edges", low=1, high=9, tag="h")

    extended_params = {**PARAMS, "sharpness": fields(Extended)[-1].metadata["param"]}
    with patch.dict(PARAMS, extended_params):
        job = Extended.from_dict(row)
    assert job.sharpness == 3 and job.crop == Crop("2017", 1, 2) and job.seed == 3


def test_unknown_keys_of_a_row_are_ignored():
    """A row from a newer version, or metadata with extra keys (model_id), still decodes."""
    row = {**RenderRequest(canvas="2017", x=1, y=2, seed=3).resolve().to_dict(),
           "model_id": "somewhere", "from_the_future": True}
    assert RenderJob.from_dict(row).seed == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [({"seed": "many"}, "seed 'many' is not a whole number"),
     ({"strength": 7}, r"strength must be in \(0, 1\] but is 7.0"),
     ({"canvas": "1999"}, "canvas '1999' is unknown")],
)
def test_malformed_row_raises_the_domain_error(change, message):
    """A bad value in a row is a ParamError naming it, so its caller can skip the row."""
    row = {**RenderRequest(canvas="2017", x=1, y=2, seed=3).resolve().to_dict(), **change}
    with pytest.raises(ParamError, match=message):
        RenderJob.from_dict(row)


def test_job_without_crop_or_seed_is_refused():
    """A RenderJob is resolved by definition: no open crop or seed."""
    with pytest.raises(ParamError, match="needs canvas, x, y, seed"):
        RenderJob()


@pytest.mark.parametrize("names", [RESEED_FIELDS, RECROP_FIELDS])
def test_button_payload_round_trips_through_its_pattern(names):
    """What encode_payload writes, payload_pattern matches and decode_payload reads back."""
    job = RenderRequest(model="1.5", canvas="2023", x=2968, y=1968, strength=0.123456789,
                        steps=150, recursions=5).resolve()
    match = re.fullmatch(payload_pattern(names), encode_payload(job, names))
    assert decode_payload(match.groupdict()).values(names) == job.values(names)


def test_reroll_keeps_the_crop_and_newcrop_draws_one():
    """Re-roll carries the crop and no seed; New crop carries neither."""
    assert {"canvas", "x", "y"} <= set(RESEED_FIELDS) and "seed" not in RESEED_FIELDS
    assert not {"canvas", "x", "y", "seed"} & set(RECROP_FIELDS)


def test_payload_missing_a_parameter_takes_its_default():
    """A button made before a parameter existed still parses."""
    match = re.fullmatch(payload_pattern(RECROP_FIELDS), ":m1.5:s0.5")
    assert decode_payload(match.groupdict()) == RenderRequest(model="1.5", strength=0.5)


def test_every_parameter_has_what_every_surface_needs():
    """Each parameter has a label and help, bounds, choices or a length (a yes/no one needs
    none), and a distinct tag."""
    tags = [p.tag for p in PARAMS.values() if p.tag]
    assert len(tags) == len(set(tags))
    for spec in PARAMS.values():
        assert spec.label and spec.help and len(spec.help) <= 80
        assert spec.choices or (spec.low is not None and spec.high is not None) or (
            spec.kind is str and (spec.max_length or spec.pattern)) or spec.kind is bool


def test_a_job_dreams_on_a_canvas_crop_or_a_picture_not_both():
    """A picture with a canvas is refused; a picture job needs its square."""
    with pytest.raises(ParamError, match="not on both"):
        RenderRequest(canvas="2017", picture="0123456789abcdef").validate()
    with pytest.raises(ParamError, match="needs offset, tiles"):
        RenderRequest(picture="0123456789abcdef").resolve()


def test_a_picture_key_must_be_a_content_hash():
    with pytest.raises(ParamError, match=r"picture '\.\./x' is not valid"):
        RenderRequest(picture="../x").validate()


def test_a_job_is_checked_unless_it_says_otherwise_and_a_row_keeps_its_choice():
    """safety_check: true for a request that does not say (an older journal row too), and
    a job's choice survives its journal row; text reads as a flag would give it."""
    job = RenderRequest(seed=1).resolve()
    assert job.safety_check is True
    unchecked = RenderRequest(seed=1, safety_check=False).resolve()
    assert RenderJob.from_dict(unchecked.to_dict()).safety_check is False
    row = {k: v for k, v in unchecked.to_dict().items() if k != "safety_check"}
    assert RenderJob.from_dict(row).safety_check is True
    assert PARAMS["safety_check"].parse("safety_check", "false") is False
    with pytest.raises(ParamError, match="safety_check 'maybe' is not true or false"):
        PARAMS["safety_check"].parse("safety_check", "maybe")
    with pytest.raises(ParamError, match="safety_check must be true or false"):
        RenderRequest(safety_check=1).validate()  # type: ignore[arg-type]
