"""Where a run's seconds go: the batches' moments (placebot/distributed/timeline.py, noted by
the render workers) and when the bot received and delivered each result, turned into one
timeline and a summary whose parts add up to the measured time:

    start       submit → the first render starts (the queue's round trips: admit, read, take)
    rendering   the GPUs rendering (per worker, averaged over the workers), until the first
                worker is done for the run
    waiting     the rest of that span: a worker idle between its batches, or not yet started
    tail        one worker done, another still rendering its last batch
    end         the last render ends → its results are stored, read by the bot, delivered
                (round trips again)

round_trips_s is start + end. All in seconds, from the run's start.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


def _overlap(start: float, end: float, low: float, high: float) -> float:
    return max(0.0, min(end, high) - max(start, low))


def timeline(batches: Iterable[dict], t0: float, received: Mapping[str, float],
             delivered: Mapping[str, float]) -> list[dict]:
    """Each rendered batch's moments, in seconds from t0, in the order they were taken."""
    rows = []
    for batch in batches:
        if batch.get("render_start") is None or batch.get("render_end") is None:
            continue
        jobs = batch["jobs"]

        def last(times: Mapping[str, float], jobs=jobs) -> float | None:
            known = [times[job] for job in jobs if job in times]
            return round(max(known) - t0, 4) if known else None

        rows.append({"worker": batch["worker"], "jobs": len(jobs),
                     "read": round(batch["read"] - t0, 4),
                     "taken": round(batch["taken"] - t0, 4),
                     "render_start": round(batch["render_start"] - t0, 4),
                     "render_end": round(batch["render_end"] - t0, 4),
                     "stored": last(batch["stored"]), "received": last(received),
                     "delivered": last(delivered)})
    return sorted(rows, key=lambda row: row["taken"])


def summary(rows: list[dict], seconds: float, workers: int) -> dict:
    """The run's `seconds` split as the module docstring says; `workers` the number that
    served the run (one that rendered nothing counts, as idle)."""
    if not rows:
        return {"seconds": round(seconds, 4), "start_s": round(seconds, 4)}
    by_worker: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_worker[row["worker"]].append(row)
    first_start = min(row["render_start"] for row in rows)
    last_end = max(row["render_end"] for row in rows)
    ends = [max(r["render_end"] for r in mine) for mine in by_worker.values()]
    ends += [first_start] * max(0, workers - len(by_worker))  # never rendered: done at once
    first_done = min(ends)
    rendering = sum(_overlap(r["render_start"], r["render_end"], first_start, first_done)
                    for r in rows) / max(workers, len(by_worker))
    gaps = [later["render_start"] - earlier["render_end"]
            for mine in by_worker.values()
            for earlier, later in zip(sorted(mine, key=lambda r: r["render_start"]),
                                      sorted(mine, key=lambda r: r["render_start"])[1:],
                                      strict=False)]
    start, end, tail = first_start, seconds - last_end, last_end - first_done
    waiting = (first_done - first_start) - rendering
    return {
        "seconds": round(seconds, 4),
        "rendering_s": round(rendering, 4), "waiting_s": round(waiting, 4),
        "round_trips_s": round(start + end, 4), "tail_s": round(tail, 4),
        "start_s": round(start, 4), "end_s": round(end, 4),
        "batches": len(rows), "workers": max(workers, len(by_worker)),
        "gap_between_batches_mean_s": round(sum(gaps) / len(gaps), 4) if gaps else None,
        "gap_between_batches_max_s": round(max(gaps), 4) if gaps else None,
        "render_s_per_batch_mean": round(sum(r["render_end"] - r["render_start"]
                                             for r in rows) / len(rows), 4),
    }
