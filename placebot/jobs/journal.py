"""A SQLite journal of accepted jobs, so that a restart loses none and repeats none.

A job is written before the user is told it was accepted, and marked finished only after its
answer was delivered. On start, the jobs still marked queued are handed back in order.

Tries are counted when the worker takes a job (as arq does), not when the process starts: a
job that keeps killing the process runs out of its MAX_TRIES and is given up on, while the
jobs queued behind it, which never began, survive any number of restarts. A job that a clean
shutdown interrupted gets its try back (it did not kill anything).

The bot must start whatever the file holds (a crash loop under a restart policy helps no one):
a file SQLite cannot read is set aside under a dated name and the rows it still yields are
copied into a fresh one; a row that cannot be decoded is skipped, logged and marked failed.
The owner gets one line saying what happened (`Journal.damage`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from placebot.jobs.journal_salvage import copy_readable_rows, set_aside

log = logging.getLogger(__name__)

MAX_TRIES = 3
FILENAME = "jobs.sqlite3"  # in PLACE_DATA_DIR
KEEP_FINISHED_S = 7 * 86400  # finished jobs are kept a week (to look into), then pruned
COLUMNS = ("seq", "job_id", "user_id", "render", "context", "state", "tries", "error",
           "created", "updated")
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT UNIQUE NOT NULL,
    user_id INTEGER NOT NULL,
    render TEXT NOT NULL,
    context TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    tries INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
)"""

T = TypeVar("T")


@dataclass(frozen=True)
class JournalEntry:
    job_id: str
    user_id: int
    render: dict
    context: dict
    tries: int
    created: float


@dataclass(frozen=True)
class SkippedRow:
    """A journal row that could not be decoded: kept in the file (marked failed), not run."""

    job_id: str
    reason: str


@dataclass
class Recovery(Generic[T]):
    """What recover() found: jobs to run again, jobs given up on, rows it could not decode."""

    retry: list[T] = field(default_factory=list)
    give_up: list[T] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    # reservations whose job never came (the bot stopped in between): (job id, context)
    unqueued: list[tuple[str, int, dict]] = field(default_factory=list)  # id, user, delivery


class Journal:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.damage: str | None = None  # one line for the owner when the file was set aside
        self._lock = threading.Lock()
        if str(path) == ":memory:":
            self._db = _open(":memory:")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _open(str(self.path))
        except sqlite3.OperationalError:  # locked, no permission: not the file's fault
            raise
        except sqlite3.DatabaseError as exc:  # not a database, truncated, malformed
            self._db = self._replace_unreadable_file(exc)

    def _replace_unreadable_file(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Move the file aside (never delete it), start a fresh one, copy in what still reads."""
        aside = set_aside(self.path)
        db = _open(str(self.path))
        saved = copy_readable_rows(aside, db, COLUMNS)
        self.damage = (f"the job journal {self.path} could not be read ({exc}): it was set "
                       f"aside as {aside.name} and {saved} job(s) were saved from it")
        log.error("%s", self.damage)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, job_id: str, user_id: int, render: Mapping, context: Mapping) -> None:
        """Keep an accepted job: its render parameters and its delivery reference (`context`,
        kept and handed back, never read here). Its held reservation, if one was written,
        becomes it."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (job_id, user_id, render, context, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET"
                " render = excluded.render, context = excluded.context, state = 'queued',"
                " updated = excluded.updated WHERE state = 'held'",
                (job_id, user_id, json.dumps(dict(render)), json.dumps(dict(context)), now,
                 now),
            )

    def hold(self, job_id: str, user_id: int, context: Mapping) -> None:
        """A reservation, with where its answer goes, before its job exists: a restart
        before add() or drop_held() finds it (recover: `unqueued`) and its user is told."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (job_id, user_id, render, context, state, created, updated)"
                " VALUES (?, ?, '{}', ?, 'held', ?, ?)",
                (job_id, user_id, json.dumps(dict(context)), now, now),
            )

    def drop_held(self, job_id: str) -> None:
        """The reservation was given back: its user was answered by its bot."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE job_id = ? AND state = 'held'", (job_id,))

    def _set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated = ? WHERE job_id = ?",
                (state, error, time.time(), job_id),
            )

    def mark_done(self, job_id: str) -> None:
        self._set_state(job_id, "done")

    def mark_failed(self, job_id: str, error: str) -> None:
        self._set_state(job_id, "failed", error)

    def mark_cancelled(self, job_id: str) -> None:
        self._set_state(job_id, "cancelled")

    def mark_taken(self, job_ids: Iterable[str]) -> None:
        """The worker took these jobs: count a try for each (before it renders them)."""
        self._add_tries(job_ids, +1)

    def mark_returned(self, job_ids: Iterable[str]) -> None:
        """A clean shutdown put these taken jobs back: the try does not count against them."""
        self._add_tries(job_ids, -1)

    def _add_tries(self, job_ids: Iterable[str], delta: int) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "UPDATE jobs SET tries = MAX(0, tries + ?), updated = ? WHERE job_id = ?",
                [(delta, now, job_id) for job_id in job_ids],
            )

    def state(self, job_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def tries(self, job_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT tries FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def prune(self, older_than_s: float = KEEP_FINISHED_S) -> int:
        """Delete finished jobs last updated more than older_than_s ago; return how many."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE state != 'queued' AND updated < ?",
                (time.time() - older_than_s,),
            )
        return cursor.rowcount

    def recover(self, decode: Callable[[JournalEntry], T] | None = None) -> Recovery[T]:
        """The unfinished jobs, in order: those with tries left to run again, the others to
        give up on (marked failed here). `decode` turns an entry into the caller's job; a row
        that it (or JSON) cannot decode is skipped, logged and marked failed, never fatal.
        Finished jobs older than KEEP_FINISHED_S are pruned on the way, so the file stays small.
        """
        self.prune()
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, user_id, render, context, tries, created FROM jobs"
                " WHERE state = 'queued' ORDER BY seq"
            ).fetchall()
        recovery: Recovery = Recovery()
        with self._lock:
            held = self._db.execute(
                "SELECT job_id, user_id, context FROM jobs WHERE state = 'held' ORDER BY seq"
            ).fetchall()
        for job_id, user_id, context in held:
            self.mark_failed(str(job_id), "the bot stopped before the job was queued")
            try:
                recovery.unqueued.append((str(job_id), int(user_id), json.loads(context)))
            except ValueError:
                log.warning("journal: the held reservation %s cannot be decoded", job_id)
        for row in rows:
            try:
                entry = _entry(row)
                job = decode(entry) if decode is not None else entry
            except Exception as exc:  # one bad row must not stop the bot; logged, not lost
                skipped = SkippedRow(str(row[0]), f"{type(exc).__name__}: {exc}")
                log.warning("journal: skipping job %s, its row cannot be decoded (%s)",
                            skipped.job_id, skipped.reason)
                self.mark_failed(skipped.job_id, f"unreadable journal row: {skipped.reason}")
                recovery.skipped.append(skipped)
                continue
            if entry.tries >= MAX_TRIES:
                self.mark_failed(entry.job_id, f"gave up after {entry.tries} tries")
                recovery.give_up.append(job)
            else:
                recovery.retry.append(job)
        if recovery.skipped:
            log.error("journal: %d job(s) could not be decoded and were skipped (%s); %d "
                      "recovered", len(recovery.skipped),
                      ", ".join(s.job_id for s in recovery.skipped), len(recovery.retry))
        return recovery


def _entry(row: tuple) -> JournalEntry:
    job_id, user_id, render, context, tries, created = row
    entry = JournalEntry(str(job_id), int(user_id), json.loads(render), json.loads(context),
                         int(tries), float(created))
    if not isinstance(entry.render, dict) or not isinstance(entry.context, dict):
        raise ValueError("render and context must be JSON objects")
    return entry


def _open(path: str) -> sqlite3.Connection:
    """Connect, check the file is sound, and bring its schema up to date."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "tries" not in columns:  # a file from before tries were counted per take
            db.execute("ALTER TABLE jobs ADD COLUMN tries INTEGER NOT NULL DEFAULT 0")
    except BaseException:
        db.close()
        raise
    return db
