"""The bot's configuration, read once from the environment (and `.env`) into a typed object.

Every PLACE_* name here is public: owners' `.env` files depend on them. A missing or malformed
value raises SettingsError naming the variable and what it accepts; bot.py turns that into one
line on stderr and exit code 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.params import (
    COMPILE_CHOICES,
    DEFAULT_MODEL_IDS,
    MAX_RECURSIONS,
    MAX_STEPS,
    MODEL_KEYS,
    check_steps_strength,
)

DEVICES = ("auto", "cuda", "cpu")
VRAM_MODES = ("auto", "full", "low", "minimal")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(Exception):
    """A configuration value is missing or malformed."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    discord_token: str = field(repr=False)
    discord_guild_id: int | None = None
    model_ids: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_IDS))
    default_model: str = "1.4"
    device: str = "auto"
    vram_mode: str = "auto"
    strength: float = 0.8
    steps: int = 50
    recursions: int = 3
    queue_max: int = 20
    user_max: int = 1
    max_batch: int = 4
    user_cooldown_s: float = 0.0
    job_timeout_s: float = 600.0
    output_dir: Path | None = None
    data_dir: Path = Path("data")
    safety_checker: bool = False
    compile: str = "auto"
    log_level: str = "INFO"

    def __repr__(self) -> str:  # never show the token, even by accident in a traceback
        return f"Settings(guild={self.discord_guild_id}, models={dict(self.model_ids)}, ...)"


def _text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name, "").strip()
    return value if value else default


def _parse(env, name, default, convert: Callable, accepts: str):
    raw = _text(env, name, None)
    if raw is None:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not valid; accepts {accepts}") from None


def _ranged(env, name, default, kind, low, high, accepts: str):
    value = _parse(env, name, default, kind, accepts)
    if not (low <= value <= high):
        raise SettingsError(name, f"{value!r} is out of range; accepts {accepts}")
    return value


def _choice(env, name, default: str, choices: tuple[str, ...], fold=None) -> str:
    value = _text(env, name, default)
    if fold is not None:
        value = fold(value)
    if value not in choices:
        raise SettingsError(name, f"{value!r} is not valid; accepts one of {', '.join(choices)}")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping, validating every value."""
    token = _text(env, "DISCORD_TOKEN", None)
    if token is None:
        raise SettingsError(
            "DISCORD_TOKEN",
            "is not set; put your bot token in .env (see config.example.env)",
        )
    guild_id = _parse(env, "DISCORD_GUILD_ID", None, int, "a server id (a whole number)")
    model_ids = {
        key: _text(env, f"PLACE_MODEL_{key.replace('.', '_')}", DEFAULT_MODEL_IDS[key])
        for key in MODEL_KEYS
    }
    strength = _parse(env, "PLACE_STRENGTH", 0.8, float, "a number in (0, 1]")
    if not (0.0 < strength <= 1.0):
        raise SettingsError("PLACE_STRENGTH", f"{strength!r} is out of range; accepts (0, 1]")
    steps = _ranged(env, "PLACE_STEPS", 50, int, 1, MAX_STEPS, f"a whole number 1-{MAX_STEPS}")
    try:
        check_steps_strength(steps, strength)
    except ValueError as exc:
        raise SettingsError("PLACE_STEPS", str(exc)) from None
    output_dir = _text(env, "PLACE_OUTPUT_DIR", None)
    return Settings(
        discord_token=token,
        discord_guild_id=guild_id,
        model_ids=model_ids,
        default_model=_choice(env, "PLACE_DEFAULT_MODEL", "1.4", MODEL_KEYS),
        device=_choice(env, "PLACE_DEVICE", "auto", DEVICES),
        vram_mode=_choice(env, "PLACE_VRAM_MODE", "auto", VRAM_MODES),
        strength=strength,
        steps=steps,
        recursions=_ranged(
            env, "PLACE_RECURSIONS", 3, int, 0, MAX_RECURSIONS,
            f"a whole number 0-{MAX_RECURSIONS}",
        ),
        queue_max=_ranged(env, "PLACE_QUEUE_MAX", 20, int, 1, 1000, "a whole number 1-1000"),
        user_max=_ranged(env, "PLACE_USER_MAX", 1, int, 1, 100, "a whole number 1-100"),
        max_batch=_ranged(env, "PLACE_MAX_BATCH", 4, int, 1, 64, "a whole number 1-64"),
        user_cooldown_s=_ranged(
            env, "PLACE_USER_COOLDOWN", 0.0, float, 0.0, 86400.0, "seconds, 0-86400"
        ),
        job_timeout_s=_ranged(
            env, "PLACE_JOB_TIMEOUT", 600.0, float, 1.0, 86400.0, "seconds, 1-86400"
        ),
        output_dir=Path(output_dir) if output_dir else None,
        data_dir=Path(_text(env, "PLACE_DATA_DIR", "data")),
        safety_checker=_parse(env, "PLACE_SAFETY_CHECKER", False, _boolean, "true or false"),
        compile=_choice(env, "PLACE_COMPILE", "auto", COMPILE_CHOICES),
        log_level=_choice(env, "PLACE_LOG_LEVEL", "INFO", LOG_LEVELS, fold=str.upper),
    )


def check_device(settings: Settings) -> None:
    """PLACE_DEVICE=cuda on a machine where torch sees no GPU: refuse at start, not at the first
    job. Only then is torch imported (it takes seconds), so other typos are still instant."""
    if settings.device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
        raise SettingsError(
            "PLACE_DEVICE",
            f"is cuda but torch {torch.__version__} ({build}) sees no CUDA GPU; set auto or cpu, "
            "or install the torch build for your card (README, Hardware)",
        )


def load_settings(env_file: str | os.PathLike | None = ".env") -> Settings:
    """Read `.env` (without overriding variables already set) and then the environment."""
    from dotenv import load_dotenv

    if env_file is not None and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    return settings_from_env(os.environ)
