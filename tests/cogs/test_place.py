"""/place through the real bot and discord.py, over a socket to the fake Discord."""

import asyncio
import itertools

import discord

from pipeline.outputs import read_metadata
from tests.support.bot_harness import (
    custom_ids,
    embed_fields,
    render_after_token_expiry,
    wait_result,
)
from tests.support.patience import PATIENCE_S

# What the real CLIP tokenizer keeps of 500 underscores: its 75 tokens (runs of underscores)
# decode to 545 characters, spaces between them, longer than the prompt. The tiny model's
# byte-level tokenizer keeps 75 single characters, so a renderer reports this cut instead.
REAL_CLIP_CUT_OF_UNDERSCORES = " ".join(["_" * 8] * 60) + " _____"


class RealClipCut:
    """The real renderer on the tiny model, its cut prompts reported as the real CLIP
    tokenizer cuts 500 underscores."""

    def __init__(self, inner):
        self.inner, self.store = inner, inner.store

    def __getattr__(self, name):  # the rest of the Renderer (is_ready, prepare...) as it is
        return getattr(self.inner, name)

    def render(self, jobs, **kwargs):
        results = self.inner.render(jobs, **kwargs)
        for result in results:
            if result.prompt_used is not None:
                result.prompt_used = REAL_CLIP_CUT_OF_UNDERSCORES
        return results


async def test_commands_are_synced_to_the_guild_with_their_options(fake, start_bot):
    """/place and /place_status reach the guild, with every option described."""
    async with start_bot():
        commands = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}
    assert set(commands) >= {"place", "place_status"}
    options = {o["name"]: o for o in commands["place"]["options"]}
    assert list(options) == ["model", "canvas", "artwork", "x", "y", "seed", "strength",
                             "recursions", "prompt"]
    assert all(o["description"] and not o["required"] for o in options.values())
    assert [c["value"] for c in options["model"]["choices"]] == ["1.4", "1.5"]
    assert [c["value"] for c in options["canvas"]["choices"]] == ["2017", "2022", "2023"]
    assert (options["recursions"]["min_value"], options["recursions"]["max_value"]) == (0, 5)


async def test_with_prompts_off_place_offers_no_prompt(fake, start_bot):
    """PLACE_PROMPTS=false: /place is synced without its prompt option."""
    async with start_bot(prompts=False):
        commands = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}
    assert "prompt" not in {o["name"] for o in commands["place"]["options"]}
    assert "seed" in {o["name"] for o in commands["place"]["options"]}


async def test_with_prompts_off_a_prompt_from_an_older_declaration_is_refused(fake, start_bot):
    """PLACE_PROMPTS=false: a client still holding /place with its prompt option sends one;
    it is refused in one ephemeral line and nothing is queued (not rendered without it)."""
    async with start_bot(prompts=False) as bot:
        interaction = fake.slash("place", undeclared={"prompt": "a castle"})
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "turned prompts off" in callback["data"]["content"]


async def test_a_prompt_is_limited_to_its_length_in_discord(fake, start_bot):
    """The prompt option carries its maximum length, so Discord refuses longer text itself."""
    async with start_bot():
        commands = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}
    [prompt] = [o for o in commands["place"]["options"] if o["name"] == "prompt"]
    assert (prompt["min_length"], prompt["max_length"]) == (1, 500)


async def test_unchanged_commands_are_not_synced_again(fake, start_bot, tmp_path):
    async with start_bot(data_dir=tmp_path / "d"):
        pass
    async with start_bot(data_dir=tmp_path / "d"):
        pass
    assert fake.sync_count == 1


async def test_place_without_options_defers_and_posts_the_result(fake, start_bot,
                                                                 tiny_model_dir):
    """Deferred at once, then one message with the image, the strip, an embed and buttons."""
    async with start_bot():
        interaction = fake.slash("place")
        result = await wait_result(fake, interaction)
    assert interaction.callbacks[0]["type"] == 5  # deferred within Discord's 3 s
    names = [name for name, _ in result.attachments]
    assert len(names) == 3 and names[0].endswith(".png") and "_strip" in names[1]
    assert names[2].endswith(".webp")  # the passes as an animation
    fields = embed_fields(result)
    assert fields["Model id"] == str(tiny_model_dir)  # a local folder here
    assert fields["Recursions"] == "1" and fields["Strength"] == "0.5"
    assert read_metadata(result.attachments[0][1])["seed"] == int(fields["Seed"])
    ids = custom_ids(result)
    assert [i.split(":")[1] for i in ids] == ["reroll", "newcrop", "delete"]
    assert f"<@{interaction.user_id}>" in result.content


async def test_place_with_every_option(fake, start_bot):
    async with start_bot():
        interaction = fake.slash("place", {"model": "1.5", "canvas": "2023", "x": 1500,
                                           "y": 800, "seed": 42, "strength": 0.75,
                                           "recursions": 2})
        result = await wait_result(fake, interaction)
    fields = embed_fields(result)
    assert (fields["Canvas"], fields["x"], fields["y"], fields["Seed"], fields["Strength"],
            fields["Recursions"]) == ("2023", "1500", "800", "42", "0.75", "2")
    assert "SD 1.5" in result.embeds[0]["title"]


async def test_progress_shows_the_filmstrip_after_each_pass(fake, start_bot):
    async with start_bot(recursions=2):
        interaction = fake.slash("place")
        await wait_result(fake, interaction)
    edits = [r for r in fake.requests if r.method == "PATCH" and interaction.token in r.path]
    progress = [r.json["content"] for r in edits if r.json and "pass" in (r.json.get("content")
                                                                         or "")]
    assert "Dreaming: pass 1/3…" in progress and "Dreaming: pass 2/3…" in progress
    assert any(name == "progress.jpg" for r in edits for name, _ in r.files)


async def test_bad_input_is_refused_ephemerally_before_queuing(fake, start_bot):
    """Each bad combination gets an ephemeral message naming what is allowed."""
    cases = [
        ({"x": 10}, "give both x and y"),
        ({"x": 10, "y": 10}, "x and y need a canvas"),
        ({"canvas": "2017", "x": 2000, "y": 5}, "x must be 0-968 and y 0-968"),
        ({"strength": 0.0}, "strength must be in (0, 1] but is 0.0"),
        ({"strength": 0.1}, "runs no denoising step"),  # 4 steps x 0.1 < 1
    ]
    async with start_bot() as bot:
        for options, expected in cases:
            interaction = fake.slash("place", options)
            await fake.wait_for(lambda i=interaction: i.callbacks)
            callback = interaction.callbacks[0]
            assert callback["type"] == 4 and callback["data"]["flags"] & 64
            assert expected in callback["data"]["content"]
        assert len(bot.jobs.queue) == 0 and bot.jobs.journal.recover().retry == []


async def test_waiting_users_see_their_position_updated(fake, start_bot, gated):
    async with start_bot(max_batch=1):
        gated.close()
        first = fake.slash("place", user_id=1)
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        second = fake.slash("place", {"seed": 2}, user_id=2)
        await fake.wait_for(lambda: second.original and "position 1" in second.original.content)
        third = fake.slash("place", {"seed": 3}, user_id=3)
        await fake.wait_for(lambda: third.original and "position 2" in third.original.content)
        assert "position 1 (0 jobs ahead" in second.original.content
        cancel = next(i for i in custom_ids(second.original) if i.startswith("place:cancel"))
        fake.click(second.original.id, cancel, user_id=2)
        await fake.wait_for(lambda: "position 1" in third.original.content)
        gated.open()
        await wait_result(fake, first)
        await wait_result(fake, third)
    assert second.original.content == "Cancelled."


async def test_per_user_limit_refuses_a_second_job(fake, start_bot, gated):
    async with start_bot():
        gated.close()
        fake.slash("place", user_id=7)
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        again = fake.slash("place", user_id=7)
        await fake.wait_for(lambda: again.callbacks)
        gated.open()
    assert "you already have 1 job waiting" in again.callbacks[0]["data"]["content"]
    assert again.callbacks[0]["data"]["flags"] & 64


async def test_cancel_is_for_the_requester_only(fake, start_bot, gated):
    async with start_bot():
        gated.close()
        job = fake.slash("place", user_id=5)
        await fake.wait_for(lambda: job.original and custom_ids(job.original))
        cancel = custom_ids(job.original)[0]
        other = fake.click(job.original.id, cancel, user_id=6)
        await fake.wait_for(lambda: other.callbacks)
        assert "Only the person who asked" in other.callbacks[0]["data"]["content"]
        mine = fake.click(job.original.id, cancel, user_id=5)
        await fake.wait_for(lambda: mine.callbacks)
        gated.open()
        await fake.wait_for(lambda: job.original.content == "Cancelled.")
    assert not job.original.embeds


async def test_delete_needs_the_requester_or_manage_messages(fake, start_bot):
    from tests.support.bot_harness import MANAGE_MESSAGES

    async with start_bot():
        first = fake.slash("place", user_id=5)
        result = await wait_result(fake, first)
        delete = next(i for i in custom_ids(result) if i.startswith("place:delete"))
        stranger = fake.click(result.id, delete, user_id=6)
        await fake.wait_for(lambda: stranger.callbacks)
        assert stranger.callbacks[0]["type"] == 4 and not result.deleted
        fake.click(result.id, delete, user_id=6, permissions=MANAGE_MESSAGES)
        await fake.wait_for(lambda: result.deleted)
        second = fake.slash("place", user_id=5)
        own = await wait_result(fake, second)
        delete = next(i for i in custom_ids(own) if i.startswith("place:delete"))
        fake.click(own.id, delete, user_id=5)
        await fake.wait_for(lambda: own.deleted)


async def test_reroll_keeps_the_crop_with_a_new_seed_and_new_crop_changes_it(fake, start_bot):
    async with start_bot():
        first = await wait_result(fake, fake.slash("place", {"canvas": "2017", "x": 3, "y": 4}))
        reroll, newcrop = custom_ids(first)[:2]
        again = fake.click(first.id, reroll, user_id=4000)
        rerolled = await wait_result(fake, again)
        other = await wait_result(fake, fake.click(first.id, newcrop, user_id=4000))
    a, b, c = embed_fields(first), embed_fields(rerolled), embed_fields(other)
    assert (b["Canvas"], b["x"], b["y"]) == ("2017", "3", "4") and b["Seed"] != a["Seed"]
    assert (c["Canvas"], c["x"], c["y"]) != ("2017", "3", "4")
    assert rerolled.id != first.id  # a new message; the first stays


async def test_a_result_after_the_token_expired_is_posted_in_the_channel(fake, start_bot,
                                                                        gated):
    async with start_bot():
        await render_after_token_expiry(fake, gated, user_id=9)
        posted = await fake.wait_for(lambda: [m for m in fake.messages.values()
                                              if m.interaction_token is None and m.embeds])
    assert posted[0].content.startswith("<@9>") and len(posted[0].attachments) == 3


async def test_a_burst_of_20_users_all_get_exactly_one_result(fake, start_bot):
    async with start_bot() as bot:
        interactions = [fake.slash("place", user_id=100 + n) for n in range(20)]
        for interaction in interactions:
            await wait_result(fake, interaction)
        assert all(i.callbacks[0]["type"] == 5 for i in interactions)
        results = [m for m in fake.messages.values() if m.embeds]
        assert len(results) == 20
        await fake.wait_for(lambda: {bot.jobs.journal.state(i) for i in _job_ids(bot)} == {"done"})


def _job_ids(bot):
    rows = bot.jobs.journal._db.execute("SELECT job_id FROM jobs").fetchall()
    return [row[0] for row in rows]


async def test_gateway_heartbeats_flow_while_a_job_renders(fake, start_bot, renderer):
    """A render of several seconds runs off the event loop: heartbeats keep their rhythm."""
    async with start_bot(renderer=renderer, steps=50, strength=1.0, recursions=1):
        interaction = fake.slash("place")
        await fake.wait_for(lambda: interaction.original and
                            "Dreaming" in interaction.original.content)
        started = asyncio.get_running_loop().time()
        await wait_result(fake, interaction)
        ended = asyncio.get_running_loop().time()
    during = [t for t in fake.heartbeats if started <= t <= ended]
    gaps = [b - a for a, b in itertools.pairwise([started, *during, ended])]
    assert ended - started >= 2.0  # a real multi-second render (100 UNet steps)
    # The fake asks for a beat every second. A render on the event loop would leave one gap
    # as long as the render; beats that keep coming leave none longer than half of it, however
    # slow a busy machine makes both (no fixed bound on a clock here).
    assert len(during) >= 2
    assert max(gaps) <= (ended - started) / 2


async def test_a_500_character_prompt_of_underscores_delivers_its_picture(fake, start_bot,
                                                                           renderer):
    """Escaping doubles the underscores: CLIP's cut of the prompt would pass Discord's 1024
    characters for a field. It is cut with an ellipsis, Discord takes the message, and the
    picture arrives with its embed."""
    prompt = "_" * 500
    escaped_cut = discord.utils.escape_markdown(REAL_CLIP_CUT_OF_UNDERSCORES)
    assert len(REAL_CLIP_CUT_OF_UNDERSCORES) == 545 and len(escaped_cut) > 1024  # the case
    async with start_bot(renderer=RealClipCut(renderer)):
        interaction = fake.slash("place", {"prompt": prompt}, user_id=31)
        result = await wait_result(fake, interaction)
    fields = embed_fields(result)
    assert fields["Prompt"] == "\\_" * 500  # 1000 characters: it fits
    # cut within 1024, and not through an escape (a lone backslash would eat the ellipsis)
    assert len(fields["Prompt cut"]) <= 1024 and fields["Prompt cut"].endswith("\\_…")
    assert fields["Prompt cut"].startswith("CLIP reads 77 tokens; the prompt was cut to: \\_")
    assert len(result.attachments) == 3 and "failed" not in result.content
    assert not fake.refused
