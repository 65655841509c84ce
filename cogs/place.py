"""/place: dream on a patch of r/Place.

Its options are the render parameters that pipeline.params marks `slash`: their types, bounds,
choices and help come from that one definition, and each help ends with the default this bot
really uses (the owner's PLACE_* setting). So the command is built with the cog, from the live
Settings, rather than at import time.

`artwork` names an artwork of the r/Place Atlas, with Discord's autocomplete over its names
(the chosen canvas's, or every year's, labelled by year). A choice's value is the artwork's
key; typed text is taken as a name. It is turned into the key here, before the job is
accepted, so that an unknown name gets one line, seen only by its user, with the closest names.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from discord import AppCommandOptionType, Interaction, app_commands
from discord.ext import commands

from pipeline.atlas import Artwork, Atlas
from pipeline.canvases import CANVAS_KEYS
from pipeline.errors import ParamError
from pipeline.params import PARAMS, Param, RenderRequest
from placebot.discord_side.service import PlaceService
from placebot.messages import user_message
from placebot.settings import Settings

if TYPE_CHECKING:
    from placebot.discord_side.client import PlaceBot

DESCRIPTION = "Dream on a random 32x32 patch of r/Place with Stable Diffusion."
# /place's options: those of every job and of a canvas crop (a picture's belong to /dream)
SLASH_OPTIONS = tuple(name for name, spec in PARAMS.items()
                      if spec.slash and spec.scope != "picture")


def offered(options: tuple[str, ...], prompts: bool) -> tuple[str, ...]:
    """The options a command offers: PLACE_PROMPTS=false leaves out every free-text one."""
    return tuple(name for name in options if prompts or not PARAMS[name].free_text)

# submit(interaction, request, defaulted=...): `defaulted` names the options left out
Submit = Callable[..., Awaitable[Any]]


def option_type(spec: Param) -> Any:
    """The option's annotation: a string (its choices are added apart) or a bounded number."""
    if spec.kind is str and spec.max_length:
        return app_commands.Range[str, 1, spec.max_length] | None
    if spec.choices or spec.kind is str:
        return str | None
    return DeclaredNumber(spec)


class DeclaredNumber(app_commands.Transformer):
    """Declares a number option's type and bounds to Discord, as app_commands.Range would,
    and passes the value on as it came. RenderRequest.validate() checks it, type included:
    a client holding an older declaration can send another type, and Range's own check then
    raises a TypeError instead of the clear refusal any other bad value gets."""

    def __init__(self, spec: Param):
        self._spec = spec

    @property
    def type(self) -> AppCommandOptionType:
        if self._spec.kind is int:
            return AppCommandOptionType.integer
        return AppCommandOptionType.number

    @property
    def min_value(self) -> int | float | None:
        return self._spec.low

    @property
    def max_value(self) -> int | float | None:
        return self._spec.high

    async def transform(self, interaction: Interaction, value: Any) -> Any:
        return value


def option_help(spec: Param, default: Any) -> str:
    """The parameter's help and the default a user gets by leaving the option out."""
    shown = spec.unset if default is None else spec.choice_name.format(default)
    return f"{spec.help} (default: {shown})"


def build_place_command(defaults: Mapping[str, Any], submit: Submit,
                        options: tuple[str, ...] = SLASH_OPTIONS, *,
                        descriptions: Mapping[str, str] | None = None) -> app_commands.Command:
    """The /place command, its options derived from the parameters and `defaults`."""
    return build_render_command("place", DESCRIPTION, defaults, submit, options,
                                descriptions=descriptions)


def build_render_command(name: str, description: str, defaults: Mapping[str, Any],
                         submit: Callable[..., Awaitable[Any]], options: tuple[str, ...], *,
                         leading: tuple[tuple[str, Any, str], ...] = (),
                         descriptions: Mapping[str, str] | None = None
                         ) -> app_commands.Command:
    """A command whose options are render parameters (derived from their definition and
    `defaults`), after `leading` required options (name, annotation, help) that are passed to
    `submit` by name: submit(interaction, request, defaulted=..., **leading_values), where
    `defaulted` names the parameters the user left out (a server's own default may apply).
    `descriptions` replace the derived help of some options."""
    leading_names = tuple(option for option, _, _ in leading)

    async def command(interaction: Interaction, **values: Any) -> None:
        given = {key: value for key, value in values.items()
                 if value is not None and key not in leading_names}
        # PLACE_PROMPTS=false leaves the free-text options out, but a client still holding
        # the command as declared before can send one: it is passed on, not dropped in
        # silence, and the service refuses the job (placebot.discord_side.service.PromptsOff).
        for name, spec in PARAMS.items():
            if (spec.free_text and spec.slash and name not in values
                    and (text := getattr(interaction.namespace, name, None))):
                given[name] = text
        extra = {key: values[key] for key in leading_names}
        defaulted = frozenset(name for name in options if name not in given)
        await submit(interaction, RenderRequest(**{**defaults, **given}), defaulted=defaulted,
                     **extra)

    # discord.py reads the options from the callback's signature: give it one per parameter
    keyword = inspect.Parameter.KEYWORD_ONLY
    command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Interaction),
        *(inspect.Parameter(option, keyword, annotation=annotation)
          for option, annotation, _ in leading),
        *(inspect.Parameter(option, keyword, default=None,
                            annotation=option_type(PARAMS[option]))
          for option in options),
    ])
    helps = {option: option_help(PARAMS[option], defaults[option]) for option in options}
    helps.update({option: text for option, text in (descriptions or {}).items()
                  if option in helps})
    app_commands.describe(**{option: text for option, _, text in leading}, **helps)(command)
    app_commands.choices(**{
        option: [app_commands.Choice(name=PARAMS[option].choice_name.format(c), value=c)
                 for c in PARAMS[option].choices]
        for option in options if PARAMS[option].choices
    })(command)
    return app_commands.Command(name=name, description=description, callback=command)


NOT_DOWNLOADED = "the owner of this bot has not downloaded the r/Place Atlas"
NOT_DOWNLOADED_HELP = f"Unavailable: {NOT_DOWNLOADED}"  # within a description's 100 characters
MAX_CHOICE_NAME = 100  # Discord's limit on an autocomplete choice's name


def artwork_choices(atlas: Atlas, text: str, canvas: str | None
                    ) -> list[app_commands.Choice[str]]:
    """The autocomplete list for `text`: the best 25 names, of the canvas or of every year
    (then labelled by year). Blocking (the first call reads the atlas): run it in a thread."""
    if canvas is not None and canvas not in CANVAS_KEYS:
        canvas = None  # a client's stale or odd value: search every year rather than fail
    if not atlas.downloaded() or (canvas is not None and atlas.year(canvas) is None):
        which = NOT_DOWNLOADED if canvas is None else f"{NOT_DOWNLOADED} for {canvas}"
        return [app_commands.Choice(name=which[0].upper() + which[1:], value="none")]
    found = atlas.search(text, canvas)
    labels = [choice_label(artwork, canvas is None) for artwork in found]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [app_commands.Choice(name=_where(label, artwork) if label in repeated else label,
                                value=artwork.key or "")
            for label, artwork in zip(labels, found, strict=True)]


def choice_label(artwork: Artwork, with_year: bool) -> str:
    """The artwork's name as listed, cut to Discord's limit, its year added when the list
    holds every year's."""
    suffix = f" ({artwork.year})" if with_year else ""
    return artwork.name[:MAX_CHOICE_NAME - len(suffix)] + suffix


def _where(label: str, artwork: Artwork) -> str:
    """A label several artworks share, told apart by where they are on the canvas."""
    place = f" at {artwork.box[0]},{artwork.box[1]}"
    return label[:MAX_CHOICE_NAME - len(place)] + place


class PlaceCog(commands.Cog, name="Place"):
    def __init__(self, service: PlaceService, settings: Settings,
                 tree: app_commands.CommandTree, atlas: Atlas):
        self._tree = tree
        self._service = service
        self._atlas = atlas
        options = offered(SLASH_OPTIONS, settings.prompts)
        descriptions = {} if atlas.downloaded() else {"artwork": NOT_DOWNLOADED_HELP}
        self.command = build_place_command(settings.render_defaults, self._place, options,
                                           descriptions=descriptions)

        async def autocomplete(interaction: Interaction,
                               current: str) -> list[app_commands.Choice[str]]:
            canvas = getattr(interaction.namespace, "canvas", None)
            return await asyncio.to_thread(artwork_choices, atlas, current, canvas)

        self.command.autocomplete("artwork")(autocomplete)

    async def _place(self, interaction: Interaction, request: RenderRequest, *,
                     defaulted: frozenset[str] = frozenset()) -> None:
        """Submit the job; a named artwork is first turned into its key and its canvas.
        `defaulted`: the options the user left out (a server's own default may apply)."""
        if request.artwork is not None:
            try:
                request = await self._with_artwork(request)
            except ParamError as exc:
                await interaction.response.send_message(user_message(exc), ephemeral=True)
                return
        await self._service.submit(interaction, request, defaulted=defaulted)

    async def _with_artwork(self, request: RenderRequest) -> RenderRequest:
        """The request on the artwork its text names (a key or a name), on its year's canvas.
        ParamError: an unknown name (with the closest ones), no atlas, or x and y given."""
        assert request.artwork is not None  # the caller checked
        if request.x is not None or request.y is not None:
            raise ParamError("an artwork picks the crop inside itself: leave x and y out, or "
                             "leave artwork out")
        artwork = await asyncio.to_thread(self._atlas.find, request.artwork, request.canvas)
        return replace(request, artwork=artwork.key, canvas=artwork.year)

    async def cog_load(self) -> None:
        self._tree.add_command(self.command)

    async def cog_unload(self) -> None:
        self._tree.remove_command(self.command.name)


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(PlaceCog(bot.service, bot.settings, bot.tree, bot.atlas))
