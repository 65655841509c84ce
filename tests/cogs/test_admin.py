"""/place_admin through the real bot and discord.py over the fake Discord: who may use it,
the owner's bounds, persistence across a restart, and each setting applied to the next job."""

import contextlib
import logging

import pytest

from cogs.admin import NOT_AN_ADMIN, RESET_CHOICES
from placebot.discord_side.client import PlaceBot
from placebot.servers.server_settings import SETTING_NAMES
from tests.support.bot_harness import bot_settings
from tests.support.valkey import ValkeyProcess

MANAGE_GUILD = 1 << 5
SUBCOMMANDS = {"show", "channels", "cooldown", "user_limit", "prompts", "model", "safety",
               "reset"}


def admin(fake, subcommand, options=None, **kwargs):
    """/place_admin `subcommand` by a member with Manage Server."""
    return fake.slash("place_admin", options or {}, subcommand=subcommand,
                      permissions=MANAGE_GUILD, **kwargs)


async def answer(fake, interaction) -> str:
    """The interaction's answer, once it has one: an ephemeral line (or lines)."""
    [text] = await fake.wait_for(lambda: [t for t in interaction.ephemeral_texts if t])
    return text


async def refusal(fake, interaction) -> str:
    """The one ephemeral line a command was refused with, before anything was queued."""
    await fake.wait_for(lambda: interaction.callbacks)
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    return callback["data"]["content"]


async def test_place_admin_is_synced_for_manage_server_and_in_servers_only(fake, start_bot):
    """Discord shows it only to members with Manage Server (default_member_permissions),
    only in servers, with every subcommand; a member without the permission can't see it."""
    async with start_bot():
        command = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}["place_admin"]
        with pytest.raises(PermissionError):
            fake.slash("place_admin", subcommand="show", permissions=0)
    assert int(command["default_member_permissions"]) == MANAGE_GUILD
    assert command["contexts"] == [0]  # guilds only, no DMs
    assert {option["name"] for option in command["options"]} == SUBCOMMANDS
    channels = {o["name"]: o for o in command["options"]}["channels"]
    assert {o["name"] for o in channels["options"]} == {"add", "remove", "clear"}


def test_reset_can_name_every_setting():
    """/place_admin reset offers each stored setting by name."""
    assert sorted(RESET_CHOICES.values()) == sorted(SETTING_NAMES)


async def test_a_member_without_manage_server_is_refused_where_the_command_is_open(fake,
                                                                                   start_bot):
    """A server may open the command to everyone (Integrations settings): the permission is
    checked again, the member refused in one ephemeral line, and nothing changes."""
    async with start_bot():
        refused = fake.slash("place_admin", {"seconds": 600}, subcommand="cooldown",
                             permissions=0, opened_to_all=True)
        assert await refusal(fake, refused) == NOT_AN_ADMIN
        shown = await answer(fake, admin(fake, "show"))
    assert "**Cooldown**: 0 s (the owner's)" in shown


async def test_settings_survive_a_restart_and_each_change_is_logged(fake, start_bot, tmp_path,
                                                                    caplog):
    """Every setting changed, the bot restarted on the same data folder: show lists each as
    this server's; the log names the server and who changed what."""
    caplog.set_level(logging.INFO, logger="cogs.admin")
    dreams = fake.add_channel("dreams")
    data = tmp_path / "data"
    changes = [("channels add", {"channel": dreams}), ("cooldown", {"seconds": 30}),
               ("user_limit", {"jobs": 2}), ("prompts", {"allowed": False}),
               ("model", {"model": "1.5"}), ("safety", {"where": "everywhere"})]
    async with start_bot(data_dir=data, user_max=3):
        for subcommand, options in changes:
            assert "is now" in await answer(fake, admin(fake, subcommand, options))
    async with start_bot(data_dir=data, user_max=3):
        shown = await answer(fake, admin(fake, "show"))
    for line in (f"**Channels**: <#{dreams}> (this server)",
                 "**Cooldown**: 30 s (this server; the owner's is 0 s)",
                 "**Jobs per person**: 2 (this server; the owner's is 3)",
                 "**Prompts**: off (this server)", "**Default model**: SD 1.5 (this server)",
                 "**Safety checker**: every channel, age-restricted ones too (this server)"):
        assert line in shown
    logged = [r.getMessage() for r in caplog.records if r.name == "cogs.admin"]
    assert f"server {fake.guild_id}: user4000 (4000) set cooldown_s to 30.0" in logged
    assert any(f"server {fake.guild_id}: user4000 (4000) added channel {dreams}" in line
               for line in logged)


async def test_a_server_may_be_stricter_than_the_owner_never_looser(fake, start_bot):
    """Each change past the owner's bounds is refused saying what is allowed, and stored
    nothing: show still gives the owner's."""
    async with start_bot(user_cooldown_s=10.0, user_max=2, prompts=False,
                         safety_checker="false"):
        refusals = {
            "cooldown": "the cooldown can be 10 s to 86400 s here",
            "user_limit": "the limit can be 1 to 2 job(s) per person here",
            "prompts": "turned prompts off in every server",
            "safety": "PLACE_SAFETY_CHECKER=false",
        }
        options = {"cooldown": {"seconds": 5}, "user_limit": {"jobs": 3},
                   "prompts": {"allowed": True}, "safety": {"where": "everywhere"}}
        for subcommand, expected in refusals.items():
            text = await answer(fake, admin(fake, subcommand, options[subcommand]))
            assert text.startswith("Not changed:") and expected in text
        stricter = await answer(fake, admin(fake, "cooldown", {"seconds": 20}))
        shown = await answer(fake, admin(fake, "show"))
    assert stricter == "Cooldown is now: 20 s (this server; the owner's is 10 s)."
    assert "**Jobs per person**: 2 (the owner's)" in shown
    assert "**Prompts**: off (the owner's)" in shown
    assert "**Safety checker**: off in every channel (the owner's)" in shown


async def test_the_channel_list_refuses_elsewhere_and_allows_its_channels_and_threads(
        fake, start_bot, gated):
    """One channel listed: /place elsewhere gets one ephemeral line naming it and queues
    nothing; in the channel, and in a thread of it, the job is accepted."""
    dreams = fake.add_channel("dreams")
    thread = fake.add_thread(dreams)
    gated.close()  # accepted jobs wait at the gate: nothing needs rendering here
    async with start_bot(user_max=3) as bot:
        await answer(fake, admin(fake, "channels add", {"channel": dreams}))
        elsewhere = fake.slash("place", channel_id=fake.channel_id)
        assert await refusal(fake, elsewhere) == (
            f"in this server the bot can be used only in <#{dreams}>")
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
        accepted = [fake.slash("place", channel_id=dreams),
                    fake.slash("place", channel_id=thread)]
        await fake.wait_for(lambda: all(i.callbacks for i in accepted))
        assert [i.callbacks[0]["type"] for i in accepted] == [5, 5]  # deferred: accepted
        cleared = await answer(fake, admin(fake, "channels clear"))
        assert cleared == "Channels is now: every channel (no list set)."
        again = fake.slash("place", user_id=4001, channel_id=fake.channel_id)
        await fake.wait_for(lambda: again.callbacks)
        assert again.callbacks[0]["type"] == 5


async def test_a_servers_limits_model_and_prompts_apply_to_the_next_job(fake, start_bot,
                                                                        gated):
    """Changed between two jobs, each setting holds for the next: a per-person limit of 1
    (the owner allows 3), a cooldown (the owner has none), SD 1.5 where a job names no
    model, and prompts off."""
    gated.close()
    async with start_bot(user_max=3) as bot:
        await answer(fake, admin(fake, "user_limit", {"jobs": 1}))
        first = fake.slash("place", user_id=10)
        await fake.wait_for(lambda: first.callbacks)
        assert "you already have 1 job waiting" in await refusal(
            fake, fake.slash("place", user_id=10))
        await answer(fake, admin(fake, "cooldown", {"seconds": 600}))
        await answer(fake, admin(fake, "reset", {"setting": "user_limit"}))
        assert "(cooldown)" in await refusal(fake, fake.slash("place", user_id=10))
        await answer(fake, admin(fake, "model", {"model": "1.5"}))
        fake.slash("place", {"model": "1.4"}, user_id=11)
        fake.slash("place", user_id=12)
        await fake.wait_for(lambda: len(bot.jobs.queue.waiting) == 2)
        models = {job.user_id: job.render.model for job in bot.jobs.queue.waiting}
        assert models == {11: "1.4", 12: "1.5"}
        await answer(fake, admin(fake, "prompts", {"allowed": False}))
        prompted = fake.slash("place", {"prompt": "a castle"}, user_id=13)
        assert "this server's admins have turned prompts off" in await refusal(fake, prompted)


@pytest.fixture
def valkey(tmp_path):
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as server:
        yield server


async def test_the_distributed_mode_keeps_settings_in_redis_for_every_bot_process(
        fake, valkey, tmp_path, tiny_model_dir):
    """Two bot processes on one Redis, each with its own data folder: a channel listed
    through the first is enforced by the second, and shown by it as this server's."""
    dreams = fake.add_channel("dreams")

    @contextlib.asynccontextmanager
    async def bot_process(name):
        settings = bot_settings(tmp_path / name, tiny_model_dir, redis_url=valkey.url)
        bot = PlaceBot(settings, guild_ready_timeout=0.05)
        bot.shutdown_grace_s = 1.0
        async with fake.running(bot):
            yield bot

    async with bot_process("first"):
        await answer(fake, admin(fake, "channels add", {"channel": dreams}))
        async with bot_process("second") as second:  # the fake now talks to this one
            assert fake._bot_ws is not None
            refused = fake.slash("place", channel_id=fake.channel_id)
            assert await refusal(fake, refused) == (
                f"in this server the bot can be used only in <#{dreams}>")
            shown = await answer(fake, admin(fake, "show"))
            assert not second.jobs.queue.local
    assert f"**Channels**: <#{dreams}> (this server)" in shown
    assert not (tmp_path / "first" / "servers.sqlite3").exists()
