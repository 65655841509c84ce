"""What crosses Redis: results and progress as raw pixels, checked before use."""

from __future__ import annotations

import json
import random
import re

import pytest
from PIL import Image

from pipeline.image_source import tiles_text
from pipeline.params import RenderJob, RenderRequest
from pipeline.results import RenderResult
from placebot.distributed.codec import (
    InvalidJob,
    MalformedEntry,
    decode_progress,
    decode_render,
    decode_result,
    encode_progress,
    encode_render,
    encode_result,
    parse_event,
)

JOB = RenderRequest(steps=4, strength=0.5, recursions=1).resolve(random.Random(3))


def result() -> RenderResult:
    frames = [Image.new("RGB", (512, 512), (n * 60, 10, 200)) for n in range(JOB.passes + 1)]
    return RenderResult(job=JOB, tiles=Image.new("RGB", (32, 32), (1, 2, 3)), frames=frames,
                        pass_seconds=[0.5] * JOB.passes, model_id="m")


def as_read(fields: dict) -> dict:
    """Fields as redis-py returns them: bytes names and values."""
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def test_a_result_round_trips_pixel_for_pixel():
    """A result encoded by a worker decodes on the bot to the same pixels and facts."""
    sent = result()
    back = decode_result(as_read(encode_result(sent)), JOB)
    assert [f.tobytes() for f in back.frames] == [f.tobytes() for f in sent.frames]
    assert back.tiles.tobytes() == sent.tiles.tobytes() and back.pass_seconds == [0.5, 0.5]


def test_the_prompt_a_cut_prompt_was_rendered_with_crosses_redis():
    """A prompt cut at CLIP's 77 tokens comes back with what counted (the "Prompt cut" field)."""
    sent = result()
    sent.prompt_used = "a castle on a hill"
    assert decode_result(as_read(encode_result(sent)), JOB).prompt_used == "a castle on a hill"


def test_a_frame_whose_bytes_disagree_with_its_size_is_refused():
    """A frame cut short in Redis is refused with the sizes named, not built."""
    fields = as_read(encode_result(result()))
    fields[b"frame1"] = fields[b"frame1"][:-3]
    with pytest.raises(InvalidJob, match="512x512 has 786429 bytes"):
        decode_result(fields, JOB)


def test_progress_frames_travel_shrunk_to_preview_size():
    """Progress previews of 512x512 frames arrive 192 high: less to move, same strip."""
    frames = result().frames[:2]
    number, back = decode_progress(as_read(encode_progress(1, frames)), JOB)
    assert number == 1 and [f.size for f in back] == [(192, 192), (192, 192)]


def test_a_picture_job_with_a_prompt_crosses_redis_whole():
    """A /dream job (a user's picture, carried as its tiles) with a prompt and guidance reads
    back equal to what was queued: the codec carries whatever RenderJob carries."""
    tiles = tiles_text(Image.new("RGB", (32, 32), (200, 30, 90)))
    job = RenderJob(picture="0123456789abcdef", offset=0, tiles=tiles, seed=5, steps=4,
                    strength=0.5, recursions=1, prompt="a castle", guidance=6.0)
    assert decode_render(encode_render(job)) == job


def test_a_job_the_bot_would_refuse_is_refused_from_redis():
    """A stored job whose prompt exceeds its bound is refused, the parameter named."""
    job = RenderRequest(steps=4, strength=0.5, recursions=1, prompt="x").resolve(
        random.Random(1))
    stored = json.loads(encode_render(job))
    stored["prompt"] = "x" * 5000
    with pytest.raises(InvalidJob, match="prompt"):
        decode_render(json.dumps(stored))


@pytest.mark.parametrize(("fields", "reason"), [
    ({b"kind": b"done", b"seq": b"1"}, "it has no 'job' field"),
    ({b"job": b"\xff", b"kind": b"done", b"seq": b"1"}, "'job' field is not valid UTF-8"),
    ({b"job": b"../../x", b"kind": b"done", b"seq": b"1"}, "is not an id"),
    ({b"job": b"a1", b"kind": b"boom", b"seq": b"1"}, "kind 'boom' is none of"),
    ({b"job": b"a1", b"kind": b"done", b"seq": b"0"}, "not a whole number >= 1"),
    ({b"job": b"a1", b"kind": b"done", b"seq": "²".encode()}, "not a whole number >= 1"),
    ({b"job": b"a1", b"kind": b"failed", b"seq": b"2"}, "it has no 'error' field"),
])
def test_an_event_entry_no_bot_can_use_is_malformed_with_the_reason(fields, reason):
    """An event entry is checked before anything reads it: its job id, kind, sequence
    number (and a failure's reason) must be there, as text."""
    with pytest.raises(MalformedEntry, match=re.escape(reason)):
        parse_event("1-0", fields)


def test_a_sound_event_entry_is_read_with_its_sequence_number():
    """job, kind and seq come back as text and a number."""
    event = parse_event("5-1", {b"job": b"ab12", b"kind": b"progress", b"seq": b"3"})
    assert (event.entry_id, event.job_id, event.kind, event.seq) == ("5-1", "ab12",
                                                                     "progress", 3)
    assert not event.ending and parse_event("5-2", {b"job": b"ab12", b"kind": b"done",
                                                    b"seq": b"4"}).ending
