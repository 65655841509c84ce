"""/place: dream on a patch of r/Place.

Its options are the render parameters that pipeline.params marks `slash`: their types, bounds,
choices and help come from that one definition, and each help ends with the default this bot
really uses (the owner's PLACE_* setting). So the command is built with the cog, from the live
Settings, rather than at import time.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from discord import AppCommandOptionType, Interaction, app_commands
from discord.ext import commands

from pipeline.params import PARAMS, Param, RenderRequest
from placebot.service import PlaceService
from placebot.settings import Settings

if TYPE_CHECKING:
    from placebot.client import PlaceBot

DESCRIPTION = "Dream on a random 32x32 patch of r/Place with Stable Diffusion."
# /place's options: those of every job and of a canvas crop (a picture's belong to /dream)
SLASH_OPTIONS = tuple(name for name, spec in PARAMS.items()
                      if spec.slash and spec.scope != "picture")

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
                        options: tuple[str, ...] = SLASH_OPTIONS) -> app_commands.Command:
    """The /place command, its options derived from the parameters and `defaults`."""
    return build_render_command("place", DESCRIPTION, defaults, submit, options)


def build_render_command(name: str, description: str, defaults: Mapping[str, Any],
                         submit: Callable[..., Awaitable[Any]], options: tuple[str, ...], *,
                         leading: tuple[tuple[str, Any, str], ...] = ()
                         ) -> app_commands.Command:
    """A command whose options are render parameters (derived from their definition and
    `defaults`), after `leading` required options (name, annotation, help) that are passed to
    `submit` by name: submit(interaction, request, defaulted=..., **leading_values), where
    `defaulted` names the parameters the user left out (a server's own default may apply)."""
    leading_names = tuple(option for option, _, _ in leading)

    async def command(interaction: Interaction, **values: Any) -> None:
        given = {key: value for key, value in values.items()
                 if value is not None and key not in leading_names}
        # PLACE_PROMPTS=false leaves the prompt option out, but a client still holding the
        # command as declared before can send one: it is passed on, not dropped in silence,
        # and the service refuses the job (placebot.service.PromptsOff).
        if "prompt" not in values and (prompt := getattr(interaction.namespace, "prompt", None)):
            given["prompt"] = prompt
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
    app_commands.describe(**{option: text for option, _, text in leading},
                          **{option: option_help(PARAMS[option], defaults[option])
                             for option in options})(command)
    app_commands.choices(**{
        option: [app_commands.Choice(name=PARAMS[option].choice_name.format(c), value=c)
                 for c in PARAMS[option].choices]
        for option in options if PARAMS[option].choices
    })(command)
    return app_commands.Command(name=name, description=description, callback=command)


class PlaceCog(commands.Cog, name="Place"):
    def __init__(self, service: PlaceService, settings: Settings,
                 tree: app_commands.CommandTree):
        self._tree = tree
        # PLACE_PROMPTS=false: the prompt option is not offered at all
        options = tuple(name for name in SLASH_OPTIONS if settings.prompts or name != "prompt")
        self.command = build_place_command(settings.render_defaults, service.submit, options)

    async def cog_load(self) -> None:
        self._tree.add_command(self.command)

    async def cog_unload(self) -> None:
        self._tree.remove_command(self.command.name)


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(PlaceCog(bot.service, bot.settings, bot.tree))
