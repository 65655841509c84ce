"""How one render parameter is defined: its Param (bounds, choices, help text, how it travels:
an option, a flag, an owner setting, a button's payload or kept beside the result) and how a
value of it is parsed and checked. The parameters themselves are the fields of
pipeline.params.RenderRequest."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ParamError

PARAM_METADATA = "param"  # the key of a field's metadata that holds its Param


@dataclass(frozen=True)
class Param:
    """How one render parameter is checked, offered, shown and carried."""

    label: str  # its title where a person reads it (the embed)
    help: str  # one line for a person, without the default (each surface adds the live one)
    kind: type = int  # int, float, str or bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, high] instead of [low, high]
    choices: tuple[str, ...] = ()
    choice_name: str = "{}"  # how a choice is named in a menu
    unset: str = "random"  # what leaving it out means, where its default is None
    setting: str | None = None  # the PLACE_* variable an owner sets its default with
    slash: bool = True  # an option of /place (else only the owner's setting and the CLI)
    tag: str | None = None  # its key in a button's payload; None: buttons do not carry it
    source: bool = False  # picks the picture's source: New crop draws it anew
    batches: bool = False  # jobs share a pipeline call only when they agree on it
    max_length: int | None = None  # of a text parameter
    pattern: str | None = None  # a text parameter's whole value must match this regex
    # "canvas": only a canvas crop has it; "picture": only a user's picture (/dream); "any": both
    scope: str = "any"
    shown: bool = True  # a field of the result's embed
    # A person's own words (a prompt): blank means None; offered, and accepted, only where
    # prompts are allowed (PLACE_PROMPTS, a server's /place_admin prompts). Always kept.
    free_text: bool = False
    # Too long for a button's custom_id (100 characters): the bot keeps it beside the result
    # and the button names what it kept by a content key (kept_values). Never has a tag.
    kept: bool = False

    def __post_init__(self) -> None:
        """A definition that could not travel is refused when the module loads."""
        if self.kept and self.tag is not None:
            raise ValueError(f"{self.label}: a kept parameter travels beside the result, not "
                             "in a button's payload, so it has no tag")
        if self.free_text and not (self.kept and self.kind is str):
            raise ValueError(f"{self.label}: free text is text, and a custom_id never carries "
                             "a person's words, so it is kept")

    def bounds_text(self) -> str:
        """What is allowed, as a person reads it: '0-5', '(0, 1]', '1.4, 1.5'."""
        if self.choices:
            return ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is float:
            return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return f"{self.low:d}-{self.high:d}"

    def accepts(self) -> str:
        """The kind and bounds together, for a message about a setting or flag."""
        if self.choices:
            return f"one of {self.bounds_text()}"
        if self.kind is bool:
            return self.bounds_text()
        if self.kind is float:
            return f"a number in {self.bounds_text()}"
        if self.kind is int:
            return f"a whole number {self.bounds_text()}"
        return "text"

    def parse(self, name: str, raw: Any) -> Any:
        """A typed value from text (a flag, a payload, an env variable) or a JSON value; ParamError
        naming the value when it is not of this parameter's kind. Bounds are check()'s job."""
        if self.kind is bool:
            return _parse_bool(name, raw, self.accepts())
        if isinstance(raw, str) and self.kind is not str:
            try:
                return self.kind(raw.strip())
            except ValueError:
                raise ParamError(f"{name} {raw!r} is not {self.accepts()}") from None
        if self.kind is float and isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, self.kind) and not isinstance(raw, bool):
            return raw
        raise ParamError(f"{name} {raw!r} is not {self.accepts()}")

    def check(self, name: str, value: Any) -> None:
        """ParamError naming the value and what is allowed, unless it is within bounds."""
        if value is None:
            return
        self.check_type(name, value)
        if self.choices:
            if value not in self.choices:
                raise ParamError(f"{name} {value!r} is unknown; choose one of {self.bounds_text()}")
            return
        if isinstance(value, str) and not _is_text(value):
            raise ParamError(f"{name} holds a character that is not text (half of a UTF-16 "
                             "pair); write it again")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ParamError(f"{name} {value[:40]!r} is not valid")
        if self.max_length is not None and len(value) > self.max_length:
            raise ParamError(f"{name} is {len(value)} characters long; at most "
                             f"{self.max_length} are allowed")
        if self.low is None or self.high is None:
            return
        below = value <= self.low if self.low_open else value < self.low
        # NaN compares false to everything: it would pass both bounds
        if below or value > self.high or (isinstance(value, float) and math.isnan(value)):
            allowed = self.bounds_text()
            raise ParamError(f"{name} must be {'in ' if self.kind is float else ''}{allowed} "
                             f"but is {value}")

    def check_type(self, name: str, value: Any) -> None:
        """ParamError unless value is of this parameter's kind (an int is a fine float): a
        Discord client holding an older declaration of /place can send another type."""
        if self.kind is float:
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        elif self.kind is bool:
            fits = isinstance(value, bool)
        elif self.kind is int:
            fits = isinstance(value, int) and not isinstance(value, bool)
        else:
            fits = isinstance(value, self.kind)
        if not fits:
            wanted = {int: "a whole number", float: "a number", str: "text",
                      bool: "true or false"}.get(
                self.kind, self.kind.__name__)
            raise ParamError(f"{name} must be {wanted}, not {value!r}")

    def value_pattern(self) -> str:
        """A regex for this parameter's value as encode_value writes it."""
        if self.choices:
            return "|".join(re.escape(c) for c in sorted(self.choices, key=len, reverse=True))
        if self.kind is bool:
            return "true|false"
        if self.kind is float:
            return r"[0-9.e+-]{1,24}"
        if self.pattern is not None:
            return self.pattern
        return r"\d{1,20}"

    def encode_value(self, value: Any) -> str:
        if self.kind is bool:
            return "true" if value else "false"
        # repr: the shortest text that reads back as the same float
        return repr(value) if self.kind is float else str(value)


def _parse_bool(name: str, raw: Any, accepts: str) -> bool:
    """A yes/no parameter from JSON (true/false) or text (a flag: true/false, yes/no, on/off)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
    raise ParamError(f"{name} {raw!r} is not {accepts}")


def _is_text(value: str) -> bool:
    """Whether the string can be written as UTF-8: a lone surrogate (half of a UTF-16 pair,
    which JSON can carry) cannot, and would fail later, deep in the tokenizer or a file."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def param(default: Any, **spec: Any) -> Any:
    """A RenderRequest field with its Param (one not shown stays out of repr and the logs)."""
    param_spec = Param(**spec)
    return field(default=default, repr=param_spec.shown, metadata={PARAM_METADATA: param_spec})
