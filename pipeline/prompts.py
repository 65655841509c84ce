"""Users' prompts → CLIP text embeddings, cut to CLIP's 77 tokens where longer.

The empty prompt's embedding is computed once at load (pipeline.models); this module encodes
the others, once per render (not per pass). In the low and minimal VRAM modes the text encoder
lives on the CPU after that first encoding; a prompted render moves it to the GPU for the
encoding and back (0.25 GB in fp16: a few tens of milliseconds each way), since CLIP in fp16 on
a CPU is slow or unsupported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EncodedPrompts:
    embeds: torch.Tensor  # (len(prompts), tokens, hidden), on the pipeline's device
    used: list[str | None]  # per prompt: the part CLIP saw where it was cut, else None


def kept_part(tokenizer, prompt: str) -> str | None:
    """The text of the tokens CLIP keeps when `prompt` is longer than its context, else None.

    CLIP reads model_max_length tokens (77), its start and end markers included; diffusers
    silently drops the rest, so the caller can tell the user which words counted.
    """
    ids = tokenizer(prompt, truncation=False).input_ids
    limit = tokenizer.model_max_length
    if len(ids) <= limit:
        return None
    return tokenizer.decode(ids[1 : limit - 1], skip_special_tokens=True).strip()


@contextlib.contextmanager
def text_encoder_on(pipe, device: str) -> Iterator[None]:
    """The text encoder on `device` for the block, back where it was afterwards."""
    home = pipe.text_encoder.device
    moved = home.type != torch.device(device).type
    if moved:
        pipe.text_encoder.to(device)
    try:
        yield
    finally:
        if moved:
            pipe.text_encoder.to(home)


@torch.inference_mode()
def encode_prompts(pipe, device: str, prompts: Sequence[str],
                   empty_embeds: torch.Tensor) -> EncodedPrompts:
    """One embedding per prompt; an empty prompt takes `empty_embeds` (the load-time one)."""
    distinct = sorted({p for p in prompts if p})
    encoded: dict[str, torch.Tensor] = {"": empty_embeds[0]}
    if distinct:
        with text_encoder_on(pipe, device):
            embeds, _ = pipe.encode_prompt(
                distinct, device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
        encoded.update(zip(distinct, embeds, strict=True))
    return EncodedPrompts(
        embeds=torch.stack([encoded[p] for p in prompts]),
        used=[kept_part(pipe.tokenizer, p) if p else None for p in prompts],
    )
