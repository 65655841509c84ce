import numpy as np
import pytest
import torch

from pipeline.errors import RenderCancelled
from pipeline.params import RenderRequest
from tests.conftest import FAST


def _job(seed, **changes):
    return RenderRequest(canvas="2022", x=300, y=400, seed=seed, **{**FAST, **changes}).resolve()


def _pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_render_gives_input_then_one_512_frame_per_pass(renderer):
    """passes = recursions + 1; frames are the upscaled crop and then every pass."""
    [result] = renderer.render([_job(1, recursions=2)])
    assert len(result.frames) == 4
    assert all(frame.size == (512, 512) for frame in result.frames)
    assert len(result.pass_seconds) == 3


def test_same_seed_same_image(renderer):
    """Same parameters and seed on the same device and dtype: the same pixels."""
    [a] = renderer.render([_job(7)])
    [b] = renderer.render([_job(7)])
    assert (_pixels(a.final) == _pixels(b.final)).all()


def test_different_seed_different_image(renderer):
    [a] = renderer.render([_job(7)])
    [b] = renderer.render([_job(8)])
    assert np.abs(_pixels(a.final) - _pixels(b.final)).mean() > 1


def test_a_job_in_a_batch_gets_the_image_it_gets_alone(renderer):
    """One generator per job: batching does not change a job's picture."""
    [alone] = renderer.render([_job(11)])
    batch = renderer.render([_job(12), _job(11), _job(13)])
    difference = np.abs(_pixels(batch[1].final) - _pixels(alone.final))
    assert difference.max() <= 2  # identical up to float rounding of the batched matmuls
    assert np.abs(_pixels(batch[0].final) - _pixels(alone.final)).mean() > 1


def test_batch_rejects_incompatible_jobs(renderer):
    with pytest.raises(ValueError, match="must share"):
        renderer.render([_job(1), _job(2, steps=6)])


def test_cfg_on_the_empty_prompt_equals_cfg_off(renderer, tiny_store):
    """With an empty prompt, guidance 7.5 (the original's) computes what guidance off does."""
    job = _job(21, recursions=0)
    [ours] = renderer.render([job])
    model = tiny_store.get("1.4")
    with torch.inference_mode():
        original = model.pipe(
            "", image=ours.frames[0], strength=job.strength, num_inference_steps=job.steps,
            guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(job.seed),
        ).images[0]
    assert np.abs(_pixels(original) - _pixels(ours.final)).max() <= 1


def test_progress_callback_after_every_pass(renderer):
    seen = []
    renderer.render(
        [_job(3, recursions=2)], on_pass=lambda i, n, frames: seen.append((i, n, len(frames)))
    )
    assert seen == [(0, 1, 2), (0, 2, 3), (0, 3, 4)]


def test_cancel_stops_within_one_step(renderer, tiny_store):
    """A stop request is honoured after the denoising step in which it arrives."""
    steps_run = []
    original_unet = tiny_store.get("1.4").pipe.unet.forward

    def counting_forward(*args, **kwargs):
        steps_run.append(1)
        return original_unet(*args, **kwargs)

    unet = tiny_store.get("1.4").pipe.unet
    unet.forward = counting_forward
    try:
        with pytest.raises(RenderCancelled, match="user pressed cancel"):
            renderer.render(
                [_job(4, steps=20, strength=1.0, recursions=3)],
                should_stop=lambda: "user pressed cancel" if steps_run else None,
            )
    finally:
        del unet.forward
    assert len(steps_run) == 1


def test_a_memory_bounded_mode_gives_a_prompted_job_half_the_unet_batch():
    """low and minimal cap a UNet call at 4 images; a prompted job takes two of them."""
    from pipeline.engine import jobs_per_call

    assert jobs_per_call(4, 1.0, "low") == 4
    assert jobs_per_call(4, 7.5, "low") == 2
    assert jobs_per_call(4, 7.5, "minimal") == 2
    assert jobs_per_call(1, 7.5, "low") == 1
    assert jobs_per_call(16, 7.5, "full") == 16


def test_a_batch_run_in_parts_keeps_each_jobs_picture_and_progress(renderer, tiny_store):
    """In low mode a prompted batch of 3 runs as calls of 2 and 1: every job still gets its own
    picture, and progress names each job by its place in the whole batch."""
    jobs = [_job(seed, prompt="a castle", recursions=0) for seed in (31, 32, 33)]
    whole = renderer.render(jobs)
    model = tiny_store.get("1.4")
    pipe_class = type(model.pipe)
    plain_call = pipe_class.__call__
    calls = []

    def counting_call(pipe, *args, **kwargs):
        calls.append(len(kwargs["image"]))
        return plain_call(pipe, *args, **kwargs)

    seen = []
    model.vram_mode = "low"
    pipe_class.__call__ = counting_call
    try:
        parts = renderer.render(jobs, on_pass=lambda index, number, frames: seen.append(index))
    finally:
        pipe_class.__call__ = plain_call
        model.vram_mode = "full"
    assert calls == [2, 1]
    assert seen == [0, 1, 2]
    for part, batched in zip(parts, whole, strict=True):
        assert np.abs(_pixels(part.final) - _pixels(batched.final)).max() <= 2
