"""The fixed sentences users read when the bot refuses something live in placebot/texts.py:
the code that refuses names them, and none is spelt out anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path

from placebot import texts

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ROOT / "placebot" / "texts.py"
# The bot's code: the Discord side (cogs, placebot) and its job layer
CODE = [path for folder in ("cogs", "placebot") for path in sorted((ROOT / folder).rglob("*.py"))
        if path != TEXTS]
# What takes a user's sentence: errors whose message the user reads, and direct answers
REFUSALS = {"UserFacingError", "QueueRefusal", "AttachmentRefused", "ChangeRefused",
            "SourceExpired", "ImageSourceError"}
ANSWERS = {"send_message"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _spelt_out(call: ast.Call) -> bool:
    """The call's first argument is a sentence written in place (a literal or an f-string)."""
    return bool(call.args) and (isinstance(call.args[0], ast.JoinedStr) or (
        isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)))


def _sentences_spelt_out(tree: ast.Module) -> list[int]:
    """Lines where a refusal's or an answer's sentence is written in place, not named."""
    lines = []
    for cls in [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]:
        if {_name(base) for base in cls.bases} & REFUSALS:
            lines += [call.lineno for call in ast.walk(cls) if isinstance(call, ast.Call)
                      and _name(call.func) == "__init__" and _spelt_out(call)]
    lines += [call.lineno for call in ast.walk(tree) if isinstance(call, ast.Call)
              and _name(call.func) in REFUSALS | ANSWERS and _spelt_out(call)]
    return sorted(set(lines))


def test_no_refusal_is_spelt_out_outside_texts():
    """No error a user reads, and no answer sent to a user, writes its sentence in place: it
    names one of placebot/texts.py (its blanks filled in there)."""
    found = {str(path.relative_to(ROOT)): lines for path in CODE
             if (lines := _sentences_spelt_out(ast.parse(path.read_text())))}
    assert found == {}


def test_every_text_is_used_by_name():
    """Each sentence in placebot/texts.py is named by the code (none is left over after a
    rewording moved it)."""
    code = "\n".join(path.read_text() for path in CODE)
    names = [name for name in vars(texts) if name.isupper()]
    unused = [name for name in names
              if f"texts.{name}" not in code and not _imported_by_name(name, code)]
    assert names and unused == []


def _imported_by_name(name: str, code: str) -> bool:
    return any(line.startswith("from placebot.texts import") and name in line
               for line in code.splitlines())
