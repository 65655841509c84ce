"""Every Redis key name and every timing of the distributed mode, defined once."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.params import MODEL_KEYS

PREFIX = "place:"
WORKER_GROUP = "workers"
BOT_GROUP = "bots"


@dataclass(frozen=True)
class Timings:
    """How long things may take before another process steps in (seconds)."""

    claim_idle_s: float = 30.0  # a job unacknowledged this long, its worker silent: take it over
    beat_s: float = 5.0  # worker heartbeat and refresh of its pending entries' idle time
    affinity_wait_s: float = 5.0  # a job waits this long for a worker that has its model
    # A worker that wakes to fewer jobs than a batch waits this long for the rest of the burst
    batch_gather_s: float = 0.02
    # A bot's place held while it prepares a job: longer than a /dream picture's preparation
    # can take (placebot/discord_side/attachments.py: a download of up to 30 s, up to 30 s in line
    # for a
    # decoding thread, then a decode of up to 20).
    reservation_s: float = 90.0
    keep_ended_s: float = 86400.0  # an ended job's hash stays this long (idempotency key)
    max_deliveries: int = 3  # a job handed out this many times without an ending is dropped
    # A bot applying a job's event (a Discord edit) holds the job's later events back at most
    # this long, should it die meanwhile.
    applying_lease_s: float = 30.0
    apply_poll_s: float = 0.05  # how often a bot waiting for that asks again

    @property
    def worker_ttl_s(self) -> float:
        """A worker that has not beaten for this long is off the list."""
        return 3 * self.beat_s


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def stream(model: str) -> str:
    return f"{PREFIX}jobs:{model}"


def model_of_stream(name: str) -> str:
    return name.removeprefix(f"{PREFIX}jobs:")


STREAMS = tuple(stream(model) for model in MODEL_KEYS)
EVENTS = f"{PREFIX}events"
TIMELINE = f"{PREFIX}timeline"  # stream: each batch's moments on its worker (timeline.py)
DEAD = f"{PREFIX}dead"  # stream: malformed entries, moved here with where they were and why
WAITING = f"{PREFIX}waiting"  # zset: job id -> admission sequence (positions, queue bound)
RUNNING = f"{PREFIX}running"  # zset: job id -> time taken
RESERVED = f"{PREFIX}reserved"  # zset: job id -> expiry of a bot's reservation
SEQUENCE = f"{PREFIX}seq"
WORKERS = f"{PREFIX}workers"  # zset: worker name -> last heartbeat (ms)


def user(user_id: int | str) -> str:
    """zset of the user's jobs: reservations score their expiry, accepted jobs +inf."""
    return f"{PREFIX}user:{user_id}"


def accepted(user_id: int | str) -> str:
    """hash: when the user's last job was accepted (`at`, ms), for cooldowns, with the
    reservation that set it (`job`) and the time before it (`before`), put back if that
    reservation is given back."""
    return f"{PREFIX}accepted:{user_id}"


# The time of a user's last accepted job is kept as long as the longest cooldown (seconds):
# PLACE_USER_COOLDOWN's bound, which a server's cooldown shares.
KEEP_ACCEPTED_S = 86400.0


def worker(name: str) -> str:
    return f"{PREFIX}worker:{name}"


def source_picture(key: str) -> str:
    """A pixelated source a result's buttons name (placebot/discord_side/source_store.py): PNG
    bytes."""
    return f"{PREFIX}source:{key}:png"


def source_prompt(key: str) -> str:
    """A prompt and guidance a result's buttons name: JSON bytes."""
    return f"{PREFIX}source:{key}:prompt"


def server_settings(guild_id: int | str) -> str:
    """A server's /place_admin settings (placebot/servers/server_settings.py): hash, setting →
    JSON."""
    return f"{PREFIX}server:{guild_id}:settings"
