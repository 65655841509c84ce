"""Every embed the bot sends is built here, held to Discord's limits.

Discord refuses a whole message (400, code 50035 "Invalid Form Body") when one of its embeds
is over a limit, and a user's text can make one so: a prompt's markdown escaping doubles its
underscores, and CLIP's reading of a prompt can be longer than the prompt. So each text is cut
here, after escaping, with an ellipsis that shows it was cut, and a field that no longer fits
in the embed's 6000 characters is left out (and logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import discord

log = logging.getLogger(__name__)

# Discord's embed limits (developer docs, "Embed Limits"), in characters
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
FIELDS_MAX = 25
TOTAL_MAX = 6000  # title, description, field names and values, footer (and author) together
ELLIPSIS = "…"


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    inline: bool = True


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and an ellipsis in `limit`.

    A cut never leaves a lone escaping backslash at the end: it would escape the ellipsis."""
    if len(text) <= limit:
        return text
    kept = text[: max(limit - len(ELLIPSIS), 0)]
    if (len(kept) - len(kept.rstrip("\\"))) % 2:
        kept = kept[:-1]
    return kept + ELLIPSIS if limit >= len(ELLIPSIS) else kept


class _Budget:
    """The characters left of the embed's TOTAL_MAX."""

    def __init__(self) -> None:
        self.left = TOTAL_MAX

    def take(self, text: str, limit: int) -> str:
        fitted = cut(text, min(limit, self.left))
        self.left -= len(fitted)
        return fitted


def build_embed(*, title: str, colour: discord.Colour, description: str | None = None,
                fields: Sequence[Field] = (), footer: str | None = None,
                image_url: str | None = None) -> discord.Embed:
    """An embed Discord takes. Texts are given as they are to be shown (escaped already);
    each is cut to its limit, and all of them to TOTAL_MAX: the title, footer and description
    first, then the fields in order. Fields past FIELDS_MAX, or with no room left for their
    name and value, are left out and logged."""
    budget = _Budget()
    embed = discord.Embed(title=budget.take(title, TITLE_MAX), colour=colour)
    if footer is not None:
        embed.set_footer(text=budget.take(footer, FOOTER_MAX))
    if description is not None:
        embed.description = budget.take(description, DESCRIPTION_MAX)
    for shown, field in enumerate(fields):
        if shown == FIELDS_MAX or budget.left < 2 * len(ELLIPSIS):
            left_out = [f.name for f in fields[shown:]]
            log.warning("embed %r shows %d fields; left out: %s", title, shown, left_out)
            break
        name = budget.take(field.name, min(FIELD_NAME_MAX, budget.left - len(ELLIPSIS)))
        embed.add_field(name=name, value=budget.take(field.value, FIELD_VALUE_MAX),
                        inline=field.inline)
    if image_url is not None:
        embed.set_image(url=image_url)
    return embed
