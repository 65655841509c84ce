"""Embeds are held to Discord's limits: each text cut with an ellipsis, the whole to 6000."""

import logging

import discord

from placebot.discord_side.embeds import (
    DESCRIPTION_MAX,
    ELLIPSIS,
    FIELD_NAME_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    FOOTER_MAX,
    TITLE_MAX,
    TOTAL_MAX,
    Field,
    build_embed,
    cut,
)
from tests.fakediscord.spec_check import check, embed_text_length

COLOUR = discord.Colour.blurple()


def _taken_by_discord(embed: discord.Embed) -> bool:
    return check("POST", "/channels/3000/messages", {"embeds": [embed.to_dict()]}) == []


def test_text_that_fits_is_kept_whole():
    """Nothing is cut at the limit itself."""
    assert cut("a" * 10, 10) == "a" * 10


def test_a_cut_ends_with_an_ellipsis_within_the_limit():
    """Over the limit: the start of the text and an ellipsis, exactly `limit` long."""
    assert cut("abcdefghij", 5) == "abcd" + ELLIPSIS


def test_a_cut_leaves_no_lone_escaping_backslash():
    """A cut through an escape (\\_) drops its backslash: it would escape the ellipsis."""
    escaped = discord.utils.escape_markdown("_" * 10)  # \_\_\_...
    assert cut(escaped, 6) == "\\_\\_" + ELLIPSIS


def test_every_text_is_cut_to_its_own_limit():
    """Title, description, field name and value, and footer each stay within their limit,
    cut with an ellipsis, and Discord takes the embed."""
    embeds = [build_embed(title="t" * 300, description="d" * 5000, colour=COLOUR),
              build_embed(title="t", colour=COLOUR, fields=[Field("n" * 300, "v" * 1100)],
                          footer="f" * 2100)]
    texts = [embeds[0].title, embeds[0].description, embeds[1].fields[0].name,
             embeds[1].fields[0].value, embeds[1].footer.text]
    assert [len(text) for text in texts] == [
        TITLE_MAX, DESCRIPTION_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX]
    assert all(text.endswith(ELLIPSIS) for text in texts)
    assert all(map(_taken_by_discord, embeds))


def test_the_whole_embed_is_held_to_6000(caplog):
    """Many long fields: the texts stop at 6000 in all, the fields that no longer fit are
    left out and logged, and Discord takes the embed."""
    fields = [Field(f"field {i}", "v" * 1000) for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="placebot.discord_side.embeds"):
        embed = build_embed(title="status", description="d" * 100, colour=COLOUR,
                            fields=fields)
    assert embed_text_length(embed.to_dict()) <= TOTAL_MAX
    assert embed.fields[-1].value.endswith(ELLIPSIS) and len(embed.fields) < 10
    assert "field 9" in caplog.text
    assert _taken_by_discord(embed)


def test_at_most_25_fields_are_shown(caplog):
    """A 26th field is left out (and logged), not sent for Discord to refuse."""
    with caplog.at_level(logging.WARNING, logger="placebot.discord_side.embeds"):
        embed = build_embed(title="t", colour=COLOUR,
                            fields=[Field(f"f{i}", "v") for i in range(26)])
    assert len(embed.fields) == FIELDS_MAX and "f25" in caplog.text
    assert _taken_by_discord(embed)


def test_the_image_and_inline_flags_are_kept():
    """What is not text passes through unchanged."""
    embed = build_embed(title="t", colour=COLOUR, fields=[Field("a", "b", inline=False)],
                        image_url="attachment://strip.png")
    assert embed.image.url == "attachment://strip.png" and embed.fields[0].inline is False
