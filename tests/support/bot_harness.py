"""Helpers for running the real bot (PlaceBot, real discord.py) against the fake Discord."""

from __future__ import annotations

import threading
from dataclasses import replace

from pipeline.params import PARAMS
from placebot.settings import Settings
from tests.support.patience import PATIENCE_S

GUILD_ID = 2000
MANAGE_MESSAGES = 1 << 13


class GatedRenderer:
    """The real renderer behind a gate, so a test can hold a job 'running' as long as it needs.

    open() lets every render through; close() makes the next ones wait for open()."""

    def __init__(self, inner):
        self.inner = inner
        self.store = inner.store
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()
        self.calls = 0

    def is_ready(self, jobs):
        return self.inner.is_ready(jobs)

    def prepare(self, jobs):
        self.inner.prepare(jobs)

    def close(self):
        self._gate.clear()
        self.entered.clear()

    def open(self):
        self._gate.set()

    def render(self, jobs, **kwargs):
        self.calls += 1
        self.entered.set()
        if not self._gate.wait(timeout=60):
            raise TimeoutError("test gate never opened")
        return self.inner.render(jobs, **kwargs)


def _settings(data_dir, model_dir, **changes) -> Settings:
    """The test bot's settings; `changes` may name render parameters (strength=0.5, and
    default_model for model), as their PLACE_* variables would set them."""
    settings = Settings(
        discord_token="fake-token", discord_guild_id=GUILD_ID,
        model_ids={"1.4": str(model_dir), "1.5": str(model_dir)}, device="cpu",
        queue_max=20, user_max=1, max_batch=4,
        data_dir=data_dir, atlas_dir=data_dir / "no-atlas",  # never the owner's cache
    ).with_render_defaults(steps=4, strength=0.5, recursions=1)
    if "default_model" in changes:
        changes["model"] = changes.pop("default_model")
    render = {name: changes.pop(name) for name in list(changes) if name in PARAMS}
    return replace(settings, **changes).with_render_defaults(**render)


bot_settings = _settings


async def wait_result(fake, interaction, timeout=PATIENCE_S):
    """The interaction's @original once it carries the final result (an embed)."""
    return await fake.wait_for(
        lambda: interaction.original if interaction.original and interaction.original.embeds
        else None, timeout)


def embed_fields(message) -> dict:
    return {field["name"]: field["value"] for field in message.embeds[0]["fields"]}


def custom_ids(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row.get("components", [])]


async def render_after_token_expiry(fake, gated, user_id):
    """Start a /place, hold it at the gate, let its interaction token die, then let it run:
    its result can only arrive some other way than by editing the interaction."""
    import asyncio

    gated.close()
    interaction = fake.slash("place", user_id=user_id)
    assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
    fake.expire_token(interaction.token)
    gated.open()
    return interaction
