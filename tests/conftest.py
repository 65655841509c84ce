"""Shared fixtures: the tiny Stable Diffusion model, built once per test session."""

from __future__ import annotations

import contextlib

import pytest

from placebot.client import PlaceBot
from tests.fakediscord import FakeDiscord
from tests.support.bot_harness import GatedRenderer, bot_settings
from tests.support.tiny_sd import build_tiny_sd, with_flagging_checker

# Small but real: 2 denoising steps a pass (steps x strength), 2 passes.
FAST = {"steps": 4, "strength": 0.5, "recursions": 1}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SD img2img model saved with save_pretrained, as a local model folder."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def flagging_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model, with a safety checker that flags every image it is shown."""
    return with_flagging_checker(tiny_model_dir, tmp_path_factory.mktemp("flagging") / "sd")


@pytest.fixture(scope="session")
def tiny_store(tiny_model_dir):
    """A ModelStore on the CPU whose 1.4 and 1.5 both name the tiny model; shared (loads once)."""
    from pipeline.models import ModelStore

    return ModelStore({"1.4": str(tiny_model_dir), "1.5": str(tiny_model_dir)}, device="cpu")


@pytest.fixture(scope="session")
def renderer(tiny_store):
    from pipeline.engine import Renderer

    return Renderer(tiny_store)


@pytest.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def gated(renderer):
    gate = GatedRenderer(renderer)
    yield gate
    gate.open()


@pytest.fixture
def start_bot(fake, tmp_path, tiny_model_dir, gated):
    """start_bot(**settings) → an async context manager running a PlaceBot until it exits."""

    @contextlib.asynccontextmanager
    async def start(renderer=None, data_dir=None, **changes):
        settings = bot_settings(data_dir or tmp_path / "data", tiny_model_dir, **changes)
        bot = PlaceBot(settings, renderer=renderer or gated, guild_ready_timeout=0.05)
        bot.shutdown_grace_s = 0.5  # tests' jobs are short; don't wait Docker's full grace
        async with fake.running(bot):
            try:
                yield bot
            finally:
                gated.open()  # a job held at the gate must be able to end for the shutdown

    return start
