"""Discord's judgement of a REST request body, from Discord's published OpenAPI spec.

`check(method, path, body)` returns what real Discord would refuse in the body of a request
(a JSON body, or a multipart request's payload_json), as Problems that name the field; an
empty list means Discord takes it. `refusal(problems)` is Discord's answer to such a request:
400, code 50035 "Invalid Form Body", with an `errors` object shaped as Discord shapes it.

The judge is the request schema of the request's route in spec/openapi.json (see
spec/PROVENANCE.md), applied with jsonschema (Draft 2020-12, every `$ref` resolved inside the
spec through `referencing`), read the way the spec's own conventions say:

- `oneOf` and `anyOf` both mean "one of these shapes": a body is taken when it fits one of
  them. Discord does not refuse a body that happens to fit two (a digit-only nonce fits both
  the integer and the string form), so oneOf is checked as anyOf.
- Discord takes an int-parseable string where an integer is declared (discord.py sends
  `default_member_permissions` as one) and an integer where a snowflake string is declared
  (discord.py sends message_reference and attachment ids as integers).

Plus the documented limits the schemas leave out: a message's content is at most 2000
characters (the schema says 4000), its embeds hold at most 6000 characters of text in all, it
has at most 5 top-level action rows (unless it is flagged as using components v2), a chat
command's and every option's name is lowercase and matches ^[-_\\p{L}\\p{N}]{1,32}$, and
required options come before optional ones.

The spec is 1.2 MB: it is read and prepared once per process (`checker()`), and the schema of
each route is compiled the first time the route is used.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).with_name("spec") / "openapi.json"
SPEC_URI = "urn:discord-api-spec:openapi.json"
INVALID_FORM_BODY = 50035

# Documented limits the schemas leave out (developer docs: "Create Message", "Embed Limits",
# "Component Reference", "Application Commands")
MESSAGE_CONTENT_MAX = 2000
EMBED_TEXT_MAX = 6000
ACTION_ROWS_MAX = 5
COMMAND_NAME_MAX = 32
IS_COMPONENTS_V2 = 1 << 15  # message flag: top-level components are not limited to 5 rows
CHAT_INPUT = 1  # application command type whose name and options' names follow the rules
SUBCOMMAND_TYPES = (1, 2)  # option types that hold options of their own
MESSAGE_CALLBACKS = (4, 7)  # interaction callback types whose `data` is a message

# Routes whose body is a message (with content, embeds and components)
_MESSAGE_ROUTES = {
    ("POST", "/channels/{channel_id}/messages"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"),
}
_CALLBACK_ROUTE = ("POST", "/interactions/{interaction_id}/{interaction_token}/callback")
_COMMAND_LIST_ROUTES = {
    ("PUT", "/applications/{application_id}/commands"),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"),
}
_COMMAND_ROUTES = {
    ("POST", "/applications/{application_id}/commands"),
    ("POST", "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("PATCH", "/applications/{application_id}/commands/{command_id}"),
    ("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}"),
}

Where = tuple[str | int, ...]  # a field's place in the body: keys and list indexes


@dataclass(frozen=True)
class Problem:
    """One thing Discord refuses: where in the body, Discord's error code, and its words."""

    where: Where
    code: str
    message: str

    def __str__(self) -> str:
        place = ".".join(str(part) for part in self.where) or "(body)"
        return f"{place}: {self.code} {self.message}"


def refusal(problems: list[Problem]) -> dict[str, Any]:
    """Discord's 400 body for a request with these problems: each names its field, as in
    {"embeds": {"0": {"title": {"_errors": [{"code": ..., "message": ...}]}}}}."""
    errors: dict[str, Any] = {}
    for problem in problems:
        node = errors
        for part in problem.where:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": problem.code, "message": problem.message})
    return {"code": INVALID_FORM_BODY, "message": "Invalid Form Body", "errors": errors}


# ----- reading the spec the way Discord means it

def _int_text(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value) is not None


def _is_integer(checker: Any, value: Any) -> bool:
    """An integer, or a string Discord parses as one."""
    return Draft202012Validator.TYPE_CHECKER.is_type(value, "integer") or _int_text(value)


def _on_parsed_int(keyword: str) -> Any:
    """A numeric keyword (minimum...) that checks an int-parseable string by its value."""
    check = Draft202012Validator.VALIDATORS[keyword]

    def numeric(validator: Any, bound: Any, instance: Any, schema: Any) -> Iterator[Any]:
        yield from check(validator, bound, int(instance) if _int_text(instance) else instance,
                         schema)

    return numeric


DiscordValidator = validators.extend(
    Draft202012Validator,
    validators={
        "oneOf": Draft202012Validator.VALIDATORS["anyOf"],
        **{keyword: _on_parsed_int(keyword)
           for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")},
    },
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass(frozen=True)
class _Route:
    method: str
    template: str  # as the spec writes it: /channels/{channel_id}/messages
    pattern: re.Pattern[str]
    schema_pointer: str  # of its request body's schema, inside the spec


class SpecChecker:
    """The routes of one spec and their request schemas (compiled on first use)."""

    def __init__(self, spec: dict[str, Any]):
        # Discord takes integer snowflakes too (the one snowflake schema every id refers to)
        snowflake = spec["components"]["schemas"]["SnowflakeType"]
        spec["components"]["schemas"]["SnowflakeType"] = {
            "type": ["string", "integer"], "pattern": snowflake["pattern"], "minimum": 0}
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry: Registry = Registry().with_resource(SPEC_URI, resource)
        routes = []
        for template, operations in spec["paths"].items():
            for method, operation in operations.items():
                body = operation.get("requestBody") if isinstance(operation, dict) else None
                if not body:
                    continue
                content = body["content"]
                # payload_json is the JSON body: the multipart form adds only the files
                kind = "application/json" if "application/json" in content else next(
                    iter(content))
                routes.append(_Route(
                    method.upper(), template, _template_pattern(template),
                    _pointer("paths", template, method, "requestBody", "content", kind,
                             "schema")))
        # A literal segment beats a parameter: /messages/@original before /messages/{id}
        self._routes = sorted(routes, key=lambda route: route.template.count("{"))
        self._validators: dict[str, Any] = {}

    def route(self, method: str, path: str) -> _Route | None:
        return next((route for route in self._routes
                     if route.method == method and route.pattern.fullmatch(path)), None)

    def _validator(self, pointer: str) -> Any:
        if pointer not in self._validators:
            self._validators[pointer] = DiscordValidator({"$ref": f"{SPEC_URI}#{pointer}"},
                                                         registry=self._registry)
        return self._validators[pointer]

    def check(self, method: str, path: str, body: Any) -> list[Problem]:
        """What Discord refuses in `body`, sent as `method path` (path under /api/v10)."""
        route = self.route(method.upper(), path)
        if route is None or body is None:
            return []
        validator = self._validator(route.schema_pointer)
        problems = [_problem(leaf) for error in validator.iter_errors(body)
                    for leaf in _leaves(error)]
        problems += _documented_limits((route.method, route.template), body)
        return list(dict.fromkeys(problems))  # the spec and the docs can say the same thing


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                              for part in parts))


@functools.cache
def checker() -> SpecChecker:
    """The checker of spec/openapi.json, read once per process."""
    with SPEC_PATH.open(encoding="utf-8") as file:
        return SpecChecker(json.load(file))


def check(method: str, path: str, body: Any) -> list[Problem]:
    """What Discord refuses in this request's body (empty: it is taken)."""
    return checker().check(method, path, body)


# ----- schema errors as Discord words them

def _leaves(error: ValidationError) -> list[ValidationError]:
    """The errors that say what is wrong: inside a union, those of the shape the body meant
    (the one whose own `type` matched, and that got deepest into the body)."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def missed_shape(sub: ValidationError) -> bool:
        where = list(sub.relative_path)
        return ((not where and sub.validator == "type")
                or (where == ["type"] and sub.validator in ("enum", "const")))

    meant = [subs for subs in branches.values() if not any(map(missed_shape, subs))]
    best = max(meant or list(branches.values()),
               key=lambda subs: max(len(sub.absolute_path) for sub in subs))
    return [leaf for sub in best for leaf in _leaves(sub)]


_CODES = {  # keyword: (Discord's code, its message from the keyword's value)
    "maxLength": ("BASE_TYPE_MAX_LENGTH", "Must be {} or fewer in length."),
    "maxItems": ("BASE_TYPE_MAX_LENGTH", "Must be {} or fewer in length."),
    "minLength": ("BASE_TYPE_MIN_LENGTH", "Must be {} or more in length."),
    "minItems": ("BASE_TYPE_MIN_LENGTH", "Must be {} or more in length."),
    "maximum": ("NUMBER_TYPE_MAX", "int value should be less than or equal to {}."),
    "minimum": ("NUMBER_TYPE_MIN", "int value should be greater than or equal to {}."),
    "enum": ("BASE_TYPE_CHOICES", "Value must be one of {}."),
    "pattern": ("STRING_TYPE_REGEX", "String value did not match validation regex."),
}


def _problem(error: ValidationError) -> Problem:
    where: Where = tuple(error.absolute_path)
    if error.validator == "required":  # Discord names the missing field itself
        missing = ast.literal_eval(error.message.removesuffix(" is a required property"))
        return Problem((*where, missing), "BASE_TYPE_REQUIRED", "This field is required")
    if error.validator in _CODES:
        code, words = _CODES[str(error.validator)]
        return Problem(where, code, words.format(error.validator_value))
    return Problem(where, f"BASE_TYPE_{str(error.validator).upper()}", error.message)


# ----- the documented limits the schemas leave out

def _documented_limits(route: tuple[str, str], body: Any) -> Iterator[Problem]:
    if route in _MESSAGE_ROUTES and isinstance(body, dict):
        yield from _message_limits(body, ())
    elif route == _CALLBACK_ROUTE and isinstance(body, dict):
        if body.get("type") in MESSAGE_CALLBACKS and isinstance(body.get("data"), dict):
            yield from _message_limits(body["data"], ("data",))
    elif route in _COMMAND_LIST_ROUTES and isinstance(body, list):
        for index, command in enumerate(body):
            yield from _command_rules(command, (index,))
    elif route in _COMMAND_ROUTES:
        yield from _command_rules(body, ())


def _message_limits(message: dict[str, Any], where: Where) -> Iterator[Problem]:
    content = message.get("content")
    if isinstance(content, str) and len(content) > MESSAGE_CONTENT_MAX:
        yield Problem((*where, "content"), "BASE_TYPE_MAX_LENGTH",
                      f"Must be {MESSAGE_CONTENT_MAX} or fewer in length.")
    embeds = message.get("embeds")
    if isinstance(embeds, list) and sum(map(embed_text_length, embeds)) > EMBED_TEXT_MAX:
        yield Problem((*where, "embeds"), "MAX_EMBED_SIZE_EXCEEDED",
                      f"Embed size exceeds maximum size of {EMBED_TEXT_MAX}")
    components = message.get("components")
    flags = message.get("flags")
    v2 = isinstance(flags, int) and bool(flags & IS_COMPONENTS_V2)
    if isinstance(components, list) and not v2 and len(components) > ACTION_ROWS_MAX:
        yield Problem((*where, "components"), "BASE_TYPE_MAX_LENGTH",
                      f"Must be {ACTION_ROWS_MAX} or fewer in length.")


def embed_text_length(embed: Any) -> int:
    """The characters of an embed that count toward Discord's 6000: title, description, field
    names and values, footer text and author name."""
    if not isinstance(embed, dict):
        return 0

    def text(node: Any, key: str) -> int:
        value = node.get(key) if isinstance(node, dict) else None
        return len(value) if isinstance(value, str) else 0

    fields = embed.get("fields") if isinstance(embed.get("fields"), list) else []
    return (text(embed, "title") + text(embed, "description")
            + sum(text(f, "name") + text(f, "value") for f in fields)
            + text(embed.get("footer"), "text") + text(embed.get("author"), "name"))


def valid_name(name: str) -> bool:
    """A chat command's or option's name: ^[-_\\p{L}\\p{N}]{1,32}$ and lowercase. Python's re
    has no \\p{...}: a letter is a Unicode category L*, a number N*."""
    return (1 <= len(name) <= COMMAND_NAME_MAX and name == name.lower()
            and all(c in "-_" or unicodedata.category(c)[0] in "LN" for c in name))


def _command_rules(command: Any, where: Where) -> Iterator[Problem]:
    if not isinstance(command, dict):
        return
    name = command.get("name")
    if command.get("type", CHAT_INPUT) in (CHAT_INPUT, None) and isinstance(name, str):
        if not valid_name(name):
            yield Problem((*where, "name"), "APPLICATION_COMMAND_INVALID_NAME",
                          "Command name is invalid")
        yield from _option_rules(command.get("options"), (*where, "options"))


def _option_rules(options: Any, where: Where) -> Iterator[Problem]:
    if not isinstance(options, list):
        return
    optional_seen = False
    for index, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        name = option.get("name")
        if isinstance(name, str) and not valid_name(name):
            yield Problem((*where, index, "name"), "APPLICATION_COMMAND_INVALID_NAME",
                          "Command name is invalid")
        if option.get("required"):
            if optional_seen:
                yield Problem((*where, index, "required"),
                              "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                              "Required options must be placed before non-required options")
        elif option.get("type") not in SUBCOMMAND_TYPES:
            optional_seen = True
        if option.get("type") in SUBCOMMAND_TYPES:
            yield from _option_rules(option.get("options"), (*where, index, "options"))
