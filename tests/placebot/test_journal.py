from placebot.journal import MAX_STARTS, Journal


def test_unfinished_jobs_come_back_in_order(tmp_path):
    journal = Journal(tmp_path / "jobs.sqlite3")
    for index in range(3):
        journal.add(f"job{index}", index, {"n": index}, {"channel_id": 1})
    journal.mark_done("job1")
    journal.close()
    retry, give_up = Journal(tmp_path / "jobs.sqlite3").recover()
    assert [e.job_id for e in retry] == ["job0", "job2"] and give_up == []
    assert retry[1].render == {"n": 2} and retry[1].context == {"channel_id": 1}


def test_finished_jobs_are_never_recovered(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("a", 1, {}, {})
    journal.add("b", 1, {}, {})
    journal.add("c", 1, {}, {})
    journal.mark_done("a")
    journal.mark_failed("b", "boom")
    journal.mark_cancelled("c")
    assert journal.recover() == ([], [])


def test_a_job_recovered_max_starts_times_is_given_up(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("stuck", 1, {}, {})
    for _ in range(MAX_STARTS - 1):
        retry, give_up = journal.recover()
        assert [e.job_id for e in retry] == ["stuck"] and give_up == []
    retry, give_up = journal.recover()
    assert retry == [] and [e.job_id for e in give_up] == ["stuck"]
    assert journal.state("stuck") == "failed" and journal.recover() == ([], [])


def test_old_finished_jobs_are_pruned_and_unfinished_ones_never(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.add("old-done", 1, {}, {})
    journal.add("old-queued", 1, {}, {})
    journal.mark_done("old-done")
    journal._db.execute("UPDATE jobs SET updated = updated - 30 * 86400")
    journal.add("new-done", 1, {}, {})
    journal.mark_done("new-done")
    retry, _ = journal.recover()
    assert journal.state("old-done") is None and journal.state("new-done") == "done"
    assert [e.job_id for e in retry] == ["old-queued"]
