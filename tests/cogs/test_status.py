"""/place_status and the presence line."""

from tests.support.bot_harness import embed_fields, wait_result


async def test_place_status_shows_queue_model_device_mode_and_average(fake, start_bot):
    async with start_bot():
        await wait_result(fake, fake.slash("place"))
        status = fake.slash("place_status", user_id=2)
        await fake.wait_for(lambda: status.callbacks)
    callback = status.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    fields = {f["name"]: f["value"] for f in callback["data"]["embeds"][0]["fields"]}
    assert fields["Waiting"] == "0" and fields["Device"] == "cpu"
    assert "SD 1.4" in fields["Loaded model"] and fields["VRAM mode"] == "none (CPU)"
    assert fields["Average job time"].endswith(" s")


async def test_presence_shows_model_state_and_queue_length(fake, start_bot):
    async with start_bot():
        presence = await fake.wait_for(lambda: fake.presences and fake.presences[-1])
    activity = presence["activities"][0]
    assert "/place" in activity["state"] and "waiting" in activity["state"]


async def test_waiting_compatible_jobs_are_rendered_in_one_batch(fake, start_bot, gated):
    """Three jobs that wait behind a running one go to the GPU together, each with its seed."""
    async with start_bot(max_batch=4):
        gated.close()
        first = fake.slash("place", user_id=1)
        await fake.wait_for(lambda: gated.entered.is_set())
        waiting = []
        for user in (2, 3, 4):
            waiting.append(fake.slash("place", {"seed": user}, user_id=user))
            await fake.wait_for(lambda: waiting[-1].original and "position" in
                                waiting[-1].original.content)
        gated.open()
        results = [await wait_result(fake, i) for i in (first, *waiting)]
    assert gated.calls == 2
    assert [embed_fields(r)["Seed"] for r in results[1:]] == ["2", "3", "4"]


def test_a_worker_that_cannot_load_a_model_says_so_without_the_cause():
    """/place_status's line for a render worker that failed to load SD 1.5 says it takes no
    1.5 job for now; the cause (a path, a library's words) stays in that worker's log."""
    from cogs.status import worker_line

    facts = {"host": "gpu-box", "gpu": "cuda:1", "vram_mode": "full", "loaded": ["1.4"],
             "jobs_done": 3, "beat": 100.0, "cannot_load": ["1.5"]}
    title, line = worker_line(facts, now=101.0)
    assert title == "Worker gpu-box"
    assert line.endswith("cannot load SD 1.5 for now (its log says why)")
    assert "cannot load" not in worker_line({**facts, "cannot_load": []}, now=101.0)[1]
