"""What a server's settings (placebot/servers/server_settings.py) mean for a job, within the
owner's.

The bot owner's settings bound every server: a server may be stricter, never looser. Its
cooldown is at least PLACE_USER_COOLDOWN, its per-person limit at most PLACE_USER_MAX, its
prompts off where PLACE_PROMPTS is false, and the NSFW checker runs at least where the
owner's PLACE_SAFETY_CHECKER runs it. A change past these bounds is refused (check_change);
a value stored before the owner tightened a bound yields to it (rules_for), and
`/place_admin show` says so (describe).

The NSFW checker (PLACE_SAFETY_CHECKER): `auto` (the default) checks every job outside
Discord's age-restricted channels, where Discord allows NSFW content (a thread follows its
parent channel); a server's admins may have it check in those channels too. `true` checks
every job, `false` none.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.params import MODEL_KEYS, PARAMS
from placebot import texts
from placebot.messages import UserFacingError
from placebot.servers.server_settings import MAX_CHANNELS, SAFETY_EVERYWHERE, ServerSettings
from placebot.settings import Settings

MAX_COOLDOWN_S = 86400.0  # as PLACE_USER_COOLDOWN's bound
MAX_USER_JOBS = 100  # as PLACE_USER_MAX's bound


class ChangeRefused(UserFacingError):
    """A server setting past the owner's bounds; the message says what is allowed."""


class WrongChannel(UserFacingError):
    def __init__(self, channels: tuple[int, ...]):
        listed = ", ".join(f"<#{channel}>" for channel in channels)
        super().__init__(texts.WRONG_CHANNEL.format(listed=listed))


@dataclass(frozen=True)
class Rules:
    """The settings a job in one place follows: the owner's, tightened by its server's."""

    channels: tuple[int, ...]  # (): everywhere
    cooldown_s: float
    user_max: int
    prompts: bool
    default_model: str
    safety_everywhere: bool  # the server has the checker run in age-restricted channels too

    def allows_channel(self, channel_id: int | None, parent_id: int | None = None) -> bool:
        """Whether a job may be started here (a thread counts as its parent channel)."""
        return (not self.channels or channel_id in self.channels
                or (parent_id is not None and parent_id in self.channels))

    def check_channel(self, channel_id: int | None, parent_id: int | None = None) -> None:
        if not self.allows_channel(channel_id, parent_id):
            raise WrongChannel(self.channels)


def rules_for(owner: Settings, server: ServerSettings | None = None) -> Rules:
    """The rules for a job: the owner's settings, tightened by `server`'s (None: a DM)."""
    server = server or ServerSettings()
    return Rules(
        channels=server.channels,
        cooldown_s=max(owner.user_cooldown_s, server.cooldown_s or 0.0),
        user_max=min(owner.user_max, server.user_max or owner.user_max),
        prompts=owner.prompts and server.prompts is not False,
        default_model=server.default_model or owner.default_model,
        safety_everywhere=server.safety == SAFETY_EVERYWHERE,
    )


def checks_safety(owner: Settings, rules: Rules, age_restricted: bool) -> bool:
    """Whether a job goes through the NSFW checker: PLACE_SAFETY_CHECKER=true always, false
    never; auto outside age-restricted channels, and in them too where the server says."""
    if owner.safety_checker != "auto":
        return owner.safety_checker == "true"
    return rules.safety_everywhere or not age_restricted


def check_change(owner: Settings, name: str, value) -> None:
    """ChangeRefused, saying what is allowed, for a server setting past the owner's bounds.
    None (back to the owner's) is always allowed."""
    if value is None:
        return
    if name == "channels" and len(value) > MAX_CHANNELS:
        raise ChangeRefused(texts.TOO_MANY_CHANNELS.format(most=MAX_CHANNELS))
    if name == "cooldown_s" and not owner.user_cooldown_s <= value <= MAX_COOLDOWN_S:
        raise ChangeRefused(texts.COOLDOWN_OUT_OF_BOUNDS.format(
            least=_seconds(owner.user_cooldown_s), most=_seconds(MAX_COOLDOWN_S)))
    if name == "user_max" and not 1 <= value <= owner.user_max:
        raise ChangeRefused(texts.USER_LIMIT_OUT_OF_BOUNDS.format(most=owner.user_max))
    if name == "prompts" and value and not owner.prompts:
        raise ChangeRefused(texts.PROMPTS_OFF_EVERYWHERE)
    if name == "default_model" and value not in MODEL_KEYS:
        raise ChangeRefused(texts.UNKNOWN_MODEL.format(model=value,
                                                       models=", ".join(MODEL_KEYS)))
    if name == "safety" and value == SAFETY_EVERYWHERE and owner.safety_checker == "false":
        raise ChangeRefused(texts.SAFETY_CHECKER_OFF)


def describe(owner: Settings, server: ServerSettings) -> dict[str, tuple[str, str]]:
    """Each setting (by its ServerSettings name) as /place_admin shows it: its label, and the
    value in force with where it comes from."""
    rules = rules_for(owner, server)
    model = PARAMS["model"].choice_name
    return {
        "channels": ("Channels", (", ".join(f"<#{c}>" for c in rules.channels)
                                  + " (this server)") if rules.channels
                     else "every channel (no list set)"),
        "cooldown_s": ("Cooldown", _bounded(_seconds(rules.cooldown_s), server.cooldown_s,
                                            owner.user_cooldown_s, _seconds)),
        "user_max": ("Jobs per person", _bounded(str(rules.user_max), server.user_max,
                                                 owner.user_max, str)),
        "prompts": ("Prompts", _prompts(owner, server)),
        "default_model": ("Default model", model.format(rules.default_model)
                          + (" (this server)" if server.default_model else " (the owner's)")),
        "safety": ("Safety checker", _safety(owner, rules)),
    }


def _bounded(shown: str, chosen, owners, text) -> str:
    if chosen is None:
        return f"{shown} (the owner's)"
    if shown == text(chosen):
        return f"{shown} (this server; the owner's is {text(owners)})"
    return (f"{shown} (the owner's: this server's {text(chosen)} is looser than the owner now "
            "allows)")


def _prompts(owner: Settings, server: ServerSettings) -> str:
    if not owner.prompts:
        return "off (the owner's)"
    if server.prompts is False:
        return "off (this server)"
    return "on (the owner's)"


def _safety(owner: Settings, rules: Rules) -> str:
    if owner.safety_checker == "true":
        return "every channel (the owner's)"
    if owner.safety_checker == "false":
        return "off in every channel (the owner's)"
    if rules.safety_everywhere:
        return "every channel, age-restricted ones too (this server)"
    return "every channel but age-restricted ones (the owner's)"


def _seconds(value: float) -> str:
    return f"{value:g} s"
