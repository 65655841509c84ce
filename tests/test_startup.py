"""Start-up: failures an owner must fix are one line naming the cause and the setting, exit 2;
Discord out of reach is waited for until it answers or the bot is stopped."""

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot import run
from placebot.discord_side.client import PlaceBot
from placebot.startup import StartupError
from tests.fakediscord import FakeDiscord
from tests.support.bot_harness import bot_settings
from tests.support.patience import PATIENCE_S
from tests.support.waiting import until


class LogCount(logging.Handler):
    """Counts the records whose message contains `text`."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += self.text in record.getMessage()

ROOT = Path(__file__).resolve().parent.parent


def _bot_py(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Runs `code` then bot.main() in a fresh interpreter, as `python bot.py` would."""
    script = f"import sys, bot\n{code}\nsys.exit(bot.main())"
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                               "DISCORD_TOKEN": "x", **env})


def test_a_data_folder_that_cannot_be_written_stops_the_start_in_one_line(tmp_path):
    """PLACE_DATA_DIR where a file stands (or read-only, or full): one line, exit 2."""
    (tmp_path / "blocker").write_text("a file where the data folder should be")
    done = _bot_py("", tmp_path, PLACE_DATA_DIR=str(tmp_path / "blocker" / "data"))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "PLACE_DATA_DIR" in line and "cannot be written" in line


def test_an_unwritable_output_folder_is_a_warning_at_start_not_a_stop(tmp_path, caplog):
    """PLACE_OUTPUT_DIR only holds the owner's copies: where it cannot be written the owner
    is warned at once, and the bot still starts (its users lose nothing)."""
    from placebot.startup import warn_if_output_dir_unwritable

    (tmp_path / "blocker").write_text("a file where the output folder should be")
    warn_if_output_dir_unwritable(tmp_path / "blocker" / "outputs")
    warn_if_output_dir_unwritable(tmp_path / "outputs")  # writable: no word
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("PLACE_OUTPUT_DIR:") and "blocker" in warning


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_discord_down_at_start_is_waited_for_until_it_comes_up(
        tiny_model_dir, gated, tmp_path, monkeypatch):
    """Nothing listens where Discord should be (a boot before the network, an outage): the
    bot tries again and again, each failed try one line, past the 6 tries after which it
    used to give up, and connects once Discord is there."""
    import placebot.startup as startup

    monkeypatch.setattr(startup, "CONNECT_FIRST_RETRY_S", 0.01)
    monkeypatch.setattr(startup, "CONNECT_MAX_RETRY_S", 0.02)
    failed_tries = LogCount("cannot reach Discord")
    logging.getLogger("placebot.startup").addHandler(failed_tries)
    fake = FakeDiscord()
    fake.port = _free_port()
    fake.install()  # discord.py points at a port where nothing listens yet
    bot = PlaceBot(bot_settings(tmp_path / "data", tiny_model_dir), renderer=gated,
                   guild_ready_timeout=0.05)
    runner = asyncio.create_task(run(bot, "fake-token"))
    try:
        await until(lambda: failed_tries.count >= 8 or runner.done(), "8 failed tries")
        assert not runner.done(), runner.exception()
        await fake.start(fake.port)  # Discord comes up
        await until(bot.is_ready, "the bot connected to the late Discord")
        assert fake.identifies == 1 and not runner.done()
    finally:
        await bot.shutdown()
        await asyncio.wait_for(runner, PATIENCE_S)
        await fake.close()
        logging.getLogger("placebot.startup").removeHandler(failed_tries)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_stop_signal_while_discord_is_unreachable_ends_the_wait_cleanly(
        tmp_path, signum):
    """Ctrl+C, or a service manager's stop, between two login tries: the bot ends at once
    (the next try was an hour away), exit 0, no traceback, and no HTTP session of a failed
    try is left open."""
    point_at_nothing = ("import discord, placebot.startup as startup\n"
                        "discord.http.Route.BASE = 'http://127.0.0.1:9/api/v10'\n"
                        "startup.CONNECT_FIRST_RETRY_S = 3600")
    process = await _start_bot_py(point_at_nothing, tmp_path)
    assert process.stderr is not None
    said = []
    while not any("cannot reach Discord" in line for line in said):  # waiting an hour now
        line = await asyncio.wait_for(process.stderr.readline(), PATIENCE_S)
        assert line, "bot.py ended before its first retry: " + "".join(said)
        said.append(line.decode())
    process.send_signal(signum)
    rest = await asyncio.wait_for(process.stderr.read(), PATIENCE_S)
    code = await process.wait()
    output = "".join(said) + rest.decode()
    assert code == 0, output
    assert "Traceback" not in output and "Unclosed client session" not in output


async def test_a_token_discord_refuses_stops_the_start_with_exit_2(fake, tmp_path):
    """Discord answers the login with 401: a setting to fix, so one line naming
    DISCORD_TOKEN and exit 2 (a service manager does not restart it), no retries."""
    fake.outage("GET", r"/users/@me$", 401, body={"code": 0, "message": "401: Unauthorized"})
    point_at_fake = f"import discord\ndiscord.http.Route.BASE = '{fake.url}/api/v10'"
    process = await _start_bot_py(point_at_fake, tmp_path)
    _out, err = await asyncio.wait_for(process.communicate(), PATIENCE_S)
    output = err.decode()
    assert process.returncode == 2, output
    assert "refused the token in DISCORD_TOKEN" in output
    assert "Traceback" not in output and "cannot reach Discord" not in output


async def _start_bot_py(code: str, cwd: Path) -> asyncio.subprocess.Process:
    """`code` then bot.main() in a fresh interpreter, as `python bot.py` would run, without
    blocking this event loop (a fake Discord in it must go on answering)."""
    script = f"import sys, bot\n{code}\nsys.exit(bot.main())"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=cwd, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DISCORD_TOKEN": "x",
             "PLACE_DATA_DIR": str(cwd / "data")})


async def test_a_guild_the_bot_is_not_in_stops_the_start_naming_the_setting(
        fake, start_bot):
    """DISCORD_GUILD_ID of a server the bot was never invited to: StartupError, one line."""
    with pytest.raises(StartupError, match="DISCORD_GUILD_ID") as raised:
        async with start_bot(discord_guild_id=9999):
            pass
    assert "\n" not in str(raised.value) and "9999" in str(raised.value)


async def test_another_bot_token_with_the_same_data_folder_syncs_again(
        fake, tiny_model_dir, gated, tmp_path):
    """Switching DISCORD_TOKEN to another application keeps /place: it is synced there too."""
    settings = bot_settings(tmp_path / "data", tiny_model_dir)
    async with fake.running(PlaceBot(settings, renderer=gated, guild_ready_timeout=0.05)):
        assert fake.sync_count == 1
    other = FakeDiscord(app_id=1001, bot_user_id=1001)
    bot = PlaceBot(settings, renderer=gated, guild_ready_timeout=0.05)
    async with other, other.running(bot):
        assert other.sync_count == 1
    names = [c["name"] for c in other.commands[str(other.guild_id)]]
    assert "place" in names and names == [c["name"] for c in fake.commands[str(fake.guild_id)]]


async def test_going_global_after_trying_on_one_server_removes_the_servers_copy(
        fake, tiny_model_dir, gated, tmp_path):
    """DISCORD_GUILD_ID set while trying the bot, then emptied: the commands are synced
    globally and the server's copy is removed, so nobody sees /place listed twice."""
    settings = bot_settings(tmp_path / "data", tiny_model_dir)
    async with fake.running(PlaceBot(settings, renderer=gated, guild_ready_timeout=0.05)):
        assert [c["name"] for c in fake.commands[str(fake.guild_id)]]
    everywhere = replace(settings, discord_guild_id=None)
    async with fake.running(PlaceBot(everywhere, renderer=gated, guild_ready_timeout=0.05)):
        assert fake.commands[str(fake.guild_id)] == []
    assert "place" in [c["name"] for c in fake.commands["global"]]


def test_a_redis_server_refusing_the_login_stops_the_start_in_one_line(tmp_path):
    """PLACE_REDIS_URL with a wrong password: one line naming the setting, exit 2 (it was an
    outage, "retrying until it is back", forever), before Discord is even contacted."""
    from tests.support.valkey import ValkeyProcess

    with ValkeyProcess(tmp_path / "valkey", password="the-secret") as valkey:
        done = _bot_py("", tmp_path, PLACE_DATA_DIR=str(tmp_path / "data"),
                       PLACE_REDIS_URL=valkey.url.replace("the-secret", "a-guess"))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: PLACE_REDIS_URL: the Redis server refused")


async def test_a_bot_whose_redis_refuses_the_login_does_not_start(tmp_path, tiny_model_dir):
    """The same refusal met when the bot starts its backend (the server was out of reach at
    the first look): a StartupError naming PLACE_REDIS_URL, which bot.py turns into one line
    and exit 2."""
    from tests.support.valkey import ValkeyProcess

    with ValkeyProcess(tmp_path / "valkey", password="the-secret") as valkey:
        settings = bot_settings(tmp_path / "data", tiny_model_dir,
                                redis_url=valkey.url.replace("the-secret", "a-guess"))
        async with FakeDiscord() as fake:
            with pytest.raises(StartupError, match="PLACE_REDIS_URL: the Redis server refused"):
                async with fake.running(PlaceBot(settings, guild_ready_timeout=0.05)):
                    pass


def test_a_folder_where_the_journal_should_be_stops_the_start_in_one_line(tmp_path):
    """PLACE_DATA_DIR/jobs.sqlite3 is a folder: one line naming the setting and the path,
    exit 2 (it ended in a traceback, exit 1)."""
    (tmp_path / "data" / "jobs.sqlite3").mkdir(parents=True)
    done = _bot_py("", tmp_path, PLACE_DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "PLACE_DATA_DIR" in line and "jobs.sqlite3 is a folder" in line
