"""A render worker of the distributed mode: `python -m placebot.gpu_worker`.

It reads the same settings as the bot (`.env`, PLACE_*; no DISCORD_TOKEN needed), takes
batches of jobs from Redis at PLACE_REDIS_URL and renders them on one GPU (PLACE_DEVICE=cuda:1
for the second), with the same lazy model loading, VRAM modes, compile and batching as the
bot's own worker: it runs placebot.jobs.worker.Worker on a Redis job source. Start one per GPU, on
any machine that reaches Redis. SIGTERM/SIGINT: the running batch gets a grace period, then
its jobs go back to the queue for another worker.

The process starts and ends as bot.py's does (placebot/process.py); run_worker is the one
place its parts are built (Redis client and job store, renderer, job source, reporter, Worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from placebot.process import build_renderer, run_process
from placebot.settings import Settings, SettingsError
from placebot.stopping import STOP_GRACE_S, install_stop_handlers

log = logging.getLogger("placebot.distributed.render_worker")


def _facts(settings: Settings, renderer, reporter, worker, source, name: str):
    import socket

    def facts() -> dict:
        store = renderer.store.describe()
        return {"host": socket.gethostname(), "gpu": _gpu_name(settings.device),
                "device": store["device"], "vram_mode": store["vram_mode"],
                "loaded": store["loaded"], "jobs_done": reporter.jobs_done,
                "average_s": worker.timer.average, "worker": name,
                "cannot_load": source.cannot_load_now()}

    return facts


def redis_url(settings: Settings) -> str:
    """PLACE_REDIS_URL, where a render worker takes its jobs; SettingsError when it is unset."""
    if settings.redis_url is None:
        raise SettingsError("PLACE_REDIS_URL", "is not set; a render worker takes its jobs "
                            "from Redis (redis://:password@host:6379/0)")
    return settings.redis_url


def _gpu_name(device: str) -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if device not in ("cuda", "auto"):
        return device
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (GPU {visible or 0})"
    except Exception:  # a status line must never stop the worker
        log.debug("no GPU name", exc_info=True)
    return "cpu"


async def run_worker(settings: Settings, *, renderer=None, timings=None, name=None,
                     stop: asyncio.Event | None = None) -> str | None:
    """Render jobs from Redis until `stop` is set (or a stop signal when it is None).
    Returns why the process must restart (a stuck render engine), or None."""
    from placebot.distributed import keys
    from placebot.distributed.connection import UNREACHABLE, Outage, connect, until_reachable
    from placebot.distributed.store import RedisJobStore
    from placebot.distributed.worker_reporter import RedisReporter
    from placebot.distributed.worker_side import RedisJobSource, worker_name

    name = name or worker_name()
    uninstall_handlers = None
    if stop is None:  # before anything waits: a stop signal must end even the first wait
        stop = asyncio.Event()
        uninstall_handlers = install_stop_handlers(asyncio.get_running_loop(), stop.set)
    client = connect(redis_url(settings))
    store = RedisJobStore(client, timings)
    reachable = asyncio.ensure_future(until_reachable(
        Outage(log, f"worker {name}"), store.ensure_groups, give_up_s=1e9,
        refusal_is_fatal=True))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([reachable, stopped], return_when=asyncio.FIRST_COMPLETED)
    if not reachable.done():  # stopped before Redis was ever reached: nothing to hand back
        reachable.cancel()
        if uninstall_handlers is not None:
            uninstall_handlers()
        log.info("render worker %s stopping (Redis was never reached)", name)
        await client.aclose()
        return None
    stopped.cancel()
    try:
        reachable.result()  # raises what the wait for Redis raised (a refused login)
    except BaseException:
        if uninstall_handlers is not None:
            uninstall_handlers()
        await client.aclose()
        raise
    # the engine (torch) only now: a wrong password is reported in a second, not after it
    from placebot.jobs.worker import Worker

    renderer = renderer or build_renderer(settings)
    source = RedisJobSource(store, renderer, name)
    reporter = RedisReporter(source)
    restart: list[str] = []

    def on_stuck(error: Exception) -> None:  # a fresh engine is a fresh process (watchdog)
        restart.append(str(error))
        stop.set()

    worker = Worker(source, renderer, reporter, max_batch=settings.max_batch,
                    job_timeout_s=settings.job_timeout_s, on_stuck=on_stuck)
    duties = [asyncio.create_task(source.beat_forever(
                  _facts(settings, renderer, reporter, worker, source, name)), name="beat"),
              asyncio.create_task(source.watch_cancels_forever(), name="cancels")]
    log.info("render worker %s taking jobs from Redis (batches of up to %d)", name,
             settings.max_batch)
    worker.start()
    await stop.wait()
    if uninstall_handlers is not None:
        uninstall_handlers()
    log.info("render worker %s stopping", name)
    await worker.stop(STOP_GRACE_S)
    await source.drain()
    for task in duties:
        task.cancel()
    try:  # off the list at once, not after its time to live
        await client.zrem(keys.WORKERS, name)
    except UNREACHABLE as exc:
        log.warning("render worker %s could not take itself off the worker list (%s); it "
                    "drops off once its heartbeat is %.0f s old", name, exc,
                    store.timings.worker_ttl_s)
    await client.aclose()
    return restart[0] if restart else None


def main() -> int:
    """The render worker's process: started and ended as bot.py's (placebot/process.py)."""
    return run_process(run_worker, need_token=False, check=redis_url)


if __name__ == "__main__":
    sys.exit(main())
