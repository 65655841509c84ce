import re
from pathlib import Path

from dotenv import dotenv_values

from pipeline.config import model_variable
from pipeline.params import MODEL_KEYS, PARAMS
from placebot.settings import Settings, settings_from_env

ROOT = Path(__file__).resolve().parents[1]


def test_example_env_lists_every_setting_and_its_defaults_load():
    """config.example.env names every variable the bot reads, and its values are the defaults."""
    values = dotenv_values(ROOT / "config.example.env")
    read_by_code = {name for module in ("placebot/settings.py", "pipeline/config.py")
                    for name in re.findall(r'"((?:DISCORD|PLACE)_[A-Z0-9_]+)"',
                                           (ROOT / module).read_text())}
    read_by_code |= {model_variable(key) for key in MODEL_KEYS}
    read_by_code |= {spec.setting for spec in PARAMS.values() if spec.setting}
    assert read_by_code <= set(values)
    settings = settings_from_env({**values, "DISCORD_TOKEN": "x"})
    defaults = settings_from_env({"DISCORD_TOKEN": "x"})
    assert settings == defaults and isinstance(settings, Settings)


def test_every_setting_is_documented_in_the_settings_page():
    """docs/settings.md, which the README links to, names every setting of config.example.env."""
    readme = (ROOT / "docs" / "settings.md").read_text()
    values = dotenv_values(ROOT / "config.example.env")
    assert [name for name in values if f"`{name}`" not in readme] == []
