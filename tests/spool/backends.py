"""The spool backends the conformance suite runs against, and how a test reaches each.

A backend is a ``Backend``: ``open()`` gives a fresh handle on one store (a new
process calls it too, so it must be picklable), ``corrupt(id)`` damages one
stored entry for real, as a disk or an operator would. ``pg`` runs against a
throw-away database on the shared PostgreSQL (``tests.spool.pgdb``): one per test
session, emptied between tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from mailpipe.spool import spool_at
from mailpipe.spool.interface import Spool


@dataclass(frozen=True)
class FilesystemBackend:
    root: Path

    def open(self) -> Spool:
        return spool_at(f"file://{self.root}")

    def corrupt(self, queue_id: str, how: str = "garbage") -> None:
        """Damage the current entry: the current-entry file if there is one, else the queue file's first line."""
        current = self.root / "queue" / f"{queue_id}.json"
        target = current if current.exists() else self.root / "queue" / queue_id
        data = target.read_bytes()
        rest = data[data.find(b"\n"):] if target.name == queue_id else b""   # the queue file keeps its body
        bad = b"\x00\xff not json" if how == "garbage" else b'{"id": "%s"}' % queue_id.encode()
        target.write_bytes(bad + rest)
        old = os.stat(target).st_mtime - 3600     # damaged long ago, not a create in progress
        os.utime(target, (old, old))


@dataclass(frozen=True)
class PostgresBackend:
    url: str

    def open(self) -> Spool:
        return spool_at(self.url)

    def corrupt(self, queue_id: str, how: str = "garbage") -> None:
        """Damage the stored entry JSON in place, as a bad write or an operator's UPDATE would."""
        bad = "\ufffd not json" if how == "garbage" else '{"id": "%s"}' % queue_id
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE spool_entry SET entry = :bad WHERE id = :id"), {"bad": bad, "id": queue_id})
        finally:
            engine.dispose()

    def empty(self) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE spool_entry"))
        finally:
            engine.dispose()


def make(kind: str, tmp_path: Path, pg_url: str | None = None) -> FilesystemBackend | PostgresBackend:
    if kind == "fs":
        return FilesystemBackend(tmp_path / "spool")
    if kind == "pg" and pg_url:
        return PostgresBackend(pg_url)
    raise ValueError(kind)


BACKENDS = ["fs", "pg"]
