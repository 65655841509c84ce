"""The fake Discord's judge: Discord's OpenAPI spec plus its documented limits, on bodies that
Discord takes and bodies that it refuses."""

from __future__ import annotations

import pytest

from .spec_check import check, refusal, valid_name

MESSAGES = "/channels/3000/messages"
CALLBACK = "/interactions/1/token-1/callback"
ORIGINAL = "/webhooks/1000/token-1/messages/@original"
COMMANDS = "/applications/1000/guilds/2000/commands"


def _button(custom_id: str = "place:delete:4000") -> dict:
    return {"type": 2, "style": 4, "label": "Delete", "custom_id": custom_id,
            "emoji": {"name": "🗑️"}}


def _row(*buttons: dict) -> dict:
    return {"type": 1, "components": list(buttons) or [_button()]}


def _embed(**fields) -> dict:
    return {"type": "rich", "title": "r/Place 2022 at (10, 20)", "color": 16729344,
            "image": {"url": "attachment://strip.png"},
            "fields": [{"name": "Seed", "value": "12", "inline": True}], **fields}


def _option(name: str, *, required: bool = False, kind: int = 3) -> dict:
    return {"type": kind, "name": name, "description": "help", "required": required}


def _command(name: str = "place", options: list | None = None) -> dict:
    return {"name": name, "description": "Dream", "type": 1, "options": options or [],
            "default_member_permissions": None, "nsfw": False}


# ----- what Discord takes
TAKEN = {
    "a result as discord.py posts it (integer ids, a digit-only nonce)": (
        "POST", MESSAGES, {
            "content": "<@4000> your dream is ready.", "embeds": [_embed()],
            "components": [_row(_button("place:reroll:m1.4"), _button())],
            "nonce": "123456789012", "enforce_nonce": True, "tts": False,
            "allowed_mentions": {"parse": [], "users": [4000], "replied_user": False},
            "message_reference": {"message_id": 555, "channel_id": 3000, "guild_id": 2000,
                                  "fail_if_not_exists": False},
            "attachments": [{"id": 0, "filename": "strip.png"}]}),
    "an edit of the @original with every limit reached": (
        "PATCH", ORIGINAL, {
            "content": "x" * 2000,
            "embeds": [_embed(title="t" * 256, description="d" * 2000, fields=[
                {"name": "n", "value": "v" * 100}] * 25)],
            "components": [_row(*[_button(f"{i}" * 100) for i in range(5)])] * 5}),
    "a deferral and an ephemeral answer": (
        "POST", CALLBACK, {"type": 5, "data": {"flags": 64}}),
    "an answer with an embed and buttons": (
        "POST", CALLBACK, {"type": 4, "data": {"embeds": [_embed()],
                                               "components": [_row()], "flags": 64}}),
    "a components-v2 message with more than 5 top-level components": (
        "POST", MESSAGES, {"flags": 1 << 15, "components": [
            {"type": 10, "content": f"line {i}"} for i in range(7)]}),
    "a command sync with permissions as a string, names in any script": (
        "PUT", COMMANDS, [
            {**_command("place", [_option("image", required=True, kind=11),
                                  _option("seed", kind=4), _option("träume"),
                                  _option("日本-2_x")]),
             "default_member_permissions": "8192"},
            {"name": "Dream on this", "type": 3, "description": ""}]),
}

REFUSED = {  # body, and where Discord says the problem is
    "a 300-character title": (
        "POST", MESSAGES, {"embeds": [_embed(title="t" * 300)]}, ("embeds", "0", "title")),
    "26 fields": (
        "PATCH", ORIGINAL, {"embeds": [_embed(fields=[{"name": "n", "value": "v"}] * 26)]},
        ("embeds", "0", "fields")),
    "a 1025-character field value": (
        "POST", CALLBACK, {"type": 4, "data": {"embeds": [_embed(fields=[
            {"name": "Prompt cut", "value": "\\_" * 513}])]}},
        ("data", "embeds", "0", "fields", "0", "value")),
    "a 101-character custom_id": (
        "POST", MESSAGES, {"components": [_row(_button("c" * 101))]},
        ("components", "0", "components", "0", "custom_id")),
    "6 buttons in a row": (
        "POST", MESSAGES, {"components": [_row(*[_button(str(i)) for i in range(6)])]},
        ("components", "0", "components")),
    "6 action rows": (
        "PATCH", ORIGINAL, {"components": [_row()] * 6}, ("components",)),
    "a 2001-character message": (
        "POST", MESSAGES, {"content": "x" * 2001}, ("content",)),
    "a 2001-character answer": (
        "POST", CALLBACK, {"type": 4, "data": {"content": "x" * 2001}}, ("data", "content")),
    "6001 characters of embed text in two embeds": (
        "POST", MESSAGES, {"embeds": [_embed(title="", description="d" * 4000, fields=[]),
                                      _embed(title="", description="d" * 2001, fields=[])]},
        ("embeds",)),
    "an id that is no snowflake": (
        "POST", MESSAGES, {"message_reference": {"message_id": "last"}},
        ("message_reference", "message_id")),
    "a reply without the message it replies to": (
        "POST", MESSAGES, {"message_reference": {"channel_id": 3000}},
        ("message_reference", "message_id")),
    "a command name with a capital": (
        "PUT", COMMANDS, [_command("Place")], ("0", "name")),
    "an option name with a space": (
        "PUT", COMMANDS, [_command(options=[_option("the seed")])],
        ("0", "options", "0", "name")),
    "a required option after an optional one": (
        "PUT", COMMANDS, [_command(options=[_option("seed"), _option("image", required=True)])],
        ("0", "options", "1", "required")),
    "a 33-character command name": (
        "PUT", COMMANDS, [_command("d" * 33)], ("0", "name")),
}


@pytest.mark.parametrize("case", list(TAKEN))
def test_discord_takes(case):
    """Bodies real Discord takes, as discord.py sends them, raise no problem."""
    method, path, body = TAKEN[case]
    assert check(method, path, body) == []


@pytest.mark.parametrize("case", list(REFUSED))
def test_discord_refuses_naming_the_field(case):
    """Bodies real Discord refuses get its 400 answer: code 50035, the field named."""
    method, path, body, where = REFUSED[case]
    problems = check(method, path, body)
    assert problems, f"{case} was taken"
    answer = refusal(problems)
    assert answer["code"] == 50035 and answer["message"] == "Invalid Form Body"
    node = answer["errors"]
    for part in where:
        assert part in node, f"{case}: no {part!r} in {node}"
        node = node[part]
    assert node["_errors"][0]["code"] and node["_errors"][0]["message"]


def test_a_field_too_long_says_what_discord_says():
    """A field value over 1024 is Discord's BASE_TYPE_MAX_LENGTH, in its words."""
    [problem] = check("PATCH", ORIGINAL, {"embeds": [_embed(fields=[
        {"name": "Prompt", "value": "v" * 1025}])]})
    assert (problem.where, problem.code, problem.message) == (
        ("embeds", 0, "fields", 0, "value"), "BASE_TYPE_MAX_LENGTH",
        "Must be 1024 or fewer in length.")


def test_routes_without_a_body_schema_and_unknown_routes_are_not_judged():
    """A GET, a DELETE and a path the spec does not have raise no problem."""
    assert check("GET", "/channels/3000", None) == []
    assert check("DELETE", ORIGINAL, None) == []
    assert check("POST", "/no/such/route", {"content": "x" * 5000}) == []


@pytest.mark.parametrize(("name", "valid"), [
    ("place", True), ("place_status", True), ("x-y", True), ("träume", True), ("日本", True),
    ("٣", True), ("d" * 32, True), ("", False), ("d" * 33, False), ("Place", False),
    ("the seed", False), ("seed!", False), ("ÉTÉ", False)])
def test_command_names_follow_discords_pattern(name, valid):
    """^[-_\\p{L}\\p{N}]{1,32}$ in lowercase, with Unicode letters and numbers."""
    assert valid_name(name) is valid
