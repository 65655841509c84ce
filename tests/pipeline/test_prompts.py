"""Prompts in the engine, on the tiny model: guidance with a prompt, nothing new without one."""

import numpy as np
import pytest
import torch

from pipeline.params import NO_GUIDANCE, RenderJob, RenderRequest
from tests.conftest import FAST

LONG_PROMPT = "a castle made of pixels " * 10  # 240 characters: over 77 tokens for any CLIP


def _job(seed, **changes):
    return RenderRequest(canvas="2022", x=300, y=400, seed=seed, **{**FAST, **changes}).resolve()


def _pixels(image):
    return np.asarray(image, dtype=np.int16)


def _diffusers_pass(tiny_store, job, image, prompt, guidance):
    """One img2img pass by diffusers' own pipeline call, as the original script made it."""
    pipe = tiny_store.get("1.4").pipe
    with torch.inference_mode():
        return pipe(
            prompt, image=image, strength=job.strength, num_inference_steps=job.steps,
            guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(job.seed),
            output_type="pil",
        ).images[0]


def test_without_a_prompt_a_pass_is_diffusers_own_unguided_empty_prompt_pass(renderer, tiny_store):
    """No prompt: the engine's pass equals diffusers' call with "" and guidance off.

    Compared in the same run rather than against stored hashes, so it holds for whatever
    versions the ranges resolve to (the empty prompt with CFG is the same picture: CFG on
    identical embeddings is a no-op, so guidance 1 is the plain path).
    """
    job = _job(31, recursions=0)
    [ours] = renderer.render([job])
    theirs = _diffusers_pass(tiny_store, job, ours.frames[0], "", 1.0)
    assert np.abs(_pixels(ours.final) - _pixels(theirs)).max() <= 1


def test_without_a_prompt_a_batch_gives_each_job_the_picture_it_gets_alone(renderer):
    """Unprompted jobs batched together keep the images they get one at a time."""
    batch = renderer.render([_job(31), _job(32)])
    alone = [renderer.render([_job(seed)])[0] for seed in (31, 32)]
    for batched, single in zip(batch, alone, strict=True):
        assert np.abs(_pixels(batched.final) - _pixels(single.final)).max() <= 2


def test_a_prompt_turns_guidance_on_and_none_keeps_it_off():
    """A prompt resolves to the requested guidance; no prompt to guidance off, whatever asked."""
    assert _job(1, prompt="a red fox", guidance=5.0).guidance == 5.0
    assert _job(1, guidance=5.0).guidance == NO_GUIDANCE


def test_the_engine_guides_as_diffusers_does_with_the_same_prompt(renderer, tiny_store):
    """A prompted pass equals diffusers' own call with that prompt and guidance 7.5."""
    job = _job(41, recursions=0, prompt="a red fox")
    [ours] = renderer.render([job])
    theirs = _diffusers_pass(tiny_store, job, ours.frames[0], "a red fox", 7.5)
    assert np.abs(_pixels(ours.final) - _pixels(theirs)).max() <= 1


def test_a_prompt_changes_the_picture(renderer):
    """The same seed with and without a prompt gives different images."""
    [plain] = renderer.render([_job(42)])
    [prompted] = renderer.render([_job(42, prompt="a red fox")])
    assert np.abs(_pixels(prompted.final) - _pixels(plain.final)).mean() > 1


def test_jobs_with_different_prompts_share_a_batch_and_keep_their_pictures(renderer):
    """Prompts may differ within a batch; each job still gets the picture it gets alone."""
    fox, owl = _job(43, prompt="a red fox"), _job(44, prompt="an owl at night")
    assert fox.batch_key == owl.batch_key
    [alone] = renderer.render([owl])
    batch = renderer.render([fox, owl])
    assert np.abs(_pixels(batch[1].final) - _pixels(alone.final)).max() <= 2


def test_prompted_and_unprompted_jobs_do_not_share_a_batch(renderer):
    """Guidance is part of the batch key: a guided job never runs beside an unguided one."""
    with pytest.raises(ValueError, match="must share"):
        renderer.render([_job(45), _job(46, prompt="a red fox")])


def test_a_prompt_past_77_tokens_is_cut_and_the_result_says_what_counted(renderer):
    """The result names the part of a long prompt that CLIP read; a short one is not flagged."""
    long_job, short_job = _job(47, prompt=LONG_PROMPT), _job(48, prompt="a red fox")
    long_result, short_result = renderer.render([long_job, short_job])
    assert long_result.prompt_used and LONG_PROMPT.startswith(long_result.prompt_used[:20])
    assert len(long_result.prompt_used) < len(LONG_PROMPT.strip())
    assert short_result.prompt_used is None


def test_a_journal_row_from_before_prompts_reads_as_unprompted():
    """A row without prompt and guidance decodes to an empty prompt with guidance off."""
    row = {"canvas": "2022", "x": 1, "y": 2, "model": "1.4", "seed": 3, "strength": 0.8,
           "steps": 50, "passes": 4}  # as written before prompts existed
    job = RenderJob.from_dict(row)
    assert (job.prompt, job.guidance) == (None, NO_GUIDANCE)
