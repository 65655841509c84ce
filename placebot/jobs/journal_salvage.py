"""Rescuing a job journal that SQLite cannot read: set the file aside, keep what still reads.

The damaged file is never deleted (the owner may want to look into it); the rows it still
yields go into the fresh journal, so a torn page costs only the jobs on that page.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def set_aside(path: Path) -> Path:
    """Rename the file (and its WAL and shared-memory files) to a dated name beside it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.unreadable-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.unreadable-{stamp}-{number}")
    for suffix in ("-wal", "-shm"):  # a stale WAL must not be applied to the fresh file
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return aside


def copy_readable_rows(source: Path, db: sqlite3.Connection, columns: tuple[str, ...]) -> int:
    """Copy every row still readable in a damaged file into db's jobs table; return how many.

    It reads a scratch copy padded to the length its header claims (SQLite refuses a
    truncated file outright, but reads the pages that are there once the length adds up),
    from both ends, since a bad page in the middle stops a scan there. Columns the old file
    lacks take the new table's defaults. `columns` must start with the ordering key and the
    job id."""
    scratch = source.with_name(source.name + ".reading")
    try:
        for suffix in ("", "-wal"):
            if source.with_name(source.name + suffix).exists():
                shutil.copyfile(source.with_name(source.name + suffix),
                                scratch.with_name(scratch.name + suffix))
        _pad_to_header_length(scratch)
        picked = [c for c in columns if c in _table_columns(scratch)]
        rows: dict[object, tuple[Any, ...]] = {}
        if picked[:2] != list(columns[:2]):  # not even the schema reads: nothing to save
            return 0
        for order in ("ASC", "DESC"):
            for row in _readable_rows(scratch, picked, order):
                rows.setdefault(row[1], row)
    finally:
        for suffix in ("", "-wal", "-shm"):
            scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
    in_order = sorted(rows.values(), key=lambda row: row[0])
    before = db.total_changes
    db.executemany(  # OR IGNORE: a row missing a required value stays in the set-aside file
        f"INSERT OR IGNORE INTO jobs ({', '.join(picked)})"
        f" VALUES ({', '.join('?' * len(picked))})", in_order)
    return db.total_changes - before


def _pad_to_header_length(path: Path) -> None:
    """Extend a truncated SQLite file with zeros to page size x page count from its header."""
    with path.open("r+b") as file:
        header = file.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        length = page_size * int.from_bytes(header[28:32], "big")
        if file.seek(0, 2) < length:
            file.truncate(length)


def _table_columns(source: Path) -> set[str]:
    db = sqlite3.connect(str(source))
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    except sqlite3.Error:
        return set()
    finally:
        db.close()


def _readable_rows(source: Path, picked: list[str], order: str) -> list[tuple]:
    """The rows a scan in this order yields before it meets a damaged page."""
    rows: list[tuple] = []
    db = sqlite3.connect(str(source))
    try:
        for row in db.execute(f"SELECT {', '.join(picked)} FROM jobs ORDER BY {picked[0]} {order}"):
            rows.append(row)
    except sqlite3.Error as exc:  # the damaged part: keep what came before it
        log.debug("journal: reading %s stopped (%s) after %d rows", source, exc, len(rows))
    finally:
        db.close()
    return rows
