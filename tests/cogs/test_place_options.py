"""/place's options are derived from the parameter definition and the live settings."""

from pipeline.params import PARAMS


def _place_options(fake):
    [place] = [c for c in fake.commands[str(fake.guild_id)] if c["name"] == "place"]
    return {option["name"]: option for option in place["options"]}


async def test_option_help_shows_the_configured_default(fake, start_bot):
    """With PLACE_STRENGTH=0.5 and PLACE_DEFAULT_MODEL=1.5, the help says so."""
    async with start_bot(strength=0.5, default_model="1.5", recursions=2):
        await fake.wait_for(lambda: fake.commands.get(str(fake.guild_id)))
    options = _place_options(fake)
    assert options["strength"]["description"].endswith("(default: 0.5)")
    assert options["model"]["description"].endswith("(default: SD 1.5)")
    assert options["recursions"]["description"].endswith("(default: 2)")
    assert options["seed"]["description"].endswith("(default: random)")


async def test_options_carry_the_definitions_bounds_and_choices(fake, start_bot):
    """Each slash parameter is an option with its bounds or its choices; steps is not one."""
    async with start_bot():
        await fake.wait_for(lambda: fake.commands.get(str(fake.guild_id)))
    options = _place_options(fake)
    assert set(options) == {name for name, spec in PARAMS.items()
                            if spec.slash and spec.scope != "picture"}
    assert "steps" not in options
    for name, option in options.items():
        spec = PARAMS[name]
        if spec.choices:
            assert [c["value"] for c in option["choices"]] == list(spec.choices)
        elif spec.kind is str:
            assert (option["min_length"], option["max_length"]) == (1, spec.max_length)
        else:
            assert (option["min_value"], option["max_value"]) == (spec.low, spec.high)
        assert not option["required"]
