"""/place artwork: and the artworks every result names, through the real bot and discord.py
over a socket to the fake Discord, on a small synthetic atlas (tests/support/atlas_files.py)."""

import logging
import re

import pytest

from pipeline.atlas.index import tiles_covered
from pipeline.atlas.windows import HALF
from pipeline.outputs import read_metadata
from placebot.discord_side.result_files import LOCATOR_NAME
from tests.support.atlas_files import write_atlas
from tests.support.bot_harness import custom_ids, embed_fields, wait_result

STAR_WARS_PAGE = "https://2022.place-atlas.stefanocoding.me/#000012"


@pytest.fixture
def atlas_dir(tmp_path):
    return write_atlas(tmp_path / "atlas")


async def _choices(fake, options):
    interaction = fake.autocomplete("place", options, "artwork")
    await fake.wait_for(lambda: interaction.callbacks)
    [callback] = interaction.callbacks
    assert callback["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
    return callback["data"]["choices"]


async def test_autocomplete_offers_every_years_best_names_labelled_by_year(fake, start_bot,
                                                                           atlas_dir):
    """No canvas chosen: matches of all three years, each labelled, valued by its key."""
    async with start_bot(atlas_dir=atlas_dir):
        choices = await _choices(fake, {"artwork": "star"})
        everything = await _choices(fake, {"artwork": ""})
    assert choices[0] == {"name": "Star Wars (2022)", "value": "2022-000012"}
    assert {re.search(r"\((\d{4})\)", c["name"])[1] for c in everything} == {
        "2017", "2022", "2023"}
    assert len(everything) <= 25


async def test_autocomplete_keeps_to_the_chosen_canvas(fake, start_bot, atlas_dir):
    """canvas:2022 chosen: its artworks only, unlabelled; two of one name told apart."""
    async with start_bot(atlas_dir=atlas_dir):
        choices = await _choices(fake, {"canvas": "2022", "artwork": "flag"})
    assert choices == [{"name": "Flag of Belgium at 200,600", "value": "2022-be1"},
                       {"name": "Flag of Belgium at 900,600", "value": "2022-be2"}]


async def test_without_the_atlas_the_option_says_it_was_not_downloaded(fake, start_bot):
    """No files: the option's help and its one choice say so, and /place artwork: is
    refused in one ephemeral line."""
    async with start_bot() as bot:
        [command] = [c for c in fake.commands[str(fake.guild_id)] if c["name"] == "place"]
        [option] = [o for o in command["options"] if o["name"] == "artwork"]
        choices = await _choices(fake, {"artwork": "star"})
        refused = fake.slash("place", {"artwork": "Star Wars"})
        await fake.wait_for(lambda: refused.callbacks)
        assert len(bot.jobs.queue) == 0
    assert "owner of this bot has not downloaded the r/Place Atlas" in option["description"]
    assert option["autocomplete"] is True
    assert choices == [{"name": "The owner of this bot has not downloaded the r/Place Atlas",
                        "value": "none"}]
    callback = refused.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "has not downloaded the r/Place Atlas" in callback["data"]["content"]


async def test_place_on_an_artwork_dreams_inside_it_and_names_it(fake, start_bot, atlas_dir):
    """The crop's centre is a tile of the artwork, on its year's canvas; the embed links its
    atlas page with its subreddit; the locator is the thumbnail; the PNG carries both."""
    async with start_bot(atlas_dir=atlas_dir) as bot:
        result = await wait_result(fake, fake.slash("place", {"artwork": "2022-000012"}))
        poster = bot.atlas.artwork("2022-000012")
    fields = embed_fields(result)
    assert fields["Canvas"] == "2022"
    x, y = int(fields["x"]), int(fields["y"])
    assert tiles_covered(poster, x + HALF, y + HALF, 1) == 1
    assert fields["On r/Place"].startswith(f"[Star Wars]({STAR_WARS_PAGE}) · "
                                           "r/starwars\\_place · ")
    assert result.embeds[0]["thumbnail"]["url"] == f"attachment://{LOCATOR_NAME}"
    assert LOCATOR_NAME in [name for name, _ in result.attachments]
    metadata = read_metadata(result.attachments[0][1])
    assert metadata["artwork"] == "2022-000012"
    assert metadata["artworks"][0]["url"] == STAR_WARS_PAGE


async def test_a_typed_name_is_taken_and_the_canvas_follows_the_artwork(fake, start_bot,
                                                                        atlas_dir):
    """"bad apple!!" typed (no choice picked): its 2023 canvas, though none was named."""
    async with start_bot(atlas_dir=atlas_dir):
        result = await wait_result(fake, fake.slash("place", {"artwork": "bad apple!!"}))
    fields = embed_fields(result)
    assert fields["Canvas"] == "2023" and "Bad Apple!!" in fields["On r/Place"]


async def test_reroll_keeps_the_window_and_new_crop_draws_another_of_the_artwork(
        fake, start_bot, atlas_dir):
    """Re-roll: same crop, new seed. New crop: the same artwork, a window drawn inside it."""
    async with start_bot(atlas_dir=atlas_dir) as bot:
        first = await wait_result(fake, fake.slash("place", {"artwork": "2022-u1"}))
        reroll, newcrop = (i for i in custom_ids(first) if ":reroll" in i or ":newcrop" in i)
        assert ":a2022-u1" in reroll and ":a2022-u1" in newcrop
        again = await wait_result(fake, fake.click(first.id, reroll))
        other = await wait_result(fake, fake.click(first.id, newcrop))
        shape = bot.atlas.artwork("2022-u1")
    before, after, drawn = embed_fields(first), embed_fields(again), embed_fields(other)
    assert (after["x"], after["y"]) == (before["x"], before["y"])
    assert after["Seed"] != before["Seed"]
    assert drawn["Canvas"] == "2022"
    assert tiles_covered(shape, int(drawn["x"]) + HALF, int(drawn["y"]) + HALF, 1) == 1
    assert ":a2022-u1" in " ".join(custom_ids(other))


async def test_an_unknown_name_gets_one_ephemeral_line_with_the_closest(fake, start_bot,
                                                                        atlas_dir):
    async with start_bot(atlas_dir=atlas_dir) as bot:
        interaction = fake.slash("place", {"artwork": "star warz"})
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    [callback] = interaction.callbacks
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "no artwork named 'star warz'" in callback["data"]["content"]
    assert "closest: Star Wars (2022)" in callback["data"]["content"]


async def test_an_artwork_with_x_and_y_is_refused(fake, start_bot, atlas_dir):
    """The artwork picks the crop: x and y beside it are refused, not silently dropped."""
    async with start_bot(atlas_dir=atlas_dir):
        interaction = fake.slash("place", {"artwork": "2022-000012", "canvas": "2022",
                                           "x": 600, "y": 700})
        await fake.wait_for(lambda: interaction.callbacks)
    assert "leave x and y out" in interaction.callbacks[0]["data"]["content"]


async def test_every_place_names_what_it_dreamed_on(fake, start_bot, atlas_dir):
    """A /place without artwork on the Star Wars poster's tiles names it too."""
    async with start_bot(atlas_dir=atlas_dir):
        result = await wait_result(fake, fake.slash("place", {"canvas": "2022", "x": 600,
                                                              "y": 750}))
    assert embed_fields(result)["On r/Place"] == (
        f"[Star Wars]({STAR_WARS_PAGE}) · r/starwars\\_place · 100% of the crop")


async def test_a_corrupt_atlas_file_is_one_log_line_and_the_bot_carries_on(
        fake, start_bot, atlas_dir, caplog):
    """2022's file is broken: one warning; a 2022 /place is delivered without artwork line."""
    (atlas_dir / "atlas-2022.json").write_text("[{")
    caplog.set_level(logging.INFO)
    async with start_bot(atlas_dir=atlas_dir):
        result = await wait_result(fake, fake.slash("place", {"canvas": "2022", "x": 600,
                                                              "y": 750}))
    assert "On r/Place" not in embed_fields(result)
    warnings = [r.getMessage() for r in caplog.records if "atlas is left out" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("the 2022 atlas is left out")
