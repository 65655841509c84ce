"""What a render is asked to do (RenderRequest) and what it will do once resolved (RenderJob).

A request may leave the crop and the seed open; resolving fixes both, so that a RenderJob holds
every parameter needed to reproduce its image, and its metadata can be written into the PNG.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

MODEL_KEYS = ("1.4", "1.5")
DEFAULT_MODEL_IDS = {
    "1.4": "CompVis/stable-diffusion-v1-4",
    # The runwayml repository was taken down; this is its maintained copy.
    "1.5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
MAX_RECURSIONS = 5
MAX_STEPS = 150
MAX_SEED = 2**32 - 1
DEFAULT_STRENGTH = 0.8  # what the original script really ran (its strength=0.05 never applied)
DEFAULT_STEPS = 50
DEFAULT_RECURSIONS = 3  # a first pass plus 3 recursions: the original's 4 passes
DEFAULT_GUIDANCE = 7.5  # classifier-free guidance with a prompt (PLACE_GUIDANCE)
NO_GUIDANCE = 1.0  # diffusers runs classifier-free guidance only above 1
MAX_GUIDANCE = 30.0
MAX_PROMPT_CHARS = 1000  # far past CLIP's 77 tokens, which the engine cuts to (and says so)
# the background torch.compile (pipeline.models.compiles_in_background); here, free of torch,
# so that the bot's settings check can name the choices before torch is imported
COMPILE_CHOICES = ("auto", "on", "off")


def check_steps_strength(steps: int, strength: float) -> None:
    """diffusers runs int(steps * strength) denoising steps; zero would leave the image as is."""
    if int(steps * strength) < 1:
        raise ValueError(
            f"steps x strength = {steps} x {strength} = {steps * strength:g} runs no denoising "
            "step: it must be at least 1 (raise steps or strength)"
        )


@dataclass(frozen=True)
class Crop:
    canvas: str
    x: int
    y: int


@dataclass(frozen=True)
class RenderRequest:
    """A user's wish. None means "choose for me" (random canvas/crop/seed)."""

    model: str = "1.4"
    canvas: str | None = None
    x: int | None = None
    y: int | None = None
    seed: int | None = None
    strength: float = DEFAULT_STRENGTH
    steps: int = DEFAULT_STEPS
    recursions: int = DEFAULT_RECURSIONS
    prompt: str = ""  # empty: the original's empty prompt, guidance off
    guidance: float = DEFAULT_GUIDANCE  # used only with a prompt

    def validate(self) -> RenderRequest:
        """Raise ValueError naming the first bad value and what is allowed; return self."""
        from pipeline.canvases import check_crop_position

        if self.model not in MODEL_KEYS:
            raise ValueError(f"model {self.model!r} is unknown; choose one of {MODEL_KEYS}")
        if not (0.0 < self.strength <= 1.0):
            raise ValueError(f"strength must be in (0, 1] but is {self.strength}")
        if not (1 <= self.steps <= MAX_STEPS):
            raise ValueError(f"steps must be 1-{MAX_STEPS} but is {self.steps}")
        if not (0 <= self.recursions <= MAX_RECURSIONS):
            raise ValueError(f"recursions must be 0-{MAX_RECURSIONS} but is {self.recursions}")
        if self.seed is not None and not (0 <= self.seed <= MAX_SEED):
            raise ValueError(f"seed must be 0-{MAX_SEED} but is {self.seed}")
        if not (NO_GUIDANCE <= self.guidance <= MAX_GUIDANCE):
            raise ValueError(f"guidance must be in [1, {MAX_GUIDANCE:g}] but is {self.guidance}")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt is {len(self.prompt)} characters long; "
                             f"at most {MAX_PROMPT_CHARS} are allowed")
        check_steps_strength(self.steps, self.strength)
        check_crop_position(self.canvas, self.x, self.y)
        return self

    def resolve(self, rng: random.Random | None = None) -> RenderJob:
        """Fix the crop and the seed (drawing them at random where not given)."""
        from pipeline.canvases import random_crop

        self.validate()
        rng = rng or random.Random()
        if self.x is not None:
            crop = Crop(self.canvas, self.x, self.y)
        else:
            crop = random_crop(rng, self.canvas)
        seed = self.seed if self.seed is not None else rng.randint(0, MAX_SEED)
        return RenderJob(
            model=self.model,
            crop=crop,
            seed=seed,
            strength=self.strength,
            steps=self.steps,
            passes=self.recursions + 1,
            prompt=self.prompt,
            # no prompt, no guidance: the empty prompt's CFG computes nothing (and costs 2x)
            guidance=self.guidance if self.prompt else NO_GUIDANCE,
        )


@dataclass(frozen=True)
class RenderJob:
    """A fully determined render: same job on the same device and dtype, same images."""

    model: str
    crop: Crop
    seed: int
    strength: float
    steps: int
    passes: int
    prompt: str = ""
    guidance: float = NO_GUIDANCE

    @property
    def batch_key(self) -> tuple:
        """Jobs with equal keys can share one pipeline call (prompts may differ)."""
        return (self.model, self.steps, self.strength, self.passes, self.guidance)

    def with_seed(self, seed: int) -> RenderJob:
        return replace(self, seed=seed)

    def to_dict(self) -> dict:
        data = asdict(self)
        crop = data.pop("crop")
        return {**crop, **data}

    @classmethod
    def from_dict(cls, data: dict) -> RenderJob:
        return cls(
            model=str(data["model"]),
            crop=Crop(str(data["canvas"]), int(data["x"]), int(data["y"])),
            seed=int(data["seed"]),
            strength=float(data["strength"]),
            steps=int(data["steps"]),
            passes=int(data["passes"]),
            prompt=str(data.get("prompt", "")),
            guidance=float(data.get("guidance", NO_GUIDANCE)),
        )
