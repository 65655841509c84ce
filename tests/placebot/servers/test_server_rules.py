"""A server's settings within the owner's: stricter allowed, looser refused or outweighed."""

from dataclasses import replace

import pytest

from placebot.servers.server_rules import (
    ChangeRefused,
    WrongChannel,
    check_change,
    checks_safety,
    describe,
    rules_for,
)
from placebot.servers.server_settings import SAFETY_EVERYWHERE, ServerSettings
from placebot.settings import Settings

OWNER = Settings(discord_token="x", user_max=3, user_cooldown_s=10.0, prompts=True)


def test_a_server_that_chose_nothing_and_a_dm_follow_the_owner():
    """No server settings, or no server: the owner's settings, unchanged."""
    for rules in (rules_for(OWNER, ServerSettings()), rules_for(OWNER)):
        assert (rules.channels, rules.cooldown_s, rules.user_max, rules.prompts,
                rules.default_model, rules.safety_everywhere) == ((), 10.0, 3, True, "1.4",
                                                                  False)


def test_stricter_settings_apply_and_looser_stored_ones_yield_to_the_owner():
    """A value stored before the owner tightened a bound yields to the bound, and show says
    so; a stricter one is in force and shown as this server's."""
    stricter = rules_for(OWNER, ServerSettings(cooldown_s=60.0, user_max=1, prompts=False,
                                               default_model="1.5"))
    assert (stricter.cooldown_s, stricter.user_max, stricter.prompts,
            stricter.default_model) == (60.0, 1, False, "1.5")
    looser = ServerSettings(cooldown_s=5.0, user_max=9)
    assert (rules_for(OWNER, looser).cooldown_s, rules_for(OWNER, looser).user_max) == (10.0, 3)
    shown = describe(OWNER, looser)
    assert shown["cooldown_s"][1] == ("10 s (the owner's: this server's 5 s is looser than "
                                      "the owner now allows)")
    assert describe(OWNER, ServerSettings(user_max=1))["user_max"][1] == (
        "1 (this server; the owner's is 3)")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("cooldown_s", 5.0, "the cooldown can be 10 s to 86400 s here"),
    ("user_max", 4, "the limit can be 1 to 3 job"),
    ("user_max", 0, "the limit can be 1 to 3 job"),
    ("channels", tuple(range(1, 27)), "at most 25 channels"),
    ("default_model", "2.1", "the model '2.1' is unknown"),
])
def test_a_change_past_the_owners_bounds_is_refused_saying_what_is_allowed(name, value,
                                                                           message):
    """Each bound refuses with a line naming what is allowed."""
    with pytest.raises(ChangeRefused, match=message):
        check_change(OWNER, name, value)


def test_what_the_owner_turned_off_a_server_cannot_turn_on():
    """Prompts and the checker, off by the owner, stay off; going back to the owner's is free."""
    no_prompts = replace(OWNER, prompts=False)
    with pytest.raises(ChangeRefused, match="turned prompts off in every server"):
        check_change(no_prompts, "prompts", True)
    check_change(no_prompts, "prompts", False)  # stricter still: fine
    no_checker = replace(OWNER, safety_checker="false")
    with pytest.raises(ChangeRefused, match="PLACE_SAFETY_CHECKER=false"):
        check_change(no_checker, "safety", SAFETY_EVERYWHERE)
    for name in ("cooldown_s", "user_max", "prompts", "safety", "channels"):
        check_change(no_prompts, name, None)  # back to the owner's: always


@pytest.mark.parametrize(("owner", "everywhere", "age_restricted", "checked"), [
    ("auto", False, False, True),  # the default: a normal channel is checked
    ("auto", False, True, False),  # an age-restricted one is not
    ("auto", True, True, True),  # unless the server has it checked everywhere
    ("true", False, True, True),  # the owner's true: everywhere
    ("false", True, False, False),  # the owner's false: nowhere
])
def test_where_the_checker_runs(owner, everywhere, age_restricted, checked):
    """auto: outside age-restricted channels (and in them where a server says); true, false."""
    server = ServerSettings(safety=SAFETY_EVERYWHERE if everywhere else None)
    rules = rules_for(replace(OWNER, safety_checker=owner), server)
    assert checks_safety(replace(OWNER, safety_checker=owner), rules, age_restricted) is checked


def test_a_channel_list_allows_its_channels_and_their_threads_only():
    """Listed channels and threads of them pass; any other is refused naming the list."""
    rules = rules_for(OWNER, ServerSettings(channels=(5, 6)))
    assert rules.allows_channel(5) and rules.allows_channel(99, parent_id=6)
    with pytest.raises(WrongChannel, match="only in <#5>, <#6>"):
        rules.check_channel(7)
    assert rules_for(OWNER).allows_channel(7)
