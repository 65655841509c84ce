"""The Stable Diffusion v1.5 img2img architecture with random weights, saved like a real model.

Real weights can't be downloaded on the benchmark machines, and speed and memory depend on
shapes, not on values. `build_pipeline("sd15")` gives the published SD v1.5 shapes (UNet
859.5 M parameters, VAE 83.7 M, CLIP ViT-L/14 text encoder 123 M); `build_pipeline("tiny")`
the same structure at toy widths, for the CPU smoke run.

Random weights in fp16: PyTorch's default init lets the UNet's residual stream and the VAE
decoder's activations grow layer after layer, which can overflow fp16 (inf, then NaN) or give
an image that is one flat colour. `init_scale` (0.5) multiplies the last layer of every residual
branch (resnets' conv2, attention and feed-forward outputs) of the UNet and the VAE; the skip
paths keep their scale. Measured in fp32: activations peak near 6, the UNet's output has a
standard deviation of 0.32, and decoded images are spread, not flat. The bench checks the
final images for that before comparing any two of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}
TINY_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,  # four blocks: downsample by 8, as SD's
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (8, 8, 8, 8),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
TINY_TEXT = {
    "vocab_size": 1000,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}
SIZES = {"sd15": (SD15_UNET, SD15_VAE, SD15_TEXT), "tiny": (TINY_UNET, TINY_VAE, TINY_TEXT)}
# The NSFW safety checker: SD's is a CLIP ViT-L/14 image tower (304 M parameters) and a
# projection to 768, fed 224x224 crops (CompVis/stable-diffusion-safety-checker's config).
SD15_CHECKER = {"vision": {"hidden_size": 1024, "intermediate_size": 4096,
                           "num_hidden_layers": 24, "num_attention_heads": 16,
                           "image_size": 224, "patch_size": 14},
                "projection_dim": 768, "crop": 224}
TINY_CHECKER = {"vision": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
                "projection_dim": 16, "crop": 32}
CHECKERS = {"sd15": SD15_CHECKER, "tiny": TINY_CHECKER}
# A concept "fires" when its cosine similarity (at most 1) exceeds its threshold: above 1
# none ever does, below -1 every one does. The checker computes the same either way.
NEVER_FLAGS, ALWAYS_FLAGS = 2.0, -2.0
# SD v1.5's scheduler_config.json
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each of the 256 byte values (CLIP's byte-level BPE)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    table = dict(zip(printable, printable, strict=True))
    table.update({b: 256 + i for i, b in enumerate(others)})
    return [chr(table[b]) for b in range(256)]


def write_tokenizer(folder: Path) -> tuple[Path, Path]:
    """A byte-level CLIP vocabulary with no merges: every string tokenizes, ids stay < 514."""
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    merges_file.write_text("#version: 0.2\n")
    return vocab_file, merges_file


@torch.no_grad()
def _tame(unet, vae, init_scale: float) -> None:
    """Scale the random weights so fp16 neither overflows nor flattens the image (see above)."""
    if init_scale != 1.0:
        for name, param in unet.named_parameters():
            # the last layer of each residual branch: resnets' conv2, attention's out-projections
            # and feed-forward output; the skip path keeps its scale
            if name.endswith(("conv2.weight", "to_out.0.weight", "ff.net.2.weight",
                              "proj_out.weight")):
                param.mul_(init_scale)
        for name, param in vae.named_parameters():
            if name.endswith(("conv2.weight", "to_out.0.weight")):
                param.mul_(init_scale)


def build_pipeline(size: str = "sd15", *, seed: int = 0, device: str = "cpu",
                   dtype: torch.dtype = torch.float32, init_scale: float = 0.5,
                   tokenizer_dir: Path | None = None):
    """A StableDiffusionImg2ImgPipeline with random weights, no safety checker."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet_cfg, vae_cfg, text_cfg = SIZES[size]
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)
    with torch.device(device):  # initialise on the GPU where there is one: seconds, not minutes
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            bos_token_id=512, eos_token_id=513, pad_token_id=513, layer_norm_eps=1e-5,
            **text_cfg,
        ))
    _tame(unet, vae, init_scale)
    tokenizer_dir = tokenizer_dir or Path(".cache") / "tokenizer-src"
    vocab_file, merges_file = write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    pipe = StableDiffusionImg2ImgPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(dtype=dtype)


def build_safety_checker(size: str = "sd15", *, threshold: float = NEVER_FLAGS,
                         device: str = "cpu"):
    """diffusers' StableDiffusionSafetyChecker with random weights at SD's shapes (or tiny
    ones), every concept's threshold at `threshold` (its verdict is then known)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig

    shape = CHECKERS[size]
    config = CLIPConfig(  # the text tower is part of the config only: the checker has none
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                     "num_attention_heads": 4, "vocab_size": 1000, "bos_token_id": 0,
                     "eos_token_id": 2, "pad_token_id": 1},
        vision_config=shape["vision"], projection_dim=shape["projection_dim"])
    with torch.device(device):
        checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    return checker


def build_feature_extractor(size: str = "sd15"):
    """The checker's input: CLIP's resize, centre crop and normalisation, at its size."""
    from transformers import CLIPImageProcessor

    crop = CHECKERS[size]["crop"]
    return CLIPImageProcessor(size={"shortest_edge": crop},
                              crop_size={"height": crop, "width": crop})


def save_safety_checker(folder: Path, size: str = "sd15", *, device: str = "cpu",
                        threshold: float = NEVER_FLAGS) -> None:
    """The checker and its feature extractor in a model folder's `safety_checker/` and
    `feature_extractor/`, where the engine loads them from (pipeline/safety.py)."""
    checker = build_safety_checker(size, threshold=threshold, device=device)
    variant = "fp16" if size == "sd15" else None  # as the Hub's SD repositories publish it
    dtype = torch.float16 if variant else torch.float32
    checker.to(dtype).save_pretrained(folder / "safety_checker", variant=variant)
    build_feature_extractor(size).save_pretrained(folder / "feature_extractor")


def save_model(folder: Path, size: str = "sd15", *, seed: int = 0, device: str = "cpu",
               init_scale: float = 0.5) -> Path:
    """Build and save_pretrained into `folder` (fp32 weights plus the fp16 variant, as the Hub
    repositories publish them), so that ModelStore loads it exactly as it loads a real model,
    with its NSFW checker beside it. A folder built before the checker was added gets it."""
    folder = Path(folder)
    marker = folder / f".built-{size}-{seed}-{init_scale}"
    if not marker.exists():
        pipe = build_pipeline(size, seed=seed, device=device, init_scale=init_scale,
                              tokenizer_dir=folder / "_tokenizer_src")
        variant = "fp16" if size == "sd15" else None  # the Hub's SD repositories publish fp16
        pipe.to(dtype=torch.float16).save_pretrained(folder, safe_serialization=True,
                                                     variant=variant)
        marker.write_text("ok\n")
    checker_marker = folder / f".built-checker-{size}"
    if not checker_marker.exists():
        torch.manual_seed(seed + 1)
        save_safety_checker(folder, size, device=device)
        checker_marker.write_text("ok\n")
    return folder


def count_parameters(pipe) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in ("unet", "vae", "text_encoder")
    }
