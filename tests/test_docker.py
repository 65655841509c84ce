"""The Docker image and compose stack, read together (no Docker engine is needed to run these).

The container's environment is built the way Docker builds it: the Dockerfile's ENV, then
compose's env_file (config.example.env, as the README says to copy it to .env), then compose's
`environment`. The bot's own settings reader then says which folders it will write to.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dotenv import dotenv_values

from pipeline.config import DEFAULT_ATLAS_DIR
from placebot.settings import settings_from_env

ROOT = Path(__file__).resolve().parents[1]
USER = "bot"


@dataclass
class Image:
    """What the Dockerfile leaves behind: environment, working folder, user, volumes, and the
    owner of every folder its instructions create."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    volumes: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=lambda: {"/": "root"})
    copies: list[list[str]] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def owner_of(self, path: str) -> str:
        """The owner of `path`, or of its nearest folder that the image creates."""
        while path not in self.owners:
            path = posixpath.dirname(path)
        return self.owners[path]

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), ""), text)


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def read_image() -> Image:
    image = Image()
    for op, args in instructions((ROOT / "Dockerfile").read_text()):
        if op == "ENV":
            image.env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
        elif op == "WORKDIR":
            image.workdir = posixpath.join(image.workdir, image.expand(args))
            image.owners.setdefault(image.workdir, "root")  # Docker creates it as root
        elif op == "USER":
            image.user = args.split(":")[0]
        elif op == "VOLUME":
            image.volumes = yaml.safe_load(args)
        elif op == "COPY":
            image.copies.append(shlex.split(args))
        elif op == "CMD":
            image.cmd = yaml.safe_load(args)
        elif op == "RUN":
            for command in re.split(r"&&|;", args):
                words = shlex.split(command)
                if "useradd" in words and "--create-home" in words:
                    image.owners[f"/home/{words[-1]}"] = words[-1]
                if words[:2] == ["mkdir", "-p"]:
                    for folder in words[2:]:
                        target = posixpath.join(image.workdir, image.expand(folder))
                        image.owners.setdefault(target, image.user)
    return image


def compose_service() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["bot"]


def container_env(image: Image, service: dict) -> dict[str, str]:
    """The environment the bot sees: image ENV < env_file < compose environment."""
    assert service["env_file"] == ".env"  # the README: cp config.example.env .env
    env = dict(image.env)
    env.update({k: v or "" for k, v in dotenv_values(ROOT / "config.example.env").items()})
    env.update(service.get("environment") or {})
    return env


def written_folders(image: Image, env: dict[str, str]) -> dict[str, str]:
    """Every folder the bot writes to in the container, as absolute paths."""
    settings = settings_from_env({**env, "DISCORD_TOKEN": "x"})
    # python -m pipeline.download writes the atlas; "~" is the bot user's home in there
    atlas = env.get("PLACE_ATLAS_DIR") or DEFAULT_ATLAS_DIR
    folders = {"PLACE_DATA_DIR": str(settings.data_dir), "HF_HOME": env["HF_HOME"],
               "PLACE_ATLAS_DIR": re.sub(r"^~(?=/|$)", f"/home/{USER}", atlas)}
    if settings.output_dir is not None:
        folders["PLACE_OUTPUT_DIR"] = str(settings.output_dir)
    return {name: posixpath.normpath(posixpath.join(image.workdir, path))
            for name, path in folders.items()}


def mounted_volumes(service: dict) -> dict[str, str]:
    """Compose's named volumes: container path -> volume name."""
    mounts = [entry.split(":") for entry in service["volumes"]]
    return {target: source for source, target, *_ in mounts}


def test_every_folder_the_bot_writes_is_on_a_volume():
    """With config.example.env as .env, the journal, caches and model cache are on volumes."""
    image, service = read_image(), compose_service()
    volumes = mounted_volumes(service)
    for name, folder in written_folders(image, container_env(image, service)).items():
        assert any(folder == v or folder.startswith(v + "/") for v in volumes), (name, folder)


def test_every_folder_the_bot_writes_is_owned_by_its_user():
    """The bot runs as `bot`, and each folder it writes (or its nearest created parent) is its."""
    image, service = read_image(), compose_service()
    assert image.user == USER
    for name, folder in written_folders(image, container_env(image, service)).items():
        assert image.owner_of(folder) == USER, (name, folder, image.owners)


def test_compose_mounts_are_the_images_volumes_and_named():
    """Compose mounts named volumes (which survive `down`) exactly where the image declares them."""
    image, service = read_image(), compose_service()
    volumes = mounted_volumes(service)
    assert sorted(volumes) == sorted(image.volumes)
    declared = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["volumes"]
    assert set(volumes.values()) <= set(declared)


def test_the_health_check_reads_the_folder_the_bot_writes():
    """The HEALTHCHECK runs where the bot does, with its environment: it finds the heartbeat."""
    image, service = read_image(), compose_service()
    env = container_env(image, service)
    data = written_folders(image, env)["PLACE_DATA_DIR"]
    health_sees = posixpath.join(image.workdir, env.get("PLACE_DATA_DIR") or "data")
    assert posixpath.normpath(health_sees) == data
    assert "/app" in env["PYTHONPATH"].split(":")  # `python -m placebot.health` from the home


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def build_context() -> set[str]:
    """The repository's tracked top-level entries that .dockerignore lets into the image."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    kept = set()
    for path in tracked:
        ignored = False
        for pattern in dockerignore_patterns():
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!")
            parts = path.split("/")
            parts = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            if any(fnmatch.fnmatch(part, pattern) for part in parts):
                ignored = not negated
        if not ignored:
            kept.add(path.split("/")[0])
    return kept


def test_image_holds_the_code_but_no_tests_bench_docs_or_secrets():
    """The build context has the bot's code and no tests/, bench/, docs/ or .env."""
    context = build_context()
    assert {"bot.py", "pipeline", "placebot", "cogs", "locks"} <= context
    assert not context & {"tests", "bench", "docs", ".env", "data", ".git"}
    assert ".env" in dockerignore_patterns()


def test_dockerfile_installs_the_lock_before_the_code_and_runs_as_non_root():
    """Dependencies are a layer of their own, from the CUDA lock (hash-checked), the code comes
    last, the bot is not root."""
    steps = instructions((ROOT / "Dockerfile").read_text())
    ops = [f"{op} {args}" for op, args in steps]
    install = next(i for i, s in enumerate(ops) if s.startswith("RUN pip install -r"))
    assert ops[install] == "RUN pip install -r /app/locks/cuda.txt"
    copy_code = next(i for i, s in enumerate(ops) if s.startswith("COPY") and " . " in s)
    user = next(i for i, s in enumerate(ops) if s.startswith("USER "))
    assert install < copy_code < user
    image = read_image()
    assert image.user != "root" and image.cmd == ["python", "/app/bot.py"]
    assert any("placebot.health" in s for s in ops if s.startswith("HEALTHCHECK"))
    assert not any("DISCORD_TOKEN" in s for s in ops)


def test_compose_reserves_a_gpu_and_gives_the_bot_time_to_stop():
    """One NVIDIA GPU is reserved; the stop grace covers the bot's 10-second shutdown."""
    service = compose_service()
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert service["stop_grace_period"] == "10s"


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_default_stack_is_the_single_process_bot():
    """`docker compose up` starts only the bot with its GPU: every other service is in the
    distributed profile."""
    services = compose_services()
    assert "profiles" not in services["bot"]
    assert all(s.get("profiles") == ["distributed"] for n, s in services.items() if n != "bot")


def test_the_distributed_profile_runs_valkey_with_aof_and_a_password():
    """Valkey's official image, AOF written before each answer, a password required (the
    server refuses to start without one), its data on a named volume."""
    valkey = compose_services()["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    command = " ".join(valkey["command"])
    assert "--appendonly yes" in command and "--appendfsync always" in command
    assert '--requirepass "$$VALKEY_PASSWORD"' in command and "exit 1" in command
    assert valkey["volumes"] == ["valkey-data:/data"]


def test_the_distributed_profile_has_one_worker_per_gpu_and_a_bot_without_one():
    """Each render worker reserves its own GPU (device_ids), the bot none; all of them reach
    Valkey through PLACE_REDIS_URL with the password."""
    services = compose_services()
    workers = {n: s for n, s in services.items() if n.startswith("worker-")}
    gpus = [s["deploy"]["resources"]["reservations"]["devices"] for s in workers.values()]
    assert len(workers) >= 2 and all(len(d) == 1 and "count" not in d[0] for d in gpus)
    assert sorted(d[0]["device_ids"][0] for d in gpus) == [str(i) for i in range(len(gpus))]
    assert all(s["command"] == ["python", "-m", "placebot.gpu_worker"] for s in workers.values())
    bot = services["bot-distributed"]
    assert "deploy" not in bot and set(workers) <= set(bot["depends_on"])
    url = "redis://:${VALKEY_PASSWORD:-}@valkey:6379/0"
    assert all(s["environment"]["PLACE_REDIS_URL"] == url for s in [bot, *workers.values()])
    settings = settings_from_env({"DISCORD_TOKEN": "x", "PLACE_REDIS_URL":
                                  url.replace("${VALKEY_PASSWORD:-}", "secret")})
    assert settings.redis_url is not None
