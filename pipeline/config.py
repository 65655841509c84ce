"""The engine's settings, read once from the environment (and `.env`): the same code serves the
bot (placebot.settings builds on it) and the CLI, so both read the same PLACE_* variables.

Read here: the model ids (PLACE_MODEL_1_4, PLACE_MODEL_1_5), the owner's default for each render
parameter that has a setting (PLACE_DEFAULT_MODEL, PLACE_STRENGTH, ...: see pipeline.params),
PLACE_DEVICE, PLACE_VRAM_MODE, PLACE_COMPILE, PLACE_SAFETY_CHECKER and PLACE_ATLAS_DIR. Free of
torch, so a settings check or `--help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from pipeline.errors import ParamError
from pipeline.params import (
    DEFAULT_MODEL_IDS,
    MODEL_KEYS,
    PARAMS,
    RENDER_DEFAULTS,
    check_steps_strength,
)

DEVICES = ("auto", "cuda", "cpu")  # what the engine (pipeline.models) loads on
GPU_INDEX = re.compile(r"cuda:(\d+)")  # one GPU of several (a worker per GPU): cuda:0, cuda:1
DEVICE_ACCEPTS = f"one of {', '.join(DEVICES)}, or cuda:N for the GPU numbered N"
VRAM_MODES = ("full", "low", "minimal")  # what pipeline.models loads in, highest first
VRAM_MODE_CHOICES = ("auto", *VRAM_MODES)  # auto: chosen by the GPU's free memory
COMPILE_CHOICES = ("auto", "on", "off")  # the background torch.compile (pipeline.models)
# PLACE_SAFETY_CHECKER: auto, each job says (the bot checks jobs outside age-restricted
# channels); true, every job is checked; false, none is (the checker is never loaded).
SAFETY_CHOICES = ("auto", "true", "false")
SAFETY_ACCEPTS = "auto, true or false"
# Where `python -m pipeline.download` puts the r/Place Atlas and the bot reads it: the owner's
# cache, beside Hugging Face's (the data is the atlas project's, fetched, never shipped).
DEFAULT_ATLAS_DIR = "~/.cache/place-dreams/atlas"


def default_atlas_dir() -> Path:
    return Path(DEFAULT_ATLAS_DIR).expanduser()


class SettingsError(Exception):
    """A configuration value is missing or malformed."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def model_variable(key: str) -> str:
    """The variable naming the Hub id or local folder of model `key`: PLACE_MODEL_1_4."""
    return f"PLACE_MODEL_{key.replace('.', '_')}"


@dataclass(frozen=True)
class EngineSettings:
    model_ids: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_IDS))
    device: str = "auto"
    vram_mode: str = "auto"
    compile: str = "auto"
    safety_checker: str = "auto"  # the NSFW checker: SAFETY_CHOICES (its files are fetched too)
    atlas_dir: Path = field(default_factory=default_atlas_dir)  # the r/Place Atlas's files
    # the owner's default for every render parameter (None: chosen per job, e.g. the seed)
    render_defaults: Mapping[str, Any] = field(default_factory=lambda: dict(RENDER_DEFAULTS))


@overload
def text(env: Mapping[str, str], name: str, default: str) -> str: ...
@overload
def text(env: Mapping[str, str], name: str, default: None) -> str | None: ...


def text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """The variable's value, stripped; `default` when unset or blank."""
    value = env.get(name, "").strip()
    return value if value else default


def parsed(env: Mapping[str, str], name: str, default: Any, convert: Callable, accepts: str):
    """The variable converted; SettingsError naming it and what it accepts if that fails."""
    raw = text(env, name, None)
    if raw is None:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not valid; accepts {accepts}") from None


def choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, written in any case (`LOW` is `low`, `info` is `INFO`), as every
    setting with a fixed set of values takes it; returned as `choices` spells it."""
    value = text(env, name, default)
    spelt = {option.casefold(): option for option in choices}.get(value.casefold())
    if spelt is None:
        raise SettingsError(name, f"{value!r} is not valid; accepts one of {', '.join(choices)}")
    return spelt


def _render_default(env: Mapping[str, str], name: str) -> Any:
    """The owner's default for a render parameter, checked against the parameter's bounds."""
    spec = PARAMS[name]
    if spec.setting is None:
        return RENDER_DEFAULTS[name]
    value = parsed(env, spec.setting, RENDER_DEFAULTS[name], lambda raw: spec.parse(name, raw),
                   spec.accepts())
    try:
        spec.check(name, value)
    except ParamError:
        problem = "is not valid" if spec.choices else "is out of range"
        message = f"{value!r} {problem}; accepts {spec.accepts()}"
        raise SettingsError(spec.setting, message) from None
    return value


def boolean(raw: str) -> bool:
    """A yes/no setting's value; ValueError for anything else."""
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def safety_setting(raw: str) -> str:
    """PLACE_SAFETY_CHECKER's value: auto, or true/false in any of boolean()'s spellings."""
    if raw.lower() == "auto":
        return "auto"
    return "true" if boolean(raw) else "false"


def device_name(raw: str) -> str:
    """A device setting or flag: one of DEVICES or cuda:N, in any case (as every setting with
    fixed values); ValueError naming what is allowed."""
    value = raw.lower()
    if value in DEVICES or GPU_INDEX.fullmatch(value):
        return value
    raise ValueError(f"{raw!r} is not valid; accepts {DEVICE_ACCEPTS}")


def device_flag(raw: str) -> str:
    """device_name for an argparse `type`: its message is shown as it is."""
    try:
        return device_name(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pin_gpu(device: str, environ=os.environ) -> str:
    """For cuda:N, make GPU N the only one this process sees and return "cuda".

    The engine then runs on "the" GPU exactly as on a one-GPU machine (its memory caps, CUDA
    graphs and compile all use the current device). Call before CUDA is first used.
    """
    match = GPU_INDEX.fullmatch(device)
    if match is None:
        return device
    environ["CUDA_VISIBLE_DEVICES"] = match.group(1)
    return "cuda"


def _device(env: Mapping[str, str]) -> str:
    value = text(env, "PLACE_DEVICE", EngineSettings.device)
    try:
        return device_name(value)
    except ValueError as exc:
        raise SettingsError("PLACE_DEVICE", str(exc)) from None


def atlas_dir(env: Mapping[str, str]) -> Path:
    """PLACE_ATLAS_DIR: a folder (missing is fine: the atlas is not downloaded yet), never a
    file; `~` is the owner's home."""
    raw = text(env, "PLACE_ATLAS_DIR", DEFAULT_ATLAS_DIR)
    folder = Path(raw).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SettingsError("PLACE_ATLAS_DIR", f"{raw!r} is a file; accepts a folder (created "
                            "by python -m pipeline.download if missing)")
    return folder


def engine_settings_from_env(env: Mapping[str, str]) -> EngineSettings:
    """Build EngineSettings from an environment mapping, validating every value."""
    defaults = {name: _render_default(env, name) for name in PARAMS}
    try:
        check_steps_strength(defaults["steps"], defaults["strength"])
    except ParamError as exc:
        steps_setting = PARAMS["steps"].setting
        assert steps_setting is not None  # PLACE_STEPS (pipeline.params)
        raise SettingsError(steps_setting, str(exc)) from None
    return EngineSettings(
        model_ids={key: text(env, model_variable(key), DEFAULT_MODEL_IDS[key])
                   for key in MODEL_KEYS},
        device=_device(env),
        vram_mode=choice(env, "PLACE_VRAM_MODE", EngineSettings.vram_mode, VRAM_MODE_CHOICES),
        compile=choice(env, "PLACE_COMPILE", EngineSettings.compile, COMPILE_CHOICES),
        safety_checker=parsed(env, "PLACE_SAFETY_CHECKER", EngineSettings.safety_checker,
                              safety_setting, SAFETY_ACCEPTS),
        atlas_dir=atlas_dir(env),
        render_defaults=defaults,
    )


def load_environment(env_file: str | os.PathLike | None = ".env") -> Mapping[str, str]:
    """The environment, after reading `.env` into it (a variable already set wins)."""
    from dotenv import load_dotenv

    if env_file is not None and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    return os.environ


def load_engine_settings(env_file: str | os.PathLike | None = ".env") -> EngineSettings:
    """The engine settings the bot reads, from the environment and `.env`: what the CLI and
    the download command start from."""
    return engine_settings_from_env(load_environment(env_file))


def keep_kernel_caches(data_dir: Path) -> None:
    """Keep the compiled-kernel caches with the bot's data (on the Docker volume): the CUDA
    driver compiles cuDNN's attention kernels on a machine's first run (3-5 s,
    bench/README.md), and torch.compile's kernels let a restart reuse the background compile.
    Set before torch starts; a variable the owner set wins."""
    folder = data_dir.resolve()
    os.environ.setdefault("CUDA_CACHE_PATH", str(folder / "cuda-cache"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder / "inductor-cache"))


def quiet_libraries() -> None:
    """Keep transformers' and diffusers' import-time chatter (e.g. "CLIPImageProcessor requires
    torchvision") out of a user's console; a variable the user set wins. Here, free of torch,
    so that a process that never renders (the distributed mode's bot) need not load it."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
