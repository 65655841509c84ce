"""A SQLite journal of accepted jobs, so that a restart loses none and repeats none.

A job is written before the user is told it was accepted, and marked finished only after its
answer was delivered. On start, the jobs still marked queued are handed back in order.
A job that was recovered MAX_STARTS times without finishing (it keeps killing the process,
say) is given up on instead of retried forever.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MAX_STARTS = 3
KEEP_FINISHED_S = 7 * 86400  # finished jobs are kept a week (to look into), then pruned


@dataclass(frozen=True)
class JournalEntry:
    job_id: str
    user_id: int
    render: dict
    context: dict
    starts: int
    created: float


class Journal:
    def __init__(self, path: Path | str):
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                job_id TEXT UNIQUE NOT NULL,
                user_id INTEGER NOT NULL,
                render TEXT NOT NULL,
                context TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'queued',
                starts INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                created REAL NOT NULL,
                updated REAL NOT NULL
            )"""
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, job_id: str, user_id: int, render: dict, context: dict) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (job_id, user_id, render, context, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, user_id, json.dumps(render), json.dumps(context), now, now),
            )

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

    def state(self, job_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def prune(self, older_than_s: float = KEEP_FINISHED_S) -> int:
        """Delete finished jobs last updated more than older_than_s ago; return how many."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE state != 'queued' AND updated < ?",
                (time.time() - older_than_s,),
            )
        return cursor.rowcount

    def recover(self) -> tuple[list[JournalEntry], list[JournalEntry]]:
        """Count a start for every unfinished job; return (to retry, to give up on), in order.
        Finished jobs older than KEEP_FINISHED_S are pruned on the way, so the file stays small."""
        self.prune()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET starts = starts + 1, updated = ? WHERE state = 'queued'",
                (time.time(),),
            )
            rows = self._db.execute(
                "SELECT job_id, user_id, render, context, starts, created FROM jobs"
                " WHERE state = 'queued' ORDER BY seq"
            ).fetchall()
        entries = [
            JournalEntry(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5]) for r in rows
        ]
        retry = [e for e in entries if e.starts < MAX_STARTS]
        give_up = [e for e in entries if e.starts >= MAX_STARTS]
        for entry in give_up:
            self.mark_failed(entry.job_id, f"gave up after {entry.starts} restarts")
        return retry, give_up
