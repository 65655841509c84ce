"""A tiny random Stable Diffusion img2img model, saved like a real one.

The tests load it through the same `from_pretrained` path the bot uses for the Hub models
(PLACE_MODEL_1_4 may name a local diffusers folder). It keeps SD's shapes where they matter to
our code: 512x512 images, a VAE that downsamples by 8 to 64x64x4 latents, and a CLIP text
encoder with 77 tokens; the widths are tiny so a step costs milliseconds on a CPU.

Like the Hub's models it has its NSFW safety checker (diffusers' StableDiffusionSafetyChecker
on a tiny CLIP image tower, with its feature extractor), loaded apart by the engine. Its
thresholds are set so that its verdict is known: it flags nothing, or, in the copy
with_flagging_checker() makes, every image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

# the same byte-level CLIP vocabulary, and NSFW checker at tiny widths, as the bench's
from bench.sd15 import (
    ALWAYS_FLAGS,
    build_feature_extractor,
    build_safety_checker,
    write_tokenizer,
)


def with_flagging_checker(model_folder: Path, folder: Path) -> Path:
    """A copy of a tiny model whose safety checker flags every image."""
    shutil.copytree(model_folder, folder)
    shutil.rmtree(folder / "safety_checker")
    build_safety_checker("tiny", threshold=ALWAYS_FLAGS).save_pretrained(
        folder / "safety_checker")
    return folder


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Build and save_pretrained a tiny SD img2img pipeline into `folder`; return it."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),  # four blocks: downsample by 8, as SD's VAE
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
            layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
            pad_token_id=1, vocab_size=1000, max_position_embeddings=77,
        )
    )
    vocab, merges = write_tokenizer(folder / "_tokenizer_src")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
        steps_offset=1,
    )
    pipe = StableDiffusionImg2ImgPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=build_safety_checker("tiny"),
        feature_extractor=build_feature_extractor("tiny"),
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
