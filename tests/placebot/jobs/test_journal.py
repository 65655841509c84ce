import json
import logging
import sqlite3

from placebot.jobs.journal import MAX_TRIES, Journal


def _ids(entries) -> list[str]:
    return [entry.job_id for entry in entries]


def test_unfinished_jobs_come_back_in_order(tmp_path):
    """Queued jobs are recovered in the order they were accepted, with their data."""
    journal = Journal(tmp_path / "jobs.sqlite3")
    for index in range(3):
        journal.add(f"job{index}", index, {"n": index}, {"channel_id": 1})
    journal.mark_done("job1")
    journal.close()
    recovery = Journal(tmp_path / "jobs.sqlite3").recover()
    assert _ids(recovery.retry) == ["job0", "job2"] and recovery.give_up == []
    assert recovery.retry[1].render == {"n": 2} and recovery.retry[1].context == {"channel_id": 1}


def test_finished_jobs_are_never_recovered(tmp_path):
    """Done, failed and cancelled jobs are not handed back."""
    journal = Journal(tmp_path / "j.sqlite3")
    for job_id in "abc":
        journal.add(job_id, 1, {}, {})
    journal.mark_done("a")
    journal.mark_failed("b", "boom")
    journal.mark_cancelled("c")
    recovery = journal.recover()
    assert (recovery.retry, recovery.give_up, recovery.skipped) == ([], [], [])


def test_a_job_taken_max_tries_times_is_given_up(tmp_path):
    """A job the worker took MAX_TRIES times without finishing is given up and marked failed."""
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("crasher", 1, {}, {})
    for _ in range(MAX_TRIES - 1):
        journal.mark_taken(["crasher"])
        assert _ids(journal.recover().retry) == ["crasher"]
    journal.mark_taken(["crasher"])
    recovery = journal.recover()
    assert recovery.retry == [] and _ids(recovery.give_up) == ["crasher"]
    assert journal.state("crasher") == "failed" and journal.recover().give_up == []


def test_jobs_never_taken_survive_any_number_of_restarts(tmp_path):
    """Restarts alone count no try: the jobs queued behind a crashing one are never dropped."""
    journal = Journal(tmp_path / "j.sqlite3")
    for job_id in ("crasher", "behind1", "behind2"):
        journal.add(job_id, 1, {}, {})
    for _ in range(MAX_TRIES * 2):
        recovery = journal.recover()
        if "crasher" in _ids(recovery.retry):
            journal.mark_taken(["crasher"])  # the worker takes it; the process dies
    assert _ids(recovery.retry) == ["behind1", "behind2"]
    assert journal.state("crasher") == "failed" and journal.tries("behind1") == 0


def test_a_try_given_back_by_a_clean_shutdown_does_not_count(tmp_path):
    """A job interrupted by a clean shutdown keeps all its tries."""
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("long", 1, {}, {})
    for _ in range(MAX_TRIES + 1):
        journal.mark_taken(["long"])
        journal.mark_returned(["long"])
    assert journal.tries("long") == 0 and _ids(journal.recover().retry) == ["long"]


def test_old_finished_jobs_are_pruned_and_unfinished_ones_never(tmp_path):
    """Finished jobs older than a week go; queued ones stay whatever their age."""
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("old-done", 1, {}, {})
    journal.add("old-queued", 1, {}, {})
    journal.mark_done("old-done")
    journal._db.execute("UPDATE jobs SET updated = updated - 30 * 86400")
    journal.add("new-done", 1, {}, {})
    journal.mark_done("new-done")
    recovery = journal.recover()
    assert journal.state("old-done") is None and journal.state("new-done") == "done"
    assert _ids(recovery.retry) == ["old-queued"]


def test_a_row_that_is_not_json_is_skipped_and_the_others_recovered(tmp_path, caplog):
    """A row whose data is not valid JSON is skipped, logged and marked failed; the rest run."""
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("good1", 1, {"n": 1}, {})
    journal.add("broken", 2, {}, {})
    journal.add("good2", 3, {"n": 2}, {})
    journal._db.execute("UPDATE jobs SET render = '{\"n\": ' WHERE job_id = 'broken'")
    with caplog.at_level(logging.WARNING, logger="placebot.jobs.journal"):
        recovery = journal.recover()
    assert _ids(recovery.retry) == ["good1", "good2"]
    assert [row.job_id for row in recovery.skipped] == ["broken"]
    assert journal.state("broken") == "failed" and "broken" in caplog.text


def test_a_row_the_caller_cannot_decode_is_skipped(tmp_path):
    """decode's error on one row skips that row only; the others come back decoded."""
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("ok", 1, {"steps": 4}, {})
    journal.add("bad", 2, {"steps": "many"}, {})

    def decode(entry):
        if not isinstance(entry.render["steps"], int):
            raise ValueError(f"steps must be an integer, got {entry.render['steps']!r}")
        return entry.render["steps"]

    recovery = journal.recover(decode)
    assert recovery.retry == [4] and "steps must be an integer" in recovery.skipped[0].reason


def test_a_file_that_is_not_a_database_is_set_aside_and_a_fresh_one_used(tmp_path, caplog):
    """Garbage in the journal's place: start anyway, keep the file under a dated name, say so."""
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not SQLite " * 200)
    with caplog.at_level(logging.ERROR, logger="placebot.jobs.journal"):
        journal = Journal(path)
    journal.add("new", 1, {}, {})
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("jobs.sqlite3.unreadable-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not SQLite")
    assert _ids(journal.recover().retry) == ["new"]
    assert journal.damage is not None and aside[0].name in journal.damage
    assert [r.message for r in caplog.records] == [journal.damage]  # one line for the owner


def test_a_journal_from_before_tries_were_counted_opens_and_recovers(tmp_path):
    """A file written by the previous schema (a 'starts' column, no 'tries') still works."""
    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.execute("""CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT UNIQUE NOT NULL, user_id INTEGER NOT NULL, render TEXT NOT NULL,
        context TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
        starts INTEGER NOT NULL DEFAULT 0, error TEXT, created REAL NOT NULL,
        updated REAL NOT NULL)""")
    old.execute("INSERT INTO jobs (job_id, user_id, render, context, starts, created, updated)"
                " VALUES ('old', 5, ?, '{}', 2, 1.0, 1.0)", (json.dumps({"n": 1}),))
    old.commit()
    old.close()
    journal = Journal(path)
    assert [(e.job_id, e.tries, e.render) for e in journal.recover().retry] == [("old", 0,
                                                                                 {"n": 1})]
    journal.mark_taken(["old"])
    assert journal.tries("old") == 1 and journal.damage is None


def test_a_held_reservation_becomes_its_job_or_is_recovered_as_never_queued(tmp_path):
    """hold() writes a reservation with where its answer goes; add() turns it into the job;
    drop_held() forgets it; one left held is recovered as never queued (and marked failed),
    never run."""
    journal = Journal(tmp_path / "jobs.sqlite3")
    journal.hold("queued-one", 1, {"channel_id": 5})
    journal.add("queued-one", 1, {"model": "1.4"}, {"channel_id": 5})
    journal.hold("given-back", 2, {"channel_id": 6})
    journal.drop_held("given-back")
    journal.hold("orphan", 3, {"channel_id": 7})
    recovery = journal.recover()
    assert [entry.job_id for entry in recovery.retry] == ["queued-one"]
    assert recovery.unqueued == [("orphan", 3, {"channel_id": 7})]
    assert journal.state("given-back") is None and journal.state("orphan") == "failed"
    assert journal.recover().unqueued == []
