"""The result's embed and buttons carry every render parameter, derived from the definition."""

from PIL import Image

from pipeline.engine import RenderResult
from pipeline.params import PARAMS, RenderRequest
from placebot.views import newcrop_id, parse_custom_id, reroll_id, result_embed


def _result() -> RenderResult:
    job = RenderRequest(model="1.5", canvas="2022", x=7, y=9, seed=11, strength=0.3, steps=10,
                        recursions=2).resolve()
    frame = Image.new("RGB", (512, 512))
    return RenderResult(job=job, tiles=Image.new("RGB", (32, 32)), frames=[frame, frame],
                        pass_seconds=[1.0], model_id="local/model")


def test_embed_has_a_field_for_every_parameter():
    """Each parameter's label and value, plus the model id and the time."""
    result = _result()
    fields = {f.name: f.value for f in result_embed(result, "x.png").fields}
    assert {spec.label: fields[spec.label] for spec in PARAMS.values()} == {
        "Model": "1.5", "Canvas": "2022", "x": "7", "y": "9", "Seed": "11", "Strength": "0.3",
        "Steps": "10", "Recursions": "2"}
    assert fields["Model id"] == "local/model"


def test_reroll_button_asks_for_the_same_job_with_a_new_seed():
    """Re-roll's custom_id decodes to the job's parameters, its seed left open."""
    job = _result().job
    request = parse_custom_id(reroll_id(job)).request
    assert request == RenderRequest(**{**job.values(), "seed": None})


def test_newcrop_button_asks_for_the_same_parameters_on_a_new_crop():
    """New crop's custom_id keeps model, strength, steps and recursions only."""
    job = _result().job
    request = parse_custom_id(newcrop_id(job)).request
    assert request == RenderRequest(model="1.5", strength=0.3, steps=10, recursions=2)
    assert len(reroll_id(job)) <= 100  # Discord's limit for a custom_id
