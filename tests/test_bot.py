"""bot.py: stop signals where the event loop cannot take them (Windows), start-up checks."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bot import run
from placebot.discord_side.client import PlaceBot
from placebot.stopping import STOP_SIGNALS
from tests.support.bot_harness import bot_settings

ROOT = Path(__file__).resolve().parent.parent


def _without_loop_signal_handlers(monkeypatch):
    """Make the running loop behave as Windows' event loops do: no add_signal_handler."""

    def refuse(self, *args):
        raise NotImplementedError

    monkeypatch.setattr(type(asyncio.get_running_loop()), "add_signal_handler", refuse)


async def test_ctrl_c_stops_the_bot_cleanly_without_loop_signal_handlers(
        fake, gated, tiny_model_dir, tmp_path, monkeypatch):
    """Without loop.add_signal_handler (Windows), Ctrl+C still shuts the bot down gracefully."""
    _without_loop_signal_handlers(monkeypatch)
    before = signal.getsignal(signal.SIGINT)
    bot = PlaceBot(bot_settings(tmp_path / "data", tiny_model_dir), renderer=gated,
                   guild_ready_timeout=0.05)
    runner = asyncio.create_task(run(bot, "fake-token"))
    await fake.wait_ready()
    assert signal.getsignal(signal.SIGINT) is not before  # the fallback handler is in place
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(runner, 10)
    assert bot.is_closed()
    assert signal.getsignal(signal.SIGINT) is before  # and taken away again


def test_ctrl_break_is_a_stop_signal_where_it_exists():
    """Windows' Ctrl+Break (SIGBREAK) stops the bot too; elsewhere SIGINT and SIGTERM do."""
    expected = {signal.SIGINT, signal.SIGTERM}
    if hasattr(signal, "SIGBREAK"):
        expected.add(signal.SIGBREAK)
    assert set(STOP_SIGNALS) == expected


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                                            **(env or {})})


def test_a_bot_that_never_uses_voice_starts_without_voice_warnings():
    """discord.py's PyNaCl/davey warnings are not printed at the bot's start."""
    start = ("import logging, discord; logging.basicConfig(); {call}"
             "discord.Client(intents=discord.Intents.none())")
    silenced = _python(start.format(call="import bot; bot.silence_voice_warnings(); "))
    assert silenced.returncode == 0, silenced.stderr
    assert "voice will NOT be supported" not in silenced.stderr
    plain = _python(start.format(call=""))  # what the owner saw before, where they are missing
    if "voice will NOT be supported" not in plain.stderr:
        pytest.skip("PyNaCl and davey are installed here: discord.py has nothing to warn of")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_place_device_cuda_without_a_gpu_is_refused_at_start(tmp_path):
    """`PLACE_DEVICE=cuda` where torch sees no GPU: one line naming it, exit 2, at start."""
    done = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path,
                          env={"PATH": os.environ["PATH"], "DISCORD_TOKEN": "x",
                               "PLACE_DEVICE": "cuda"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("configuration error: PLACE_DEVICE: is cuda but torch ")
    assert "sees no CUDA GPU; set auto or cpu" in line


def test_the_settings_check_imports_torch_only_for_cuda():
    """Checking settings with PLACE_DEVICE=auto stays free of torch (a typo is reported fast)."""
    done = _python("import sys; from placebot.settings import settings_from_env, check_device; "
                   "check_device(settings_from_env({'DISCORD_TOKEN': 'x'})); "
                   "print('torch' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr
