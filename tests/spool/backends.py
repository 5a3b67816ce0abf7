"""The spool backends the conformance suite runs against, and how a test reaches each.

A backend is a ``Backend``: ``open()`` gives a fresh handle on one store (a new
process calls it too, so it must be picklable), ``corrupt(id)`` damages one
stored entry for real, as a disk or an operator would. A new backend (the
PostgreSQL spool of a later issue) joins the suite by adding one entry to
``BACKENDS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def make(kind: str, tmp_path: Path) -> FilesystemBackend:
    if kind == "fs":
        return FilesystemBackend(tmp_path / "spool")
    raise ValueError(kind)


BACKENDS = ["fs"]          #: a later PostgreSQL spool adds "pg" here (and a branch in make)
