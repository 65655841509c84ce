"""Packaging facts: secrets stay out of git and images, requirements are bounded.

The Docker image and compose file are tested in tests/test_docker.py."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_env_file_is_ignored_by_git_and_docker():
    """A token in .env can never be committed or baked into an image."""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0
    docker_ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in docker_ignore and "data" in docker_ignore and "outputs" in docker_ignore


def test_requirements_are_bounded_above():
    """A fresh install next year still gets a set known to work together."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert "<" in line, f"{line} has no upper bound"
