"""A job is rebuilt from a store's record in one way, whichever store kept it."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.params import RenderRequest
from placebot.jobs.stored_job import InvalidJob, rebuild_job

RENDER = RenderRequest(steps=4, strength=0.5, recursions=1).resolve(random.Random(5))
DELIVERY = {"user_id": 7, "channel_id": 3000}


def test_a_journal_row_and_a_redis_record_rebuild_the_same_job():
    """Parsed JSON (the journal) and raw bytes (Redis) give the same job, reference intact."""
    from_journal = rebuild_job("abc", 7, RENDER.to_dict(), DELIVERY, alone=True)
    from_redis = rebuild_job("abc", b"7", json.dumps(RENDER.to_dict()).encode(),
                             json.dumps(DELIVERY).encode(), alone=True)
    for job in (from_journal, from_redis):
        assert (job.id, job.user_id, job.render, dict(job.delivery), job.alone) == (
            "abc", 7, RENDER, DELIVERY, True)


@pytest.mark.parametrize(("user", "render", "delivery", "says"), [
    ("seven", RENDER.to_dict(), DELIVERY, "user id 'seven' is not a number"),
    (7, {**RENDER.to_dict(), "steps": "many"}, DELIVERY, "its parameters are invalid"),
    (7, b"\xff", DELIVERY, "its parameters cannot be read as JSON"),
    (7, RENDER.to_dict(), "[1, 2]", "its delivery record must be a JSON object, not list"),
    (7, RENDER.to_dict(), None, "its delivery record cannot be read as JSON"),
])
def test_a_malformed_record_is_refused_naming_what_is_wrong(user, render, delivery, says):
    """Nothing read back is trusted: InvalidJob says which part is bad."""
    with pytest.raises(InvalidJob, match=says):
        rebuild_job("abc", user, render, delivery)
