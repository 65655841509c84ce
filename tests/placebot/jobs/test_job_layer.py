"""The job layer knows nothing of Discord: a job carries a typed delivery reference, never a
Discord object, and none of its modules imports discord or placebot.discord_side.delivery."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

from placebot.jobs.jobqueue import Job

ROOT = Path(__file__).resolve().parents[3]
JOB_LAYER = (
    "placebot.jobs.backend", "placebot.jobs.eta", "placebot.jobs.jobqueue",
    "placebot.jobs.journal", "placebot.jobs.journal_salvage", "placebot.jobs.local_backend",
    "placebot.jobs.outbox", "placebot.jobs.outcome", "placebot.jobs.stored_job",
    "placebot.jobs.telling", "placebot.jobs.worker",
    "placebot.distributed.bot_side", "placebot.distributed.codec", "placebot.distributed.store",
    "placebot.distributed.worker_side",
)
# Its own imports are checked; placebot.startup (its StartupError) still brings discord in.
DIRECT_ONLY = ("placebot.distributed.backend",)
DISCORD = ("discord", "placebot.discord_side.delivery")


def _discord(name: str) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in DISCORD)


def test_the_job_layer_loads_neither_discord_nor_the_delivery_module():
    """Imported in a fresh interpreter, the job layer's modules load neither, at any depth."""
    code = ("import importlib, sys\n"
            f"for name in {JOB_LAYER!r}: importlib.import_module(name)\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    assert set(JOB_LAYER) <= set(loaded)  # the check ran on the modules themselves
    assert [name for name in loaded if _discord(name)] == []


def test_no_job_layer_module_names_discord_or_the_delivery_module_in_its_imports():
    """Not even under TYPE_CHECKING: every import statement of the job layer and of the
    Redis backend is read."""
    named = {}
    for module in (*JOB_LAYER, *DIRECT_ONLY):
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            named.update({(module, name): node.lineno for name in names if _discord(name)})
    assert named == {}


def test_a_jobs_delivery_reference_is_typed_as_a_mapping_not_any():
    """mypy sees the reference's type: a JSON object the job layer carries, not Any."""
    assert get_type_hints(Job)["delivery"] == Mapping[str, Any]
