"""The fake works with the real discord.py: a tiny bot with /ping runs against it end to end."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator

import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands
from PIL import Image

# the bot's own channel option (/place_admin's): discord.py's default channel types include one
# that Discord's spec does not list (media), which the fake refuses as the spec says
from cogs.admin import Channel as CommandChannel
from tests.support.patience import PATIENCE_S

from .server import FakeDiscord


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class PingView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.clicked_by: list[int] = []

    @discord.ui.button(label="Again", custom_id="ping:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.clicked_by.append(interaction.user.id)
        await interaction.response.send_message("clicked", ephemeral=True)
        await interaction.followup.send("followup", ephemeral=True)

    @discord.ui.button(label="Done", custom_id="ping:done")
    async def done(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="done", attachments=[], view=None)


@app_commands.command()
async def ping(
    interaction: discord.Interaction, text: str = "pong", followup: bool = False
) -> None:
    """Thinks, then answers with a PNG and a button (by editing, or by a followup)."""
    bot: PingBot = interaction.client  # type: ignore[assignment]
    file, view = discord.File(io.BytesIO(PNG), "ping.png"), PingView()
    bot.views.append(view)
    try:
        await interaction.response.defer(thinking=True)
        if followup:
            await interaction.followup.send(text, file=file, view=view)
        else:
            await interaction.edit_original_response(content=text, attachments=[file], view=view)
    except discord.HTTPException as exc:
        bot.errors.append(exc)


@app_commands.command()
@app_commands.default_permissions(manage_guild=True)
async def where(interaction: discord.Interaction, target: CommandChannel) -> None:
    """Names the target channel, and where it was asked: a thread's parent, age-restricted?"""
    here = interaction.channel
    parent = here.parent if isinstance(here, discord.Thread) else None
    await interaction.response.send_message(
        f"{target.mention} {type(target).__name__}; asked in {type(here).__name__}, parent "
        f"{parent.id if parent else None}, nsfw {here.is_nsfw() if here else None}")


def _with_where(bot: PingBot) -> PingBot:
    bot.tree.add_command(where)
    return bot


class PingBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         guild_ready_timeout=0.01)
        self.errors: list[discord.HTTPException] = []
        self.views: list[PingView] = []
        self.tree.add_command(ping)

    async def setup_hook(self) -> None:
        await self.tree.sync()


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest_asyncio.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[PingBot]:
    bot = PingBot()
    async with fake.running(bot):
        yield bot


async def _answered(fake: FakeDiscord, interaction) -> discord.Message:
    """Waits until the deferred original has been edited, and returns it."""
    return await fake.wait_for(lambda: interaction.original and interaction.original.edits
                               and interaction.original)


@pytest.mark.asyncio
async def test_login_and_sync(fake: FakeDiscord, bot: PingBot) -> None:
    """Logging in, syncing and IDENTIFY work, and the synced commands are recorded."""
    paths = [(r.method, r.path, r.status) for r in fake.requests]
    assert paths[:3] == [("GET", "/users/@me", 200), ("GET", "/oauth2/applications/@me", 200),
                         ("PUT", "/applications/1000/commands", 200)]
    [command] = fake.commands["global"]
    assert command["name"] == "ping" and command["id"]
    assert {o["name"]: o["type"] for o in command["options"]} == {"text": 3, "followup": 5}
    assert fake.sync_count == 1 and fake.identifies == 1
    assert bot.user.id == 1000 and bot.get_guild(2000).get_channel(3000).name == "general"
    with pytest.raises(LookupError, match="not synced"):
        fake.slash("nope")
    assert not fake.unhandled


@pytest.mark.asyncio
async def test_slash_defer_then_edit_with_png(fake: FakeDiscord, bot: PingBot) -> None:
    """/ping defers, then edits the original: the PNG, the text and the button are recorded."""
    interaction = fake.slash("ping", {"text": "hello"})
    assert interaction.payload["data"]["options"] == [{"name": "text", "type": 3, "value": "hello"}]
    original = await _answered(fake, interaction)
    assert [c["type"] for c in interaction.callbacks] == [5]
    assert original.content == "hello" and original.flags == 0 and original.edits == 1
    assert original.attachments == [("ping.png", PNG)]
    assert original.components[0]["components"][0]["custom_id"] == "ping:again"
    edit = next(r for r in fake.requests if r.method == "PATCH")
    assert edit.path == f"/webhooks/1000/{interaction.token}/messages/@original"
    assert edit.files == [("ping.png", PNG)] and edit.json["content"] == "hello"
    assert not bot.errors and not fake.unhandled


@pytest.mark.asyncio
async def test_button_click_reaches_the_view(fake: FakeDiscord, bot: PingBot) -> None:
    """A click on the stored message runs the view's callback; its ephemeral replies are seen."""
    original = await _answered(fake, fake.slash("ping"))
    click = fake.click(original.id, "ping:again", user_id=4242)
    await fake.wait_for(lambda: len(click.ephemeral_texts) == 2)
    assert bot.views[0].clicked_by == [4242]
    assert click.ephemeral_texts == ["clicked", "followup"]
    assert [c["type"] for c in click.callbacks] == [4] and len(click.followups) == 1
    with pytest.raises(LookupError):
        fake.click(original.id, "no-such-button")


@pytest.mark.asyncio
async def test_button_updates_its_message(fake: FakeDiscord, bot: PingBot) -> None:
    """A type 7 callback edits the clicked message in place: text, files and buttons go."""
    original = await _answered(fake, fake.slash("ping"))
    click = fake.click(original.id, "ping:done")
    await fake.wait_for(lambda: original.content == "done")
    assert [c["type"] for c in click.callbacks] == [7] and click.original is original
    assert (original.attachments, original.components, original.edits) == ([], [], 2)


@pytest.mark.asyncio
async def test_discord_limits(fake: FakeDiscord, bot: PingBot) -> None:
    """Wrong option types, oversized uploads and late answers fail as they would on Discord."""
    with pytest.raises(TypeError):
        fake.slash("ping", {"followup": "yes"})
    fake.slash("ping", attachment_size_limit=10)
    [too_big] = await fake.wait_for(lambda: bot.errors)
    assert too_big.status == 413
    fake.ack_timeout = 0  # every answer is late now
    fake.slash("ping")
    await fake.wait_for(lambda: len(bot.errors) == 2)
    assert bot.errors[1].code == 10062  # Unknown interaction


@pytest.mark.asyncio
async def test_rate_limited_edit_is_retried(fake: FakeDiscord, bot: PingBot) -> None:
    """A 429 on the edit is retried by discord.py after retry_after, and the edit lands."""
    fake.fail_next("PATCH", r"/messages/@original$", 429, retry_after=0.05)
    original = await _answered(fake, fake.slash("ping", {"text": "late"}))
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [429, 200]
    assert original.content == "late" and not bot.errors


@pytest.mark.asyncio
async def test_expired_token_fails_the_edit(fake: FakeDiscord, bot: PingBot) -> None:
    """After the token expires the defer still works but the edit raises HTTPException 401."""
    interaction = fake.slash("ping")
    fake.expire_token(interaction.token)
    [error] = await fake.wait_for(lambda: bot.errors)
    assert error.status == 401 and error.code == 50027
    assert interaction.original.content == "" and interaction.original.edits == 0


@pytest.mark.asyncio
async def test_dropped_gateway_resumes(fake: FakeDiscord, bot: PingBot) -> None:
    """A dropped socket makes discord.py RESUME (not IDENTIFY), and slash commands still work."""
    await fake.drop_gateway()
    await fake.wait_ready()
    assert fake.resumes == 1 and fake.identifies == 1
    original = await _answered(fake, fake.slash("ping", {"text": "again"}))
    assert original.content == "again"


@pytest.mark.asyncio
async def test_a_gateway_outage_refuses_reconnects_until_lifted(fake: FakeDiscord,
                                                                bot: PingBot) -> None:
    """While the gateway is out every reconnect is refused; once lifted discord.py resumes."""
    down = fake.gateway_outage()
    await fake.drop_gateway()
    await fake.wait_for(lambda: down.hits >= 1)
    assert fake.resumes == 0
    down.lift()
    await fake.wait_ready()
    assert fake.resumes == 1 and fake.identifies == 1


@pytest.mark.asyncio
async def test_heartbeats_are_answered(fake: FakeDiscord, bot: PingBot) -> None:
    """The bot heartbeats at HELLO's interval and gets acks (so its latency is measured)."""
    await fake.wait_for(lambda: len(fake.heartbeats) >= 2, timeout=PATIENCE_S)
    # HELLO asked for one a second: not faster (a busy machine may make them later, never
    # earlier, so no upper bound)
    assert fake.heartbeats[1] - fake.heartbeats[0] > 0.5
    assert math.isfinite(bot.latency)  # inf until an ack; its value is racy in discord.py


@pytest.mark.asyncio
async def test_dm_followup_replaces_thinking(fake: FakeDiscord, bot: PingBot) -> None:
    """In a DM, the first followup after a defer becomes the original, as on Discord."""
    interaction = fake.slash("ping", {"text": "dm", "followup": True}, guild=False)
    original = await _answered(fake, interaction)
    assert original.content == "dm" and original.attachments == [("ping.png", PNG)]
    assert fake.channels[original.channel_id]["type"] == 1 and interaction.followups == []


@pytest.mark.asyncio
async def test_channel_messages(fake: FakeDiscord, bot: PingBot) -> None:
    """Channel and DM sends, edits, deletes and a 403 channel behave as on Discord."""
    channel = bot.get_channel(3000)
    sent = await channel.send("hi", file=discord.File(io.BytesIO(PNG), "a.png"))
    await sent.edit(content="edited")
    await sent.delete()
    stored = fake.messages[str(sent.id)]
    assert (stored.content, stored.edits, stored.deleted) == ("edited", 1, True)
    dm = await bot.create_dm(discord.Object(4000))
    await dm.send("psst")
    assert [m.content for m in fake.messages.values() if m.channel_id == str(dm.id)] == ["psst"]
    fake.forbidden_channels.add("3000")
    with pytest.raises(discord.Forbidden):
        await channel.send("nope")


@pytest.mark.asyncio
async def test_enforced_nonce_posts_once(fake: FakeDiscord, bot: PingBot) -> None:
    """Two posts with the same enforced nonce make one message; both get its id back."""
    channel = bot.get_channel(3000)
    first = await channel.send("once", nonce="job-1")
    again = await channel.send("once more", nonce="job-1")
    other = await channel.send("other", nonce="job-2")
    assert again.id == first.id != other.id
    assert [m.content for m in fake.messages.values()] == ["once", "other"]
    assert fake.messages[str(first.id)].nonce == "job-1"


@pytest.mark.asyncio
async def test_lost_reply_still_posts(fake: FakeDiscord, bot: PingBot) -> None:
    """lose_reply: Discord posts the message, the bot only sees the error."""
    fake.fail_next("POST", r"/channels/3000/messages", 503, lose_reply=True)
    with pytest.raises(discord.DiscordServerError):
        await bot.get_channel(3000).send("made anyway")
    assert [m.content for m in fake.messages.values()] == ["made anyway"]


@pytest.mark.asyncio
async def test_outage_lasts_until_lifted(fake: FakeDiscord, bot: PingBot) -> None:
    """An outage answers 503 to every matching request until lifted, then Discord is back."""
    channel = bot.get_channel(3000)
    outage = fake.outage("POST", r"/channels/\d+/messages")
    for _ in range(2):
        with pytest.raises(discord.DiscordServerError):
            await channel.send("down")
    outage.lift()
    await channel.send("up")
    assert outage.hits == 2 and [m.content for m in fake.messages.values()] == ["up"]


@pytest.mark.asyncio
async def test_outage_for_a_window_ends_by_itself(fake: FakeDiscord, bot: PingBot) -> None:
    """An outage given `seconds` stops answering once they have passed."""
    outage = fake.outage("POST", r"/channels/\d+/messages", seconds=0)
    await bot.get_channel(3000).send("after the window")
    assert outage.hits == 0


@pytest.mark.asyncio
async def test_on_request_sees_each_request_before_its_answer(fake: FakeDiscord,
                                                              bot: PingBot) -> None:
    """on_request hooks run before the answer; a failing hook fails the request with a 503."""
    seen: list[str] = []
    fake.on_request.append(lambda rec: seen.append(rec.path))
    await bot.get_channel(3000).send("seen")
    assert seen == ["/channels/3000/messages"]
    fake.on_request.append(lambda rec: 1 / 0)
    with pytest.raises(discord.DiscordServerError):
        await bot.get_channel(3000).fetch_message(1)


@pytest.mark.asyncio
async def test_unchecked_option_types_reach_the_bot(fake: FakeDiscord, bot: PingBot) -> None:
    """check_types=False sends a value of another type than declared, as a stale client can."""
    interaction = fake.slash("ping", {"followup": "yes"}, check_types=False)
    assert interaction.payload["data"]["options"] == [
        {"name": "followup", "type": 5, "value": "yes"}]


@pytest.mark.asyncio
async def test_a_body_discord_refuses_gets_its_400(fake: FakeDiscord, bot: PingBot) -> None:
    """A reply over 2000 characters, sent by discord.py, is refused as Discord refuses it
    (400, code 50035, the field named), recorded in `refused`, and posts nothing."""
    fake.refusals_expected = True
    with pytest.raises(discord.HTTPException) as refused:
        await bot.get_channel(3000).send("x" * 2001)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert "content" in refused.value.text  # discord.py shows the fields Discord named
    [rec] = fake.refused
    assert rec.status == 400 and [p.where for p in rec.problems] == [("content",)]
    assert fake.messages == {}


@pytest.mark.asyncio
async def test_an_unexpected_refusal_fails_the_test_on_leaving_the_fake() -> None:
    """A bot request that Discord would refuse fails the test that did not expect one."""
    with pytest.raises(AssertionError, match=r"POST /channels/3000/messages: embeds\.0\.title"):
        async with FakeDiscord() as fake, fake.running(PingBot()) as bot:
            embed = discord.Embed(title="t" * 300)
            with pytest.raises(discord.HTTPException):
                await bot.get_channel(3000).send(embed=embed)


@pytest.mark.asyncio
async def test_default_member_permissions_hide_a_command(fake: FakeDiscord) -> None:
    """A command declared for Manage Server can't be run by a member without it (Discord does
    not show it), unless the server opened it to everyone; with the permission it runs."""
    async with fake.running(_with_where(PingBot())):
        with pytest.raises(PermissionError, match="needs permissions 32"):
            fake.slash("where", {"target": fake.channel_id}, permissions=0)
        opened = fake.slash("where", {"target": fake.channel_id}, opened_to_all=True)
        allowed = fake.slash("where", {"target": fake.channel_id}, permissions=1 << 5)
        await fake.wait_for(lambda: opened.original and allowed.original)


@pytest.mark.asyncio
async def test_channel_options_threads_and_age_restricted_channels(fake: FakeDiscord) -> None:
    """A channel option resolves to the channel (a thread to a thread); an interaction in a
    thread carries it with its parent, which the bot has from GUILD_CREATE, nsfw flag and all."""
    after_dark = fake.add_channel("after-dark", nsfw=True)
    thread = fake.add_thread(after_dark)
    async with fake.running(_with_where(PingBot())):
        in_thread = fake.slash("where", {"target": thread}, channel_id=thread,
                               permissions=1 << 5)
        in_channel = fake.slash("where", {"target": after_dark}, channel_id=after_dark,
                                permissions=1 << 5)
        await fake.wait_for(lambda: in_thread.original and in_channel.original)
    assert in_thread.payload["channel"]["parent_id"] == str(after_dark)
    assert in_thread.original.content == (
        f"<#{thread}> AppCommandThread; asked in Thread, parent {after_dark}, nsfw True")
    assert in_channel.original.content == (
        f"<#{after_dark}> AppCommandChannel; asked in TextChannel, parent None, nsfw True")
