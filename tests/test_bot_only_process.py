"""bot.py in the distributed mode (PLACE_REDIS_URL): a process that only talks to Discord and
Redis, so it never loads the render engine's libraries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.support.bot_harness import GUILD_ID, wait_result
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import TrackingRenderer, running_workers
from tests.support.valkey import ValkeyProcess

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "support" / "bot_only_process.py"


@pytest.fixture
def valkey(tmp_path):
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as server:
        yield server


async def _next_report(process, moment: str) -> dict:
    """The script's next JSON line for `moment` (its other output goes to the log file)."""
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), PATIENCE_S)
        assert line, f"the bot ended before it reported {moment!r}"
        facts = json.loads(line)
        if facts["moment"] == moment:
            return facts


async def test_the_distributed_bot_process_never_imports_torch_or_diffusers(
        fake, valkey, tmp_path):
    """`python bot.py` with PLACE_REDIS_URL connects, delivers a job a worker rendered, and
    stops, and neither torch nor diffusers (nor transformers) is ever imported in it."""
    log = tmp_path / "bot.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                 "FAKE_DISCORD_URL": fake.url, "DISCORD_TOKEN": "fake-token",
                 "DISCORD_GUILD_ID": str(GUILD_ID), "PLACE_REDIS_URL": valkey.url,
                 "PLACE_DATA_DIR": str(tmp_path / "data")})
        try:
            connected = await _next_report(process, "connected")
            async with running_workers(valkey.url, [TrackingRenderer()]):
                interaction = fake.slash("place")
                result = await wait_result(fake, interaction)
            process.send_signal(signal.SIGTERM)
            closing = await _next_report(process, "closing")
            code = await asyncio.wait_for(process.wait(), PATIENCE_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert result.embeds, log.read_text()
    assert connected["loaded"] == [] and closing["loaded"] == [], log.read_text()
    assert code == 0, log.read_text()
    print(f"bot-only process after connecting: VmRSS {connected['rss_kib']} KiB")
