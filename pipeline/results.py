"""What a render produces, as plain data: no torch in here.

The bot's Discord side (its buttons, delivery, the outbox, the Redis codec) handles results
without rendering any, and in the distributed mode the bot process never loads torch at all:
so the result type lives apart from the engine (pipeline.engine) that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from pipeline.params import RenderJob

if TYPE_CHECKING:
    from pipeline.atlas import Overlap


@dataclass
class RenderResult:
    job: RenderJob
    tiles: Image.Image  # the 32x32 crop (or the picture's square), native resolution
    frames: list[Image.Image]  # the 512x512 input, then one image per pass
    pass_seconds: list[float] = field(default_factory=list)
    model_id: str = ""
    nsfw_flagged: bool = False
    prompt_used: str | None = None  # where the prompt was cut to CLIP's 77 tokens: what counted
    # The r/Place Atlas's artworks the crop shows, most of the crop first; named where the
    # result is delivered (the bot, the CLI), not by the renderer. None: not looked up (no
    # atlas for its canvas, or a picture); []: looked up, and nothing charted there.
    artworks: list[Overlap] | None = None

    @property
    def final(self) -> Image.Image:
        return self.frames[-1]

    @property
    def seconds(self) -> float:
        return sum(self.pass_seconds)
