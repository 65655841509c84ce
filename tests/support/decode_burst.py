"""`python -m tests.support.decode_burst FILE...`: decode every file at once through the
bot's own path (placebot.discord_side.attachments.picture_source), as users sending them together
would,
and print, as JSON, the process's resident memory before (idle, the files read) and its peak
during, in bytes, with each file's outcome."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from placebot.discord_side.attachments import picture_source


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


async def burst(files: list[bytes]) -> list[str]:
    outcomes = await asyncio.gather(*(picture_source(data, 32) for data in files),
                                    return_exceptions=True)
    return [f"{type(o).__name__}: {o}" if isinstance(o, BaseException) else f"source {o.size}"
            for o in outcomes]


if __name__ == "__main__":
    files = [Path(name).read_bytes() for name in sys.argv[1:]]
    idle = status_bytes("VmRSS")
    outcomes = asyncio.run(burst(files))
    print(json.dumps({"idle": idle, "peak": status_bytes("VmHWM"), "outcomes": outcomes}))
