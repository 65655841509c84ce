"""placebot/process.py, the start and end that bot.py and the render worker share, run in a
fresh interpreter around a stand-in serve(): exit codes, the log's secrets and warnings, the
restart for a fresh engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.patience import PATIENCE_S

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, os, sys
from pathlib import Path
from placebot.process import StartupError, run_process

runs = Path(os.environ["RUNS_FILE"])

async def serve(settings):
    runs.write_text(runs.read_text() + f"{{os.getpid()}}\\n" if runs.exists() else
                    f"{{os.getpid()}}\\n")
    logging.getLogger("stand-in").warning("serving with token %s", settings.discord_token)
{body}

def explain(error):
    return f"told: {{error}}" if isinstance(error, LookupError) else None

sys.exit(run_process(serve, explain=explain))
"""


def _process(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess:
    """SCRIPT with `body` as the end of serve(), as `python bot.py` would run it."""
    script = SCRIPT.format(body="\n".join("    " + line for line in body.splitlines()))
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=PATIENCE_S,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                               "DISCORD_TOKEN": "the-secret-token", "PLACE_DEVICE": "cpu",
                               "PLACE_DATA_DIR": str(tmp_path / "data"),
                               "RUNS_FILE": str(tmp_path / "runs"), **env})


def test_a_process_that_stops_exits_0_with_its_token_kept_out_of_the_log(tmp_path):
    """Served and stopped: exit 0; a misspelt PLACE_* variable was named in a warning and the
    token never reached the log."""
    done = _process(tmp_path, "return None", PLACE_STRENGHT="0.5")
    assert done.returncode == 0, done.stderr
    assert "serving with token [redacted]" in done.stderr
    assert "the-secret-token" not in done.stderr
    assert "PLACE_STRENGHT is set but is not a setting of this bot" in done.stderr


@pytest.mark.parametrize(("failure", "line"), [
    ('raise StartupError("PLACE_X", "is wrong")', "cannot start: PLACE_X: is wrong"),
    ('raise KeyError("the key")', "told: 'the key'"),
], ids=["StartupError", "explained"])
def test_a_setting_to_fix_met_while_serving_is_one_line_and_exit_2(tmp_path, failure, line):
    """A StartupError out of serve(), or an error the process explains as a setting to fix:
    one line in the log, exit 2 (a service manager does not restart it), no traceback."""
    done = _process(tmp_path, failure)
    assert done.returncode == 2, done.stderr
    assert done.stderr.rstrip().endswith(line) and "Traceback" not in done.stderr


def test_a_malformed_setting_stops_the_start_before_serving(tmp_path):
    """A setting that does not parse: one line naming it on stderr, exit 2, nothing served."""
    done = _process(tmp_path, "return None", PLACE_STEPS="many")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("configuration error: PLACE_STEPS")
    assert not (tmp_path / "runs").exists()


def test_a_stuck_engine_restarts_the_same_process_which_serves_again(tmp_path):
    """serve() returning why it must restart: the process re-executes itself (same process
    id) and serves again; stopped the second time, it exits 0."""
    first_run = 'return "the engine is stuck" if len(runs.read_text().split()) == 1 else None'
    done = _process(tmp_path, first_run)
    assert done.returncode == 0, done.stderr
    first, second = (tmp_path / "runs").read_text().split()
    assert first == second
    assert "restarting the process: the engine is stuck" in done.stderr
