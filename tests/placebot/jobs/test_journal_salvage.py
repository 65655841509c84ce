from placebot.jobs.journal import Journal

PAGE = 4096


def _journal_with_jobs(path, count: int) -> None:
    journal = Journal(path)
    for index in range(count):
        # about a tenth of a page each, so the jobs span many pages
        journal.add(f"job{index:04d}", index, {"n": index, "pad": "x" * 300}, {})
    journal.close()  # checkpoints the WAL into the file


def _recovered_ids(path) -> list[str]:
    return [entry.job_id for entry in Journal(path).recover().retry]


def test_a_truncated_journal_keeps_the_rows_before_the_cut(tmp_path):
    """A file cut short (a full disk, a crash while copying) still yields its first rows."""
    path = tmp_path / "jobs.sqlite3"
    _journal_with_jobs(path, 300)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2 + 123)
    recovered = _recovered_ids(path)
    assert len(recovered) > 100 and recovered == sorted(recovered)
    assert recovered[0] == "job0000"


def test_a_torn_page_in_the_middle_loses_only_the_rows_on_it(tmp_path):
    """A damaged page costs only its rows: the rows on both sides of it are saved."""
    path = tmp_path / "jobs.sqlite3"
    _journal_with_jobs(path, 300)
    with path.open("r+b") as file:
        file.seek(10 * PAGE)
        file.write(b"\xff" * PAGE)
    recovered = _recovered_ids(path)
    assert recovered[0] == "job0000" and recovered[-1] == "job0299"
    assert 250 < len(recovered) < 300


def test_the_damaged_file_is_kept_and_its_stale_wal_not_applied_to_the_fresh_one(tmp_path):
    """Nothing is deleted, and the fresh journal starts empty, whatever WAL lay beside it."""
    path = tmp_path / "jobs.sqlite3"
    _journal_with_jobs(path, 3)
    path.rename(tmp_path / "good")
    path.write_bytes(b"garbage" * 1000)
    (tmp_path / "good").rename(path.with_name("jobs.sqlite3-wal"))  # not a WAL: junk
    journal = Journal(path)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("jobs.sqlite3.unreadable-")]
    assert any(p.read_bytes() == b"garbage" * 1000 for p in aside)
    assert journal.recover().retry == []
