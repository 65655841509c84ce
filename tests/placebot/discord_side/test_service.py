"""Start-up recovery reads journal rows of any version, and skips a malformed one."""

import time

from placebot.jobs.journal import Journal
from tests.support.bot_harness import embed_fields

# Rows as the first version wrote them (no schema version; passes, not recursions).
OLD_ROW = {"canvas": "2017", "x": 10, "y": 20, "model": "1.4", "seed": 7, "strength": 0.5,
           "steps": 4, "passes": 2}
BROKEN_ROW = {**OLD_ROW, "seed": "seven"}


def _context(fake, user_id):
    return {"user_id": user_id, "channel_id": int(fake.channel_id), "guild_id": None,
            "created_at": time.time() - 3600, "size_limit": 10 * 1024 * 1024}


async def test_old_rows_are_rendered_and_a_malformed_one_is_skipped(fake, start_bot, tmp_path):
    """A journal row from an older version still runs; a bad row is marked failed, not fatal."""
    data = tmp_path / "data"
    journal = Journal(data / "jobs.sqlite3")
    journal.add("0123456789ab", 1, OLD_ROW, _context(fake, 1))
    journal.add("ba9876543210", 2, BROKEN_ROW, _context(fake, 2))
    journal.close()
    async with start_bot(data_dir=data) as bot:
        posted = await fake.wait_for(
            lambda: [m for m in fake.messages.values() if m.embeds], timeout=60)
        await fake.wait_for(lambda: bot.jobs.journal.state("0123456789ab") == "done")
        assert bot.jobs.journal.state("ba9876543210") == "failed"
    assert embed_fields(posted[0])["Seed"] == "7"



async def test_a_job_is_in_the_journal_before_its_user_is_told_it_is_queued(
        fake, start_bot, gated, tmp_path):
    """When "Queued" reaches Discord the job is already written down: a crash between the
    two loses nothing."""
    import sqlite3

    data = tmp_path / "data"
    rows_when_told: list[int] = []  # the user's rows in the journal, each time "Queued" is said

    def count_rows_when_queued_is_said(rec):
        if rec.method == "PATCH" and "Queued" in str((rec.json or {}).get("content")):
            user = next(i.user_id for i in fake.interactions if i.token in rec.path)
            with sqlite3.connect(data / "jobs.sqlite3") as db:
                rows_when_told.append(db.execute(
                    "SELECT count(*) FROM jobs WHERE user_id = ?", (user,)).fetchone()[0])

    fake.on_request.append(count_rows_when_queued_is_said)
    async with start_bot(data_dir=data, max_batch=1):
        gated.close()
        fake.slash("place", user_id=1)  # runs, held at the gate
        await fake.wait_for(lambda: gated.entered.is_set())
        waiting = fake.slash("place", user_id=2)  # waits: told "Queued: position 1"
        await fake.wait_for(lambda: waiting.original and "Queued" in waiting.original.content)
    assert rows_when_told and set(rows_when_told) == {1}
