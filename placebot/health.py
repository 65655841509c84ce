"""A liveness file: the bot touches it while connected to Discord; Docker's HEALTHCHECK reads it.

`python -m placebot.health` exits 0 when the heartbeat is fresh, 1 otherwise: "healthy" means
connected, not merely that the process exists.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

FILENAME = "heartbeat"
EVERY_S = 20
STALE_AFTER_S = 90


def heartbeat_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILENAME


def beat(data_dir: Path) -> None:
    path = heartbeat_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time():.0f}\n")


def is_fresh(data_dir: Path, now: float | None = None) -> bool:
    try:
        stamp = float(heartbeat_path(data_dir).read_text())
    except (OSError, ValueError):
        return False
    return (now or time.time()) - stamp < STALE_AFTER_S


def main() -> int:
    data_dir = Path(os.environ.get("PLACE_DATA_DIR") or "data")
    fresh = is_fresh(data_dir)
    print("connected" if fresh else "not connected (no fresh heartbeat)")
    return 0 if fresh else 1


if __name__ == "__main__":
    sys.exit(main())
