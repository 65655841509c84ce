"""What a render is asked to do (RenderRequest) and what it will do once resolved (RenderJob).

Every render parameter is defined once, as a field of RenderRequest whose Param says its
bounds, choices, help text and how it travels. Everything else is derived from that one
definition: the /place options, the CLI flags, the owner's PLACE_* defaults, the journal row,
the button payload (or, for a long text, what the bot keeps beside the result), the embed
fields and the PNG metadata. Adding a parameter means adding one field here, plus the logic
that uses it (the engine): nothing that carries or offers parameters names one.

A request may leave the crop and the seed open; resolving fixes both, so that a RenderJob holds
every parameter needed to reproduce its image.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.canvases import (
    CANVAS_KEYS,
    Crop,
    check_crop_position,
    random_crop,
    widest_crop_range,
)
from pipeline.errors import ParamError
from pipeline.image_source import DEFAULT_PIXEL, MAX_PIXEL, MAX_SQUARES, MIN_PIXEL
from pipeline.param import PARAM_METADATA, Param, param

if TYPE_CHECKING:  # the atlas loads only where an artwork is named
    from pipeline.atlas import Atlas

__all__ = ["PARAMS", "Crop", "Param", "ParamError", "RenderJob", "RenderRequest"]

MODEL_KEYS = ("1.4", "1.5")
DEFAULT_MODEL_IDS = {
    "1.4": "CompVis/stable-diffusion-v1-4",
    # The runwayml repository was taken down; this is its maintained copy.
    "1.5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
MAX_RECURSIONS = 5
MAX_STEPS = 150
MAX_SEED = 2**32 - 1
# a prompt's length in characters: past CLIP's 77 tokens (the engine cuts there and says so),
# and short enough to show whole, escaped, in an embed field (1024 characters)
MAX_PROMPT_CHARS = 500
NO_GUIDANCE = 1.0  # diffusers runs classifier-free guidance only above 1
MAX_X, MAX_Y = widest_crop_range()
# How placebot's source store names what it keeps (a picture, a prompt): the first hex digits
# of the content's sha256, 64 bits, far from any collision at this scale.
CONTENT_KEY_CHARS = 16
CONTENT_KEY = rf"[0-9a-f]{{{CONTENT_KEY_CHARS}}}"
# An r/Place Atlas artwork, "<year>-<atlas id>" (pipeline.atlas.entries.KEY_PATTERN, kept
# here as text so that reading a job needs no atlas)
ARTWORK_KEY = r"(?:2017|2022|2023)-[A-Za-z0-9]{1,8}"
MAX_ARTWORK_CHARS = 100  # what a person may type for one: Discord's autocomplete value limit
MAX_OFFSET = MAX_PIXEL * (MAX_SQUARES - 1)  # the farthest a square starts along a long side
# the square as base64 PNG text: 512x512 RGB stored raw is 786 KB, 1.05 M characters
MAX_TILES_CHARS = 1_100_000

def check_steps_strength(steps: int, strength: float) -> None:
    """diffusers runs int(steps * strength) denoising steps; zero would leave the image as is."""
    if int(steps * strength) < 1:
        raise ParamError(
            f"steps x strength = {steps} x {strength} = {steps * strength:g} runs no denoising "
            "step: it must be at least 1 (raise steps or strength)"
        )


_Request = TypeVar("_Request", bound="RenderRequest")  # validate() returns its own class


@dataclass(frozen=True)
class RenderRequest:
    """A user's wish. None means "choose for me" (random canvas/crop/seed)."""

    model: str = param(
        "1.4", label="Model", help="Stable Diffusion version", kind=str, choices=MODEL_KEYS,
        choice_name="SD {}", setting="PLACE_DEFAULT_MODEL", tag="m", batches=True)
    canvas: str | None = param(
        None, label="Canvas", help="Which year's final r/Place canvas", kind=str,
        choices=CANVAS_KEYS, tag="c", source=True, scope="canvas")
    # An artwork of the r/Place Atlas by its key: the crop is drawn inside it, on its year's
    # canvas. Re-roll and New crop both keep it (New crop draws another window of it). The
    # result's embed names every artwork it shows, this one included, so it is no field.
    artwork: str | None = param(
        None, label="Artwork", help="An artwork of the r/Place Atlas to dream on (type to "
        "search)", kind=str, pattern=ARTWORK_KEY, max_length=MAX_ARTWORK_CHARS, unset="none",
        tag="a", scope="canvas", shown=False)
    x: int | None = param(
        None, label="x", help="Left edge of the 32x32 crop, in tiles (give x and y together)",
        low=0, high=MAX_X, tag="x", source=True, scope="canvas")
    y: int | None = param(
        None, label="y", help="Top edge of the 32x32 crop, in tiles (give x and y together)",
        low=0, high=MAX_Y, tag="y", source=True, scope="canvas")
    # A user's picture instead of a canvas crop (/dream). The bot keeps its pixelated source
    # under this content key (for Re-roll and New crop); the job renders the square at
    # `offset` along its long side, carried whole in `tiles` (a small PNG), so that whoever
    # renders the job, here or a worker elsewhere, needs nothing but the job.
    picture: str | None = param(
        None, label="Picture", help="The content key of the user's pixelated picture", kind=str,
        pattern=CONTENT_KEY, slash=False, tag="p", scope="picture")
    offset: int | None = param(
        None, label="Square", help="Where the square starts along the picture's long side",
        low=0, high=MAX_OFFSET, slash=False, tag="o", source=True, scope="picture")
    pixel: int = param(
        DEFAULT_PIXEL, label="Pixel",
        help="Tiles on the picture's short side, before the 512 upscale (512: as it is)",
        low=MIN_PIXEL, high=MAX_PIXEL, scope="picture")
    tiles: str | None = param(
        None, label="Tiles", help="The square that is dreamed on, as base64 PNG", kind=str,
        pattern=r"[A-Za-z0-9+/=]*", max_length=MAX_TILES_CHARS, slash=False, scope="picture",
        shown=False)
    seed: int | None = param(
        None, label="Seed", help="Random seed, to redo a picture exactly", low=0, high=MAX_SEED)
    # 0.8: what the original script really ran (its strength=0.05 never applied)
    strength: float = param(
        0.8, label="Strength", help="How much each pass repaints, above 0 up to 1", kind=float,
        low=0.0, high=1.0, low_open=True, setting="PLACE_STRENGTH", tag="s", batches=True)
    steps: int = param(
        50, label="Steps", help="Diffusion steps; a pass runs steps x strength of them", low=1,
        high=MAX_STEPS, setting="PLACE_STEPS", slash=False, tag="t", batches=True)
    # 3: a first pass plus 3 recursions, the original's 4 passes
    recursions: int = param(
        3, label="Recursions", help="Extra passes, each on the last one's output", low=0,
        high=MAX_RECURSIONS, setting="PLACE_RECURSIONS", tag="r", batches=True)
    # None: the original's empty prompt, guidance off. Buttons do not carry it (a custom_id
    # holds 100 characters); the bot keeps it beside the result instead.
    prompt: str | None = param(
        None, label="Prompt", help="Words to steer the dream", kind=str, unset="none",
        max_length=MAX_PROMPT_CHARS, free_text=True, kept=True)
    # with a prompt, classifier-free guidance at this scale; without one resolve() turns it
    # off (on the empty prompt it computes the same image at twice the cost)
    guidance: float = param(
        7.5, label="Guidance", help="How strongly a prompt steers the picture (1: not at all)",
        kind=float, low=NO_GUIDANCE, high=30.0, setting="PLACE_GUIDANCE", slash=False,
        batches=True, kept=True)
    # Whether Stable Diffusion's NSFW checker screens this job's passes (a flagged one comes
    # back black). Decided per job by whoever accepts it (the bot: by the channel and the
    # server's settings, placebot/servers/server_rules.py); a job that does not say is checked. Jobs
    # checked and unchecked share a batch: the checker screens each image on its own.
    safety_check: bool = param(
        True, label="Safety checker", help="Screen every pass with the NSFW safety checker",
        kind=bool, slash=False, shown=False)

    def validate(self: _Request) -> _Request:
        """Raise ParamError naming the first bad value and what is allowed; return self."""
        # The crop first: it knows the chosen canvas's own bounds, tighter than x's and y's.
        check_crop_position(self.canvas, self.x, self.y)
        if self.picture is not None and (self.canvas is not None or self.artwork is not None):
            raise ParamError("a job dreams on a canvas crop or on a picture, not on both")
        if self.artwork is not None and self.canvas not in (None, self.artwork[:4]):
            raise ParamError(f"artwork {self.artwork} is on the {self.artwork[:4]} canvas, "
                             f"not {self.canvas}: leave canvas out, or choose "
                             f"{self.artwork[:4]}")
        for name, spec in PARAMS.items():
            spec.check(name, getattr(self, name))
        check_steps_strength(self.steps, self.strength)
        return self

    def resolve(self, rng: random.Random | None = None, atlas: Atlas | None = None
                ) -> RenderJob:
        """Fix the crop and the seed (drawing them at random where not given). A crop of an
        artwork is drawn inside it (`atlas` is then needed, and the year's file is read)."""
        self.validate()
        rng = rng or random.Random()
        seed = self.seed if self.seed is not None else rng.randint(0, MAX_SEED)
        fixed = {**self.values(), **self.texts(), "seed": seed}
        if self.picture is not None:  # its square is chosen by whoever holds the picture
            return RenderJob(**fixed)
        if self.x is not None:
            # validate() checked it: x comes with y and a canvas
            assert self.canvas is not None and self.y is not None
            crop = Crop(self.canvas, self.x, self.y)
        elif self.artwork is not None:
            if atlas is None:
                raise ParamError("an artwork needs the r/Place Atlas, and none was given")
            crop = atlas.crop_in(self.artwork, rng)
        else:
            crop = random_crop(rng, self.canvas)
        return RenderJob(**{**fixed, "canvas": crop.canvas, "x": crop.x, "y": crop.y})

    def values(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """{name: value} of the named parameters (all by default), in definition order."""
        return {name: getattr(self, name) for name in (PARAMS if names is None else names)}

    def texts(self) -> dict[str, str | None]:
        """{name: text} of the free-text parameters, stripped; blank is None (not given)."""
        return {name: (getattr(self, name) or "").strip() or None for name in FREE_TEXT}

    def has_text(self) -> bool:
        """Whether a person's own words (a prompt) steer this request."""
        return any(self.texts().values())


PARAMS: dict[str, Param] = {f.name: f.metadata[PARAM_METADATA] for f in fields(RenderRequest)}
RENDER_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RenderRequest)}

# What a button carries: Re-roll keeps the picture's source and draws a new seed; New crop
# draws both anew.
RESEED_FIELDS = tuple(name for name, p in PARAMS.items() if p.tag and name != "seed")
RECROP_FIELDS = tuple(name for name in RESEED_FIELDS if not PARAMS[name].source)
# A person's own words (PLACE_PROMPTS switches them off), and what the bot keeps beside a
# result for its buttons because a custom_id cannot hold it.
FREE_TEXT = tuple(name for name, p in PARAMS.items() if p.free_text)
KEPT_FIELDS = tuple(name for name, p in PARAMS.items() if p.kept)

SCHEMA_VERSION = 2  # of RenderJob.to_dict; 1 had no "schema" key and stored passes, not recursions


@dataclass(frozen=True)
class RenderJob(RenderRequest):
    """A fully determined render: same job on the same device and dtype, same images."""

    def __post_init__(self) -> None:
        needed = ("picture", "offset", "tiles", "seed") if self.picture is not None else (
            "canvas", "x", "y", "seed")
        unset = [name for name in needed if getattr(self, name) is None]
        if unset:
            raise ParamError(f"a render job needs {', '.join(unset)}; resolve a request first")
        if not self.prompt:  # no prompt, no guidance (also for a row written before prompts)
            object.__setattr__(self, "guidance", NO_GUIDANCE)

    @property
    def on_picture(self) -> bool:
        """A user's picture (/dream), not a canvas crop."""
        return self.picture is not None

    @property
    def crop(self) -> Crop:
        # __post_init__ checked it: a job not on a picture has its canvas, x and y
        assert self.canvas is not None and self.x is not None and self.y is not None, (
            "a job on a picture has no canvas crop")
        return Crop(self.canvas, self.x, self.y)

    @property
    def passes(self) -> int:
        return self.recursions + 1

    @property
    def batch_key(self) -> tuple:
        """Jobs with equal keys can share one pipeline call."""
        return tuple(getattr(self, name) for name, p in PARAMS.items() if p.batches)

    def with_seed(self, seed: int) -> RenderJob:
        return replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """A journal row / metadata record: every parameter and the schema version."""
        return {"schema": SCHEMA_VERSION, **self.values()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderJob:
        """Read a row written by this or an older version: a parameter it lacks takes its
        default, a key it does not know is ignored, and a malformed or out-of-bounds value
        raises ParamError (so a caller can skip the row and say why)."""
        row = _upgrade(dict(data))
        values = {name: spec.parse(name, row[name]) for name, spec in PARAMS.items()
                  if row.get(name) is not None}
        return cls(**values).validate()


def _upgrade(row: dict[str, Any]) -> dict[str, Any]:
    """Bring a row of an older schema to the current one."""
    if "schema" not in row and "passes" in row and "recursions" not in row:
        row["recursions"] = PARAMS["recursions"].parse("passes", row["passes"]) - 1
    return row


# The button payload: ":<tag><value>" per carried parameter. Every group is optional, so a
# button made before a parameter existed still parses (the parameter takes its default).


def encode_payload(request: RenderRequest, names: Iterable[str]) -> str:
    """The named parameters of a request (those it has), as a custom_id fragment."""
    return "".join(f":{PARAMS[n].tag}{PARAMS[n].encode_value(value)}"
                   for n in names if (value := getattr(request, n)) is not None)


def payload_pattern(names: Iterable[str]) -> str:
    """A regex fragment, with one named group per parameter, matching encode_payload's text."""
    return "".join(f"(?::{PARAMS[n].tag}(?P<{n}>{PARAMS[n].value_pattern()}))?" for n in names)


def kept_values(request: RenderRequest) -> dict[str, Any] | None:
    """What a result's buttons need kept beside it ({name: value} of its kept parameters, None
    left out), or None when it has nothing to keep: kept values other than text (guidance)
    only matter beside a text (without one there is no guidance), so they travel with it."""
    if not request.has_text():
        return None
    values = {**request.values(KEPT_FIELDS), **request.texts()}
    return {name: values[name] for name in KEPT_FIELDS if values[name] is not None}


def decode_kept(row: Mapping[str, Any]) -> dict[str, Any]:
    """Kept values read back, typed (bounds are checked when the request is validated); a
    key that is not a kept parameter (one since removed) is ignored."""
    return {name: PARAMS[name].parse(name, raw) for name, raw in row.items()
            if name in KEPT_FIELDS and raw is not None}


def decode_payload(groups: Mapping[str, str | None]) -> RenderRequest:
    """A RenderRequest from a payload_pattern match's groups (other groups are ignored).
    Values are typed here and bounds-checked by validate(), as any request is."""
    values = {name: PARAMS[name].parse(name, text) for name, text in groups.items()
              if name in PARAMS and text is not None}
    return RenderRequest(**values)
