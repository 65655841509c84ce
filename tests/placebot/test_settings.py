import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from placebot.settings import (
    RecordingEnvironment,
    SettingsError,
    load_settings,
    settings_from_env,
    unread_place_variables,
    warn_of_ignored_variables,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "MTIz.fake.token-value"


def test_defaults_match_the_documented_interface():
    s = settings_from_env({"DISCORD_TOKEN": TOKEN})
    render = s.render_defaults
    assert (s.default_model, s.device, s.vram_mode, render["strength"], render["steps"],
            render["recursions"]) == ("1.4", "auto", "auto", 0.8, 50, 3)
    assert s.model_ids == {"1.4": "CompVis/stable-diffusion-v1-4",
                           "1.5": "stable-diffusion-v1-5/stable-diffusion-v1-5"}
    assert s.output_dir is None and s.discord_guild_id is None


def test_every_variable_is_read():
    s = settings_from_env({
        "DISCORD_TOKEN": TOKEN, "DISCORD_GUILD_ID": "42", "PLACE_MODEL_1_4": "/models/a",
        "PLACE_MODEL_1_5": "/models/b", "PLACE_DEFAULT_MODEL": "1.5", "PLACE_DEVICE": "cpu",
        "PLACE_VRAM_MODE": "low", "PLACE_STRENGTH": "0.5", "PLACE_STEPS": "20",
        "PLACE_RECURSIONS": "1", "PLACE_QUEUE_MAX": "5", "PLACE_USER_MAX": "2",
        "PLACE_MAX_BATCH": "8", "PLACE_OUTPUT_DIR": "out", "PLACE_JOB_TIMEOUT": "30",
        "PLACE_USER_COOLDOWN": "10", "PLACE_DATA_DIR": "/data", "PLACE_SAFETY_CHECKER": "true",
        "PLACE_COMPILE": "off",
    })
    assert s.compile == "off"
    render = s.render_defaults
    assert (s.discord_guild_id, s.model_ids["1.5"], s.default_model, s.device, s.vram_mode,
            render["strength"], render["steps"], render["recursions"], s.queue_max, s.user_max,
            s.max_batch,
            str(s.output_dir), s.job_timeout_s, s.user_cooldown_s, str(s.data_dir),
            s.safety_checker) == (42, "/models/b", "1.5", "cpu", "low", 0.5, 20, 1, 5, 2, 8,
                                  "out", 30.0, 10.0, "/data", "true")


@pytest.mark.parametrize(("raw", "value"), [(None, "auto"), ("auto", "auto"), ("AUTO", "auto"),
                                            ("yes", "true"), ("0", "false")])
def test_the_safety_checker_is_auto_by_default_and_true_false_keep_their_spellings(raw, value):
    """PLACE_SAFETY_CHECKER: auto unless set; every yes/no spelling still means true/false."""
    env = {"DISCORD_TOKEN": TOKEN} | ({"PLACE_SAFETY_CHECKER": raw} if raw else {})
    assert settings_from_env(env).safety_checker == value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DISCORD_TOKEN: is not set"),
        ({"PLACE_STRENGTH": "abc"}, r"PLACE_STRENGTH: 'abc' is not valid; accepts a number"),
        ({"PLACE_STRENGTH": "1.5"},
         r"PLACE_STRENGTH: 1.5 is out of range; accepts a number in \(0, 1\]"),
        ({"PLACE_DEFAULT_MODEL": "2.1"}, "PLACE_DEFAULT_MODEL: '2.1' is not valid; accepts one"),
        ({"PLACE_VRAM_MODE": "tiny"}, "PLACE_VRAM_MODE: 'tiny' is not valid"),
        ({"PLACE_RECURSIONS": "9"}, "PLACE_RECURSIONS: 9 is out of range; accepts a whole"),
        ({"DISCORD_GUILD_ID": "my server"}, "DISCORD_GUILD_ID: 'my server' is not valid"),
        ({"PLACE_STEPS": "1", "PLACE_STRENGTH": "0.5"}, "PLACE_STEPS: steps x strength"),
        ({"PLACE_COMPILE": "yes"}, "PLACE_COMPILE: 'yes' is not valid; accepts one of auto, on"),
        ({"PLACE_SAFETY_CHECKER": "maybe"},
         "PLACE_SAFETY_CHECKER: 'maybe' is not valid; accepts auto, true or false"),
    ],
)
def test_bad_values_name_the_variable_and_what_it_accepts(env, message):
    env = {"DISCORD_TOKEN": TOKEN, **env} if env else {}
    with pytest.raises(SettingsError, match=message):
        settings_from_env(env)


def test_place_compile_on_is_accepted():
    assert settings_from_env({"DISCORD_TOKEN": TOKEN, "PLACE_COMPILE": "on"}).compile == "on"


def test_repr_never_shows_the_token():
    assert TOKEN not in repr(settings_from_env({"DISCORD_TOKEN": TOKEN}))


def test_bot_without_token_prints_one_line_and_exits_2(tmp_path):
    """`python bot.py` with no token: one clear line on stderr, exit 2, no traceback."""
    done = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "configuration error: DISCORD_TOKEN: is not set; put your bot token in .env "
        "(see config.example.env)"]


def test_bot_with_malformed_value_exits_2_naming_it(tmp_path):
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={TOKEN}\nPLACE_STRENGTH=abc\n")
    done = subprocess.run([sys.executable, str(ROOT / "bot.py")], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "PLACE_STRENGTH: 'abc' is not valid" in done.stderr and TOKEN not in done.stderr


ANY_CASE = [
    ("PLACE_LOG_LEVEL", "info", "log_level", "INFO"),
    ("PLACE_VRAM_MODE", "LOW", "vram_mode", "low"),
    ("PLACE_COMPILE", "Off", "compile", "off"),
    ("PLACE_DEVICE", "CPU", "device", "cpu"),
    ("PLACE_DEVICE", "CUDA:1", "device", "cuda:1"),
    ("PLACE_SHARDS", "AUTO", "shards", "auto"),
    ("PLACE_PROMPTS", "FALSE", "prompts", False),
]


@pytest.mark.parametrize(("variable", "value", "field", "expected"), ANY_CASE,
                         ids=[f"{v}={raw}" for v, raw, _, _ in ANY_CASE])
def test_a_setting_with_fixed_values_takes_them_in_any_case(variable, value, field, expected):
    """`PLACE_VRAM_MODE=LOW` means low, as `PLACE_LOG_LEVEL=info` means INFO: every setting
    with a fixed set of values reads them in any case, and keeps its own spelling."""
    settings = settings_from_env({"DISCORD_TOKEN": TOKEN, variable: value})
    assert getattr(settings, field) == expected


def test_a_misspelt_setting_is_named_in_a_warning(monkeypatch, caplog):
    """PLACE_STRENGHT (the original script's kind of typo) is not silently ignored."""
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    monkeypatch.setenv("PLACE_STRENGHT", "0.05")
    settings = load_settings(env_file=None)
    assert settings.ignored_variables == ("PLACE_STRENGHT",)
    assert settings.render_defaults["strength"] == 0.8
    assert not caplog.records  # logging may not be set up yet: the warning waits
    warn_of_ignored_variables(settings)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("PLACE_STRENGHT is set but is not a setting") for m in warned)


async def test_bot_py_warns_of_a_misspelt_setting_in_a_log_line(fake, tmp_path):
    """`python bot.py` names the misspelt variable in a line with a timestamp and a level,
    as every other line of its log (it was printed bare, before logging was set up)."""
    import asyncio
    import os
    import re

    from tests.support.patience import PATIENCE_S

    fake.outage("GET", r"/users/@me$", 401)  # a refused token: the bot ends soon after
    script = ("import sys, bot, discord\n"
              f"discord.http.Route.BASE = '{fake.url}/api/v10'\n"
              "sys.exit(bot.main())")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DISCORD_TOKEN": "x",
             "PLACE_STRENGHT": "0.05", "PLACE_DATA_DIR": str(tmp_path / "data")})
    _out, err = await asyncio.wait_for(process.communicate(), PATIENCE_S)
    [line] = [line for line in err.decode().splitlines() if "PLACE_STRENGHT" in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING +placebot\.settings: "
                    r"PLACE_STRENGHT is set but is not a setting", line), line


def test_every_documented_setting_is_read():
    """No variable of config.example.env is taken for a misspelling."""
    values = {name: value or "" for name, value in
              dotenv_values(ROOT / "config.example.env").items()}
    env = RecordingEnvironment(values)
    settings_from_env(env, need_token=False)
    assert unread_place_variables(env) == []


def test_cuda_n_is_a_valid_device_setting():
    """PLACE_DEVICE=cuda:1 is accepted (one worker per GPU)."""
    settings = settings_from_env({"DISCORD_TOKEN": "t", "PLACE_DEVICE": "cuda:1"})
    assert settings.device == "cuda:1"


def test_a_render_worker_needs_no_discord_token():
    """The worker reads the bot's settings without DISCORD_TOKEN; PLACE_REDIS_URL is kept."""
    settings = settings_from_env({"PLACE_REDIS_URL": "redis://:pw@host:6379/0"},
                                 need_token=False)
    assert settings.redis_url == "redis://:pw@host:6379/0"
    assert "pw" not in repr(settings)
