"""What can be checked of the packaging without a Docker engine (none runs on our machines)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_env_file_is_ignored_by_git_and_docker():
    """A token in .env can never be committed or baked into an image."""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0
    docker_ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in docker_ignore and "data" in docker_ignore and "outputs" in docker_ignore


def test_dockerfile_installs_requirements_before_copying_code_and_runs_as_non_root():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install -r"))
    copy_code = next(i for i, line in enumerate(lines) if line.startswith("COPY --chown"))
    user = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert install < copy_code < user and lines[user] != "USER root"
    assert 'CMD ["python", "bot.py"]' in lines
    assert any("placebot.health" in line for line in lines)  # HEALTHCHECK means "connected"
    assert not any("DISCORD_TOKEN" in line for line in lines)


def test_compose_reserves_a_gpu_and_keeps_cache_and_data_on_volumes():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "driver: nvidia" in compose and "capabilities: [gpu]" in compose
    assert "hf-cache:/home/bot/.cache/huggingface" in compose and "bot-data:" in compose


def test_requirements_are_bounded_above():
    """A fresh install next year still gets a set known to work together."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert "<" in line, f"{line} has no upper bound"
