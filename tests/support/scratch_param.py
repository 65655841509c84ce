"""Run in a copy of the product whose pipeline/params.py defines one more parameter,
`negative_prompt` (free text, kept beside the result, with the owner setting
PLACE_NEGATIVE_PROMPT), and nothing else changed: print, as JSON, what each surface of the
bot and the CLI made of it. tests/placebot/test_render_params.py writes the copy and reads
the answer.

Run as a script (python tests/support/scratch_param.py) with the copy first on PYTHONPATH, in a
folder the source store may write into.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

import pipeline.params
from cogs.dream import DREAM_OPTIONS
from cogs.place import SLASH_OPTIONS, offered
from pipeline.cli import build_parser
from pipeline.config import engine_settings_from_env
from pipeline.params import RenderJob, RenderRequest
from pipeline.results import RenderResult
from placebot.discord_side.pictures import keep
from placebot.discord_side.service import PlaceService, PromptsOff
from placebot.discord_side.source_store import FolderSourceStore
from placebot.discord_side.views import RerollButton, _submit_payload, reroll_id, result_embed
from placebot.servers.server_rules import rules_for
from placebot.settings import RecordingEnvironment, settings_from_env, unread_place_variables

ENV = {"DISCORD_TOKEN": "x", "PLACE_NEGATIVE_PROMPT": "blurry"}


class CapturingService:
    """PlaceService.submit's part that buttons use: prepare the request, keep the answer."""

    def __init__(self):
        self.prepared: RenderRequest | None = None
        self.kept_text: bool | None = None

    async def submit(self, interaction, request, *, prepare=None, kept_text=False, **_):
        self.prepared = await prepare(request) if prepare else request
        self.kept_text = kept_text


async def through_a_button(store: FolderSourceStore, job: RenderJob) -> dict:
    """Keep the job's values as the service does, then click its Re-roll: what comes back."""
    await keep(store, job)
    custom_id = reroll_id(job)
    match = RerollButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None, custom_id
    button = await RerollButton.from_custom_id(None, None, match)
    service = CapturingService()
    host = SimpleNamespace(service=service, sources=store)
    await _submit_payload(None, host, button.payload)
    assert service.prepared is not None
    return {"custom_id": custom_id, "negative_prompt": service.prepared.negative_prompt,
            "prompt": service.prepared.prompt, "kept_text": service.kept_text}


def main() -> None:
    recorded = RecordingEnvironment(ENV)
    settings = settings_from_env(recorded)
    cli = build_parser(engine_settings_from_env(ENV))
    job = RenderRequest(canvas="2017", x=1, y=2, seed=3, steps=4, strength=0.5, recursions=1,
                        prompt="a castle", negative_prompt="  **fog**  ").resolve()
    frame = Image.new("RGB", (512, 512))
    result = RenderResult(job=job, tiles=Image.new("RGB", (32, 32)), frames=[frame],
                          model_id="m")
    strict = settings_from_env({**ENV, "PLACE_PROMPTS": "false"})
    try:
        service = PlaceService(None, None, strict, None, deliveries=None)
        service._check_prompt(RenderRequest(negative_prompt="fog"), rules_for(strict))
        refused = False
    except PromptsOff:
        refused = True
    print(json.dumps({
        "params_file": pipeline.params.__file__,
        "bot_default": settings.render_defaults["negative_prompt"],
        "unread": unread_place_variables(recorded),
        "cli_default": cli.parse_args([]).negative_prompt,
        "cli_flag": cli.parse_args(["--negative_prompt", "mist"]).negative_prompt,
        "place_options": [n for n in offered(SLASH_OPTIONS, True) if n.endswith("prompt")],
        "dream_options": [n for n in offered(DREAM_OPTIONS, True) if n.endswith("prompt")],
        "options_without_prompts": [n for n in offered(SLASH_OPTIONS, False)
                                    if n.endswith("prompt")],
        "refused_without_prompts": refused,
        "resolved": job.negative_prompt,
        "journal_row": RenderJob.from_dict(job.to_dict()).negative_prompt,
        "embed": {f.name: f.value for f in result_embed(result, "x.png").fields}.get(
            "Negative prompt"),
        "button": asyncio.run(through_a_button(FolderSourceStore(Path("sources")), job)),
    }))


if __name__ == "__main__":
    sys.exit(main())
