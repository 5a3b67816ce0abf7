"""Filesystem spool backend: the source of truth for every message on one host.

Layout under ``DATA/spool``::

    tmp/            writes in progress (write, fsync, rename out of here)
    msg/<ID>        the raw message, immutable once written (also the processing lock)
    env/<ID>.json   the Entry of a message not yet done (atomically replaced)
    done/<ID>.json  the Entry of a finished message (trace kept for retention)

``create`` is durable before it returns (file fsync + directory fsync), so the
ingress may answer 250 afterwards. ``save`` replaces the entry atomically;
``durable=False`` skips the fsync for bookkeeping that a crash may lose
(the ``running`` counter). ``lock`` is an fcntl lock on ``msg/<ID>``: it dies
with its process, so a ``kill -9`` never leaves a message locked.

Must not: know about stages, brokers or protocols.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import SpoolFull
from core.ids import is_queue_id
from spool.model import Entry, State


class FilesystemSpool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp, self.msg = self.root / "tmp", self.root / "msg"
        self.env, self.done = self.root / "env", self.root / "done"
        for path in (self.tmp, self.msg, self.env, self.done):
            path.mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------
    def create(self, entry: Entry, chunks: list[bytes]) -> None:
        """Store a new message durably; raise SpoolFull if the disk refuses."""
        _check_id(entry.id)
        entry.updated_at = entry.updated_at or time.time()   # else the sweeper finds it stale at once
        try:
            self._write(self.msg / entry.id, b"".join(chunks), durable=True)
            self._write(self.env / f"{entry.id}.json", _dump(entry), durable=True)
            _fsync_dir(self.msg)
            _fsync_dir(self.env)
        except OSError as exc:
            self._discard_partial(entry.id)
            raise SpoolFull(f"spool write failed: {exc.strerror or exc}") from None

    def save(self, entry: Entry, *, durable: bool = True) -> None:
        entry.updated_at = time.time()
        if entry.state == State.DONE:
            self._finish(entry)
            return
        self._write(self.env / f"{entry.id}.json", _dump(entry), durable=durable)

    def delete(self, queue_id: str) -> None:
        _check_id(queue_id)
        for path in (self.env / f"{queue_id}.json", self.msg / queue_id, self.done / f"{queue_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- reading ---------------------------------------------------------
    def load(self, queue_id: str) -> Entry:
        """The entry (active or done); FileNotFoundError if the ID is unknown."""
        _check_id(queue_id)
        try:
            data = (self.env / f"{queue_id}.json").read_bytes()
        except FileNotFoundError:
            data = (self.done / f"{queue_id}.json").read_bytes()
        return Entry.model_validate_json(data)

    def message(self, queue_id: str) -> bytes:
        _check_id(queue_id)
        return (self.msg / queue_id).read_bytes()

    def ids(self) -> list[str]:
        """Queue IDs of every message not yet done, oldest first."""
        return sorted(name[:-5] for name in os.listdir(self.env) if name.endswith(".json"))

    def entries(self) -> Iterator[Entry]:
        for queue_id in self.ids():
            with contextlib.suppress(FileNotFoundError, ValueError):
                yield self.load(queue_id)

    def done_ids(self) -> list[str]:
        return sorted(name[:-5] for name in os.listdir(self.done) if name.endswith(".json"))

    def usage_bytes(self) -> int:
        total = 0
        for name in os.listdir(self.msg):
            with contextlib.suppress(FileNotFoundError):
                total += (self.msg / name).stat().st_size
        return total

    # -- locking ---------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, queue_id: str) -> Iterator[bool]:
        """Yield True if this process now owns the message, False if another does or it is gone."""
        _check_id(queue_id)
        try:
            fd = os.open(self.msg / queue_id, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    yield False
                    return
                raise
            yield True
        finally:
            os.close(fd)

    # -- internals -------------------------------------------------------
    def _finish(self, entry: Entry) -> None:
        self._write(self.done / f"{entry.id}.json", _dump(entry), durable=True)
        with contextlib.suppress(FileNotFoundError):
            (self.env / f"{entry.id}.json").unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.msg / entry.id).unlink()

    def purge_done(self, older_than: float) -> int:
        removed = 0
        for name in os.listdir(self.done):
            path = self.done / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
        return removed

    def _write(self, path: Path, data: bytes, *, durable: bool) -> None:
        tmp = self.tmp / f"{path.name}.{os.getpid()}.{time.monotonic_ns()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.close(fd)
        os.replace(tmp, path)

    def _discard_partial(self, queue_id: str) -> None:
        for path in (self.env / f"{queue_id}.json", self.msg / queue_id):
            with contextlib.suppress(OSError):
                path.unlink()


def _dump(entry: Entry) -> bytes:
    return entry.model_dump_json().encode()


def _check_id(queue_id: str) -> None:
    if not is_queue_id(queue_id):
        raise ValueError(f"not a queue ID: {queue_id!r}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
