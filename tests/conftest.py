"""Shared fixtures: the tiny Stable Diffusion model, built once per test session."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from placebot.discord_side.client import PlaceBot
from tests.fakediscord import FakeDiscord
from tests.support.bot_harness import GatedRenderer, bot_settings
from tests.support.tiny_sd import build_tiny_sd, with_flagging_checker

ROOT = Path(__file__).resolve().parents[1]

# Small but real: 2 denoising steps a pass (steps x strength), 2 passes.
FAST = {"steps": 4, "strength": 0.5, "recursions": 1}


def _checkout_state() -> set[str] | None:
    """The untracked and ignored files git sees in the checkout (bytecode aside): what a test
    could have written. Edits to tracked files are left out: a developer may save one while the
    suite runs."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    if done.returncode != 0:  # not a git checkout (an unpacked archive): nothing to compare
        return None
    return {line for line in done.stdout.splitlines()
            if line[:2] in ("??", "!!") and "__pycache__" not in line}


@pytest.fixture(scope="session", autouse=True)
def isolated_from_the_checkout(tmp_path_factory):
    """The suite runs in a folder of its own: no test reads the owner's `.env` or writes into the
    checkout (a relative PLACE_DATA_DIR lands here). Subprocesses inherit the folder and find
    the code through PYTHONPATH. At the end, the checkout must look as it did at the start."""
    before = _checkout_state()
    workdir = tmp_path_factory.mktemp("cwd")
    old_cwd, old_path = Path.cwd(), os.environ.get("PYTHONPATH")
    os.chdir(workdir)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), old_path]))
    yield workdir
    os.chdir(old_cwd)
    if old_path is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_path
    after = _checkout_state()
    if before is not None and after is not None and after - before:
        pytest.fail(f"the suite wrote into the checkout: {sorted(after - before)}")


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
