"""The filesystem spool's index: one SQLite row per waiting (or recently listed) queue entry.

Owns: ``spool/index.sqlite``, a cache of each entry's listing row, keyed by
queue ID, with the ``key`` (inode, mtime, size) of the entry file it was read
from and an index on ``(state, next_attempt)``. It answers ``due`` without
reading any entry and lets a listing read only the entries whose file changed.

Who writes it: ``FilesystemSpool.save`` and ``create`` for entries entering or
leaving a waiting state (never on the hot path of a message that only stays
active), and every listing for the rows it had to read again. A row is a
cache, never the truth: a listing checks every row's key against the file,
the scheduler checks every due entry under its lock, and ``reconcile`` (run by
the scheduler) repairs what a crash between the file write and the row write
left. A row only replaces one read from an older entry version (``updated_at``).
The database runs without fsync: after a power cut ``reconcile`` rebuilds it.

Must not: decide anything about an entry; be needed for reading one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from mailpipe.spool.interface import Listed

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, qsize INTEGER NOT NULL, state TEXT NOT NULL, stage TEXT NOT NULL,
    sender TEXT NOT NULL, recipients TEXT NOT NULL, domains TEXT NOT NULL, size INTEGER NOT NULL,
    received_at REAL NOT NULL, updated_at REAL NOT NULL, next_attempt REAL, attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS by_due ON rows (state, next_attempt);
"""
COLUMNS = ("id", "key", "qsize", "state", "stage", "sender", "recipients", "domains", "size", "received_at",
           "updated_at", "next_attempt", "attempts", "last_error")
UPSERT = (f"INSERT INTO rows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
          f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])} "
          "WHERE excluded.updated_at >= rows.updated_at OR excluded.state = 'corrupt'")
BUSY_TIMEOUT = 5.0          #: seconds another process may hold the write lock before a write gives up
CACHE_KB = 256              #: page cache per connection: a listing streams, it needs no big cache
SEP = "\n"                  #: joins addresses in one column (no address contains a newline)


class IndexRow:
    """A stored row: the listing row plus the file key and queue-file size it was built from."""
    __slots__ = ("key", "qsize", "row")

    def __init__(self, key: str, qsize: int, row: Listed) -> None:
        self.key, self.qsize, self.row = key, qsize, row


class EntryIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _db(self) -> sqlite3.Connection:
        """This process's connection (a forked child opens its own; a broken file is rebuilt)."""
        if self._conn is None or self._pid != os.getpid():
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError:       # not a database (torn by a power cut): it is only a cache
                self.path.unlink(missing_ok=True)
                self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        conn.executescript(SCHEMA)
        self._same_owner_as_spool()
        return conn

    def _same_owner_as_spool(self) -> None:
        """Run as root (an operator's ``mailpipe queue list``), give the files to the spool's owner,
        so the workers can still write the index that root created."""
        if os.geteuid() != 0:
            return
        owner = os.stat(self.path.parent)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chown(f"{self.path}{suffix}", owner.st_uid, owner.st_gid)

    def put(self, rows: Iterable[IndexRow]) -> None:
        values = [_values(r) for r in rows]
        if values:
            with self._lock:
                db = self._db()
                with _transaction(db):
                    db.executemany(UPSERT, values)

    def remove(self, queue_ids: Iterable[str]) -> None:
        ids = [(i,) for i in queue_ids]
        if ids:
            with self._lock:
                db = self._db()
                with _transaction(db):
                    db.executemany("DELETE FROM rows WHERE id = ?", ids)

    def rows(self) -> Iterator[IndexRow]:
        """Every stored row, by queue ID (streamed: a cursor, not a list)."""
        with self._lock:
            self._db()                          # the file and its schema exist
        reader = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        reader.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        try:                                    # its own connection: a snapshot that the listing's writes leave alone
            for values in reader.execute(f"SELECT {', '.join(COLUMNS)} FROM rows ORDER BY id"):
                yield _row(values)
        finally:
            reader.close()

    def due(self, now: float, limit: int) -> list[str]:
        with self._lock:
            found = self._db().execute("SELECT id FROM rows WHERE state = 'deferred' AND next_attempt <= ? "
                                       "ORDER BY next_attempt LIMIT ?", (now, limit)).fetchall()
        return [queue_id for (queue_id,) in found]

    def ids_in(self, states: tuple[str, ...]) -> set[str]:
        with self._lock:
            found = self._db().execute(f"SELECT id FROM rows WHERE state IN ({', '.join('?' * len(states))})",
                                       states).fetchall()
        return {queue_id for (queue_id,) in found}


class _transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _values(r: IndexRow) -> tuple:
    row = r.row
    return (row.id, r.key, r.qsize, row.state, row.stage, row.sender, SEP.join(row.recipients),
            SEP.join(row.remote_domains), row.size, row.received_at, row.updated_at, row.next_attempt,
            row.attempts, row.last_error)


def _row(v: tuple) -> IndexRow:
    row = Listed(v[0], v[3], v[4], v[5], v[6].split(SEP) if v[6] else [], v[7].split(SEP) if v[7] else [],
                 v[8], v[9], v[10], v[11], v[12], v[13])
    return IndexRow(v[1], v[2], row)
