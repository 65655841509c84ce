"""bench/timeline.py: a run's seconds split into parts that add up to it."""

from bench.timeline import summary, timeline


def row(worker: str, start: float, end: float) -> dict:
    return {"worker": worker, "jobs": 4, "read": start, "taken": start, "render_start": start,
            "render_end": end, "stored": end, "received": end, "delivered": end}


def test_two_workers_parts_add_up_and_the_tail_is_the_lone_worker():
    """Worker a renders 1-3 and 3.5-5, b 1.2-4: start 1, rendering (1-4, averaged) 2.65,
    waiting 0.35, tail 1 (a alone from 4 to 5), end 0.5: 5.5 s in all."""
    rows = [row("a", 1.0, 3.0), row("b", 1.2, 4.0), row("a", 3.5, 5.0)]
    parts = summary(rows, 5.5, workers=2)
    assert (parts["start_s"], parts["rendering_s"], parts["waiting_s"], parts["tail_s"],
            parts["end_s"]) == (1.0, 2.65, 0.35, 1.0, 0.5)
    assert parts["round_trips_s"] + parts["rendering_s"] + parts["waiting_s"] + \
        parts["tail_s"] == parts["seconds"] == 5.5
    assert parts["gap_between_batches_mean_s"] == 0.5


def test_a_worker_that_rendered_nothing_counts_as_idle():
    """Two workers, one batch: the idle worker halves the rendering; the rest is tail."""
    parts = summary([row("a", 0.5, 2.5)], 3.0, workers=2)
    assert parts["rendering_s"] == 0.0 and parts["tail_s"] == 2.0
    assert round(parts["start_s"] + parts["waiting_s"] + parts["tail_s"] + parts["end_s"],
                 4) == 3.0


def test_the_timeline_is_in_seconds_from_the_start_with_each_jobs_last_moments():
    """A batch's stored, received and delivered are its last job's."""
    batch = {"worker": "w", "batch": 1, "jobs": ["j1", "j2"], "read": 10.1, "taken": 10.2,
             "render_start": 10.3, "render_end": 11.0, "stored": {"j1": 11.1, "j2": 11.2}}
    [line] = timeline([batch], 10.0, {"j1": 11.3, "j2": 11.25}, {"j1": 11.4, "j2": 11.5})
    assert line == {"worker": "w", "jobs": 2, "read": 0.1, "taken": 0.2, "render_start": 0.3,
                    "render_end": 1.0, "stored": 1.2, "received": 1.3, "delivered": 1.5}
