import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_nothing():
    """bot.py, cogs/, pipeline/ and placebot/ pass mypy (pyproject.toml): every Reporter, job
    source and backend matches the protocol it is used as, and no call names a missing method."""
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert mypy, "mypy is not installed (it is in requirements-dev.txt)"
    done = subprocess.run([mypy, "--no-incremental", "--cache-dir", os.devnull], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
