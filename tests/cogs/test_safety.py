"""The NSFW checker by channel, through the real bot over the fake Discord: PLACE_SAFETY_CHECKER
=auto (the default) checks jobs outside age-restricted channels, not in them (a thread follows
its parent), and a server's admins can have it check there too. The model's checker here
flags every image, so a checked job comes back black and its embed says so."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.engine import Renderer
from pipeline.models import ModelStore
from pipeline.outputs import read_metadata
from tests.support.bot_harness import wait_result

MANAGE_GUILD = 1 << 5
FLAGGED = "The safety checker blacked out at least one pass."


@pytest.fixture(scope="module")
def flagging_renderer(flagging_model_dir):
    return Renderer(ModelStore({"1.4": str(flagging_model_dir), "1.5": str(flagging_model_dir)},
                               device="cpu"))


def checked(result) -> bool:
    """Whether the result shows the checker's work: a footer saying so, and black passes."""
    footer = result.embeds[0].get("footer", {}).get("text")
    final = Image.open(io.BytesIO(result.attachments[0][1]))
    assert (footer == FLAGGED) is (not np.asarray(final).any())
    return footer == FLAGGED


async def test_the_checker_runs_outside_age_restricted_channels_and_not_in_them(
        fake, start_bot, flagging_renderer, flagging_model_dir):
    """Three jobs at once: in a normal channel (checked, black), in an age-restricted one and
    in a thread of it (not checked); then the server has it run everywhere, and a job in the
    age-restricted channel is checked too."""
    after_dark = fake.add_channel("after-dark", nsfw=True)
    thread = fake.add_thread(after_dark)
    model_ids = {"1.4": str(flagging_model_dir), "1.5": str(flagging_model_dir)}
    async with start_bot(renderer=flagging_renderer, model_ids=model_ids, user_max=2):
        places = {"normal": fake.slash("place", user_id=1),
                  "age-restricted": fake.slash("place", user_id=2, channel_id=after_dark),
                  "its thread": fake.slash("place", user_id=3, channel_id=thread)}
        results = {where: await wait_result(fake, i) for where, i in places.items()}
        everywhere = fake.slash("place_admin", {"where": "everywhere"}, subcommand="safety",
                                permissions=MANAGE_GUILD)
        await fake.wait_for(lambda: [t for t in everywhere.ephemeral_texts if t])
        results["age-restricted, server: everywhere"] = await wait_result(
            fake, fake.slash("place", user_id=2, channel_id=after_dark))
    assert {where: checked(result) for where, result in results.items()} == {
        "normal": True, "age-restricted": False, "its thread": False,
        "age-restricted, server: everywhere": True}
    metadata = read_metadata(results["its thread"].attachments[0][1])
    assert metadata["safety_check"] is False


async def test_a_thread_whose_parent_the_bot_missed_asks_discord_once(fake, start_bot, gated):
    """A thread in a channel the bot was never told of: its parent is fetched once (it is
    age-restricted: the job is not checked), for two jobs asked at once (the first answer is
    rate-limited, which keeps the request open while the second job needs it too)."""
    gated.close()  # the jobs' flags are all this needs: they wait at the gate
    async with start_bot(user_max=2) as bot:
        late = fake.add_channel("late", nsfw=True, announce=False)
        thread = fake.add_thread(late)
        fake.fail_next("GET", rf"/channels/{late}$", 429, retry_after=1.0)
        for user in (1, 2):
            fake.slash("place", user_id=user, channel_id=thread)
        await fake.wait_for(lambda: len(bot.jobs.queue.waiting) + len(bot.jobs.queue.running)
                            == 2)
        jobs = [*bot.jobs.queue.running, *bot.jobs.queue.waiting]
    assert [job.render.safety_check for job in jobs] == [False, False]
    fetched = [r for r in fake.requests
               if r.method == "GET" and r.path == f"/channels/{late}" and r.status == 200]
    assert len(fetched) == 1

