"""A render parameter is defined once (pipeline/params.py) and reaches the bot and the CLI from
there: its owner setting, its option, its button, what is kept beside a result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import build_parser
from pipeline.config import engine_settings_from_env
from pipeline.params import PARAMS, RENDER_DEFAULTS, Param, RenderRequest, kept_values
from placebot.discord_side.source_store import kept_key
from placebot.discord_side.views import newcrop_id, reroll_id
from placebot.settings import RecordingEnvironment, settings_from_env, unread_place_variables

ROOT = Path(__file__).resolve().parents[2]
OWNED = [name for name, spec in PARAMS.items() if spec.setting]


def _another_value(spec: Param, default: Any) -> Any:
    """A valid value of the parameter that is not its default."""
    if spec.choices:
        return next(choice for choice in spec.choices if choice != default)
    if spec.kind is bool:
        return not default
    if spec.kind is str:
        return "a scratch text"
    return spec.high if spec.high != default else spec.low


def test_some_parameters_have_an_owner_setting():
    """The test below has something to check (PLACE_STRENGTH, PLACE_DEFAULT_MODEL, ...)."""
    assert {"model", "strength", "steps", "recursions", "guidance"} <= set(OWNED)


@pytest.mark.parametrize("name", OWNED)
def test_every_owner_setting_reaches_the_bot_and_the_cli(name):
    """The variable a Param names as its setting sets the default the bot's settings hold and
    the CLI's flag takes, and the bot does not take it for a misspelling."""
    spec = PARAMS[name]
    value = _another_value(spec, RENDER_DEFAULTS[name])
    env = {"DISCORD_TOKEN": "x", spec.setting: spec.encode_value(value)}
    recorded = RecordingEnvironment(env)
    assert settings_from_env(recorded).render_defaults[name] == value
    assert spec.setting not in unread_place_variables(recorded)
    if spec.scope != "picture":  # the CLI dreams on canvas crops: it has no picture flags
        assert getattr(build_parser(engine_settings_from_env(env)).parse_args([]), name) == value


def test_a_prompted_results_buttons_keep_their_format():
    """Re-roll and New crop of a prompted job name its prompt and guidance by the same key as
    before other parameters could be kept, so that buttons already posted still find them."""
    job = RenderRequest(model="1.5", canvas="2017", x=1, y=2, seed=3, strength=0.5, steps=20,
                        recursions=1, prompt=" a fox ", guidance=9.0).resolve()
    assert kept_values(job) == {"prompt": "a fox", "guidance": 9.0}
    assert kept_key({"prompt": "a fox", "guidance": 9.0}) == "63b567a0f0a857b6"
    assert reroll_id(job) == "place:reroll:m1.5:c2017:x1:y2:s0.5:t20:r1:q63b567a0f0a857b6"
    assert newcrop_id(job) == "place:newcrop:m1.5:s0.5:t20:r1:q63b567a0f0a857b6"


def test_a_result_without_a_prompt_keeps_nothing():
    """No text, nothing kept: guidance alone does not change the picture (it is off)."""
    job = RenderRequest(canvas="2017", x=1, y=2, seed=3, prompt="   ").resolve()
    assert kept_values(job) is None and ":q" not in reroll_id(job)


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": str, "kept": True, "tag": "n"}, "a kept parameter .* has no tag"),
    ({"kind": str, "free_text": True}, "free text .* is kept"),
])
def test_a_parameter_that_could_not_travel_is_refused_where_it_is_defined(spec, message):
    """Free text in a custom_id, or a kept value also in the payload, fails at import."""
    with pytest.raises(ValueError, match=message):
        Param(label="Scratch", help="a scratch parameter", **spec)


# One more parameter, as an engineer would add it: this field in pipeline/params.py, nothing else
NEGATIVE_PROMPT = '''    negative_prompt: str | None = param(
        None, label="Negative prompt", help="Words to steer the dream away from", kind=str,
        unset="none", max_length=MAX_PROMPT_CHARS, setting="PLACE_NEGATIVE_PROMPT",
        free_text=True, kept=True)
'''
INSERT_BEFORE = "    # with a prompt, classifier-free guidance at this scale"


def test_a_new_free_text_parameter_travels_everywhere_without_other_changes(tmp_path):
    """A copy of the product whose only change is a `negative_prompt` field in params.py: its
    owner setting reaches the bot and the CLI, /place and /dream offer it (not with prompts
    off, which refuse it), a job, its journal row and its embed carry it, and its result's
    Re-roll gets it back from the source store, not from the custom_id."""
    copy = tmp_path / "product"
    for package in ("pipeline", "placebot", "cogs"):
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    params = copy / "pipeline" / "params.py"
    source = params.read_text()
    assert source.count(INSERT_BEFORE) == 1, "the place for the new field moved"
    params.write_text(source.replace(INSERT_BEFORE, NEGATIVE_PROMPT + INSERT_BEFORE))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "scratch_param.py")], cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen.pop("params_file") == str(params)
    button = seen.pop("button")
    assert seen == {
        "bot_default": "blurry", "unread": [], "cli_default": "blurry", "cli_flag": "mist",
        "place_options": ["prompt", "negative_prompt"],
        "dream_options": ["prompt", "negative_prompt"], "options_without_prompts": [],
        "refused_without_prompts": True, "resolved": "**fog**", "journal_row": "**fog**",
        "embed": "\\*\\*fog\\*\\*",
    }
    assert "fog" not in button["custom_id"] and ":q" in button["custom_id"]
    assert (button["prompt"], button["negative_prompt"], button["kept_text"]) == (
        "a castle", "**fog**", True)
