"""The bot's configuration, read once from the environment (and `.env`) into a typed object.

Every PLACE_* name here is public: owners' `.env` files depend on them. The engine's variables
(models, device, VRAM mode, safety checker, the render defaults) are read by pipeline.config,
the same code the CLI uses, into EngineSettings, which Settings extends: the bot holds every
engine setting the CLI does, a render parameter's owner setting included, with nothing
copied by hand. The bot's own (Discord, queue, data folder) are read here. A missing or
malformed value raises SettingsError naming the variable and what it accepts; bot.py turns that
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pipeline.config import (
    EngineSettings,
    SettingsError,
    boolean,
    choice,
    engine_settings_from_env,
    load_environment,
    parsed,
    pin_gpu,
    text,
)

__all__ = ["Settings", "SettingsError", "load_settings", "settings_from_env",
           "warn_of_ignored_variables"]

log = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, kw_only=True)
class Settings(EngineSettings):
    """Every setting the bot reads, with its default: each default is written once, the
    engine's in EngineSettings (model ids, device, ..., render_defaults: the owner's default of
    every render parameter), the bot's own here (settings_from_env reads them from the
    class)."""

    discord_token: str = field(repr=False)
    discord_guild_id: int | None = None
    prompts: bool = True  # PLACE_PROMPTS=false: /place and /dream take no prompt
    image_max_mb: float = 8.0  # the largest attachment /dream fetches
    queue_max: int = 20
    user_max: int = 1
    max_batch: int = 4
    user_cooldown_s: float = 0.0
    job_timeout_s: float = 600.0
    output_dir: Path | None = None
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    redis_url: str | None = field(default=None, repr=False)  # set: the distributed mode
    shards: str | None = None  # None: one gateway connection; "auto" or a count: sharded
    # The PLACE_* variables set that no setting reads (misspelt?), found by load_settings:
    # warned of by warn_of_ignored_variables once logging is set up. Not a setting itself.
    ignored_variables: tuple[str, ...] = field(default=(), compare=False)
    # The shards this process runs (PLACE_SHARD_IDS), of the PLACE_SHARDS count: several bot
    # processes sharing one Redis each take their own. None: all of them.
    shard_ids: tuple[int, ...] | None = None

    def __repr__(self) -> str:  # never show the token, even by accident in a traceback
        return f"Settings(guild={self.discord_guild_id}, models={dict(self.model_ids)}, ...)"

    @property
    def default_model(self) -> str:
        """PLACE_DEFAULT_MODEL: the model of a job that names none (a server may choose its
        own, placebot.servers.server_rules)."""
        return str(self.render_defaults["model"])

    def with_render_defaults(self, **defaults: object) -> Settings:
        """These settings with some render parameters' defaults changed (as their PLACE_*
        variables would)."""
        return replace(self, render_defaults={**self.render_defaults, **defaults})


def _ranged(env, name, default, kind, low, high, accepts: str):
    value = parsed(env, name, default, kind, accepts)
    if not (low <= value <= high):
        raise SettingsError(name, f"{value!r} is out of range; accepts {accepts}")
    return value


def _redis_url(env) -> str | None:
    value = text(env, "PLACE_REDIS_URL", None)
    if value is not None and not value.startswith(("redis://", "rediss://")):
        raise SettingsError("PLACE_REDIS_URL", "accepts a redis:// or rediss:// URL "
                            "(redis://:password@host:6379/0), or nothing for the local mode")
    return value


def _shards(env) -> str | None:
    value = text(env, "PLACE_SHARDS", None)
    if value is not None and value.lower() == "auto":  # any case, as every choice setting
        return "auto"
    if value is None or (value.isdigit() and 1 <= int(value) <= 10000):
        return value
    raise SettingsError("PLACE_SHARDS", f"{value!r} is not valid; accepts auto, a shard count "
                        "1-10000, or nothing for one connection")


SHARD_IDS_ACCEPTS = ("shard numbers and ranges below PLACE_SHARDS, such as 0,1 or 0-3 "
                     "(each bot process sharing one Redis its own), or nothing for all")


def _shard_ids(env, shards: str | None) -> tuple[int, ...] | None:
    value = text(env, "PLACE_SHARD_IDS", None)
    if value is None:
        return None
    if shards is None or not shards.isdigit():
        raise SettingsError("PLACE_SHARD_IDS", "needs PLACE_SHARDS set to the number of shards "
                            "of all the bot processes together (not auto)")
    count, ids = int(shards), set[int]()
    for part in value.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (1, 0)
        if low > high or high >= count:
            raise SettingsError("PLACE_SHARD_IDS", f"{value!r} is not valid; accepts "
                                f"{SHARD_IDS_ACCEPTS} ({count})")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


def settings_from_env(env: Mapping[str, str], *, need_token: bool = True) -> Settings:
    """Build Settings from an environment mapping, validating every value. A render worker
    (need_token=False) never talks to Discord and needs no token."""
    token = text(env, "DISCORD_TOKEN", None if need_token else "")
    if token is None:
        raise SettingsError(
            "DISCORD_TOKEN",
            "is not set; put your bot token in .env (see config.example.env)",
        )
    guild_id = parsed(env, "DISCORD_GUILD_ID", None, int, "a server id (a whole number)")
    output_dir = text(env, "PLACE_OUTPUT_DIR", None)
    defaults = Settings  # its class attributes are the fields' defaults
    engine = engine_settings_from_env(env)
    return Settings(
        # every engine setting as the CLI reads it (a new one needs no line here)
        **{f.name: getattr(engine, f.name) for f in fields(EngineSettings)},
        discord_token=token,
        discord_guild_id=guild_id,
        queue_max=_ranged(env, "PLACE_QUEUE_MAX", defaults.queue_max, int, 1, 1000,
                          "a whole number 1-1000"),
        user_max=_ranged(env, "PLACE_USER_MAX", defaults.user_max, int, 1, 100,
                         "a whole number 1-100"),
        max_batch=_ranged(env, "PLACE_MAX_BATCH", defaults.max_batch, int, 1, 64,
                          "a whole number 1-64"),
        user_cooldown_s=_ranged(env, "PLACE_USER_COOLDOWN", defaults.user_cooldown_s, float,
                                0.0, 86400.0, "seconds, 0-86400"),
        job_timeout_s=_ranged(env, "PLACE_JOB_TIMEOUT", defaults.job_timeout_s, float,
                              1.0, 86400.0, "seconds, 1-86400"),
        output_dir=Path(output_dir) if output_dir else None,
        data_dir=Path(text(env, "PLACE_DATA_DIR", str(defaults.data_dir))),
        prompts=parsed(env, "PLACE_PROMPTS", defaults.prompts, boolean, "true or false"),
        image_max_mb=_ranged(env, "PLACE_IMAGE_MAX_MB", defaults.image_max_mb, float, 0.1, 100.0,
                             "megabytes, 0.1-100"),
        log_level=choice(env, "PLACE_LOG_LEVEL", defaults.log_level, LOG_LEVELS),
        redis_url=_redis_url(env),
        shards=_shards(env),
        shard_ids=_shard_ids(env, _shards(env)),
    )


def check_device(settings: Settings) -> None:
    """PLACE_DEVICE=cuda on a machine where torch sees no GPU: refuse at start, not at the first
    job. Only then is torch imported (it takes seconds), so other typos are still instant."""
    if not settings.device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
        raise SettingsError(
            "PLACE_DEVICE",
            f"is cuda but torch {torch.__version__} ({build}) sees no CUDA GPU; set auto or cpu, "
            "or install the torch build for your card (README, Hardware)",
        )


def load_settings(env_file: str | os.PathLike | None = ".env", *,
                  need_token: bool = True) -> Settings:
    """Read `.env` (without overriding variables already set) and then the environment. A
    PLACE_* variable that no setting reads (a misspelling, as the original script's `strengh`
    was) is kept in `ignored_variables`, for warn_of_ignored_variables: it would otherwise be
    ignored in silence."""
    env = RecordingEnvironment(load_environment(env_file))
    settings = settings_from_env(env, need_token=need_token)
    return replace(settings, ignored_variables=tuple(unread_place_variables(env)))


def warn_of_ignored_variables(settings: Settings) -> None:
    """One warning for each PLACE_* variable no setting reads. Called once logging is set up
    (placebot.logs), so that it has a timestamp and a level like every other line."""
    for name in settings.ignored_variables:
        log.warning("%s is set but is not a setting of this bot (misspelt?); it is ignored. "
                    "config.example.env lists the settings", name)


def unread_place_variables(env: RecordingEnvironment) -> list[str]:
    """The PLACE_* variables present in `env` that reading the settings never asked for."""
    return sorted(name for name in env if name.startswith("PLACE_") and name not in env.read)


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers which names were looked up: the settings' readers are
    then the one list of what the bot reads, with nothing to keep beside them."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def load_process_settings(*, need_token: bool = True) -> Settings:
    """The settings of a process that renders or serves (bot.py, the render worker): read,
    PLACE_DEVICE=cuda:N turned into this process's only GPU before CUDA starts, and the device
    checked. SettingsError for anything wrong."""
    settings = load_settings(need_token=need_token)
    settings = replace(settings, device=pin_gpu(settings.device))
    check_device(settings)  # imports torch only for PLACE_DEVICE=cuda
    return settings
