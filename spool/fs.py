"""Filesystem spool backend: the source of truth for every message on one host.

Layout under ``DATA/spool``::

    tmp/              entry rewrites in progress (write, fsync, rename out of here)
    queue/<ID>        one line of JSON (the Entry as received), then the raw message;
                      not changed until the message is finished (also the processing lock)
    queue/<ID>.json   the current Entry, once a stage has changed it (atomically replaced)
    done/<ID>.json    the Entry of a finished message (trace kept for retention): the
                      queue file itself, renamed here, then overwritten with the final entry
    aside/<ID>[.json] entries set aside by an operator (``move_aside``) or found unreadable
                      by ``purge_orphans``: out of the queue, kept for inspection
    index.sqlite      the listing/due index (``spool.index``): a cache, rebuilt from the files

``create`` writes one file and is durable before it returns (file fsync, then
directory fsync; ``create_many`` shares the directory fsync among messages
accepted together), so the ingress may answer 250 afterwards; it writes the final
name directly because nothing reads an ID before it is published, and a crash
in the middle leaves only a file with a broken first line that
``purge_orphans`` removes. A message that runs through the pipeline in one go
never needs ``<ID>.json`` at all. ``save`` replaces
the entry atomically. The finished entry is written without fsync: after a
power cut the worst case is a lost trace, never a lost or doubled message,
because delivery is durable before the entry leaves ``queue/``. ``lock`` is an
fcntl lock on ``queue/<ID>``: it dies with its process, so a ``kill -9`` never
leaves a message locked.

Waiting entries (deferred, hold, quarantine, dead) also have a row in the index,
written after the entry file by ``save``/``create``; an entry read back remembers
its stored state, so a save that keeps a message active (the hot path) never
touches the index. ``due`` asks the index; ``listing`` streams ``queue/`` in ID
order merged with the index rows and reads again only entries whose file changed.

Must not: know about stages, brokers or protocols.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import ValidationError

from mailpipe.core.errors import SpoolFull
from mailpipe.core.files import fsync_dir, write_all
from mailpipe.core.ids import is_queue_id
from mailpipe.spool.index import EntryIndex, IndexRow
from mailpipe.spool.interface import ALL, CORRUPT, Claimed, CorruptEntry, Listed, Query, listed
from mailpipe.spool.model import WAITING_STATES, Entry, State

log = logging.getLogger("mailpipe.spool")

LOAD_ATTEMPTS = 20     #: reads of an entry that is being rewritten, 2 ms apart
CREATE_GRACE = 5.0     #: seconds a queue file with an unreadable entry line may still be being created
ID_LENGTH = 16         #: characters of a queue ID (``core.ids``): a cheap first test of a file name
INDEX_BATCH = 500      #: rows a listing writes back to the index at once


class FilesystemSpool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp, self.queue, self.done = self.root / "tmp", self.root / "queue", self.root / "done"
        self.aside = self.root / "aside"
        for path in (self.tmp, self.queue, self.done):
            path.mkdir(parents=True, exist_ok=True)
        self.index = EntryIndex(self.root / "index.sqlite")
        # the worker's and ingress's hot paths join plain strings: a pathlib join costs
        # about as much as the system call it is for
        self._queue_dir, self._done_dir = os.fspath(self.queue), os.fspath(self.done)

    # -- writing ---------------------------------------------------------
    def create(self, entry: Entry, chunks: list[bytes]) -> None:
        """Store a new message durably; raise SpoolFull if the disk refuses."""
        error = self.create_many([(entry, chunks)])[0]
        if error is not None:
            raise error

    def create_many(self, messages: list[tuple[Entry, list[bytes]]]) -> list[SpoolFull | None]:
        """``create`` for messages accepted together, with one directory fsync for all of
        them: per message None (durable now) or the SpoolFull it got (nothing of it left)."""
        results: list[SpoolFull | None] = []
        for entry, chunks in messages:
            _check_id(entry.id)
            entry.updated_at = entry.updated_at or time.time()   # else the sweeper finds it stale at once
            try:
                _write_new(f"{self._queue_dir}/{entry.id}", [_dump(entry), b"\n", *chunks])
            except OSError as exc:
                self._discard_partial(entry.id)
                results.append(_full(exc))
            else:
                results.append(None)
                entry._stored_state = entry.state
        if any(r is None for r in results):
            try:
                fsync_dir(self.queue)
            except OSError as exc:
                for i, (entry, _) in enumerate(messages):
                    if results[i] is None:
                        self._discard_partial(entry.id)
                        results[i] = _full(exc)
        self._index_created([e for (e, _), r in zip(messages, results) if r is None and e.state in WAITING_STATES])
        return results

    def save(self, entry: Entry, *, durable: bool = True) -> None:
        entry.updated_at = time.time()
        if entry.state == State.DONE:
            self._finish(entry)
        else:
            self._write(self.queue / f"{entry.id}.json", _dump(entry), durable=durable)
        if entry.state in WAITING_STATES:
            self._index_put(entry)
        elif entry._stored_state != State.ACTIVE:     # left a waiting state, or not known: drop any row
            self._index_call(self.index.remove, [entry.id])
        entry._stored_state = entry.state

    def delete(self, queue_id: str) -> None:
        _check_id(queue_id)
        for path in (self.queue / f"{queue_id}.json", self.queue / queue_id, self.done / f"{queue_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._index_call(self.index.remove, [queue_id])

    def move_aside(self, queue_id: str) -> str:
        """Move a queued entry (readable or not) out of the queue into ``aside/``; the place it went.
        FileNotFoundError if it is not queued; BlockingIOError if a worker holds it."""
        _check_id(queue_id)
        self.aside.mkdir(exist_ok=True)
        with self._locked(queue_id) as fd:
            if fd is None and os.path.exists(self.queue / queue_id):
                raise BlockingIOError(errno.EAGAIN, f"{queue_id}: busy in a worker")
            moved = 0
            for name in (queue_id, f"{queue_id}.json"):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.queue / name, self.aside / name)
                    moved += 1
        if not moved:
            raise FileNotFoundError(errno.ENOENT, f"{queue_id}: not in the queue")
        self._index_call(self.index.remove, [queue_id])
        return str(self.aside / queue_id)

    # -- reading ---------------------------------------------------------
    def load(self, queue_id: str) -> Entry:
        """The entry (active or done); FileNotFoundError if the ID is unknown.

        A reader can meet a done file that ``_finish`` is rewriting (half
        written for some microseconds): it reads again, briefly; what stays
        unreadable (a crash during ``create``) raises ValueError.
        """
        _check_id(queue_id)
        for attempt in range(LOAD_ATTEMPTS):
            data, finished = self._read_entry(queue_id)
            try:
                entry = Entry.model_validate_json(data)
            except ValueError as exc:
                if attempt == LOAD_ATTEMPTS - 1:      # else a file being finished: read again
                    raise CorruptEntry(queue_id, corrupt_reason(exc)) from None
                time.sleep(0.002)
                continue
            if finished and entry.state != State.DONE:      # kill -9 inside _finish, after the rename
                entry.state = State.DONE
                entry.record(entry.updated_at or 0.0, entry.stage, "done", "final record lost in a crash")
            entry._stored_state = entry.state
            return entry
        raise AssertionError("unreachable")

    def _read_entry(self, queue_id: str) -> tuple[bytes, bool]:
        """The entry's JSON, and whether it comes from ``done/``."""
        try:
            handle = open(self.queue / queue_id, "rb")
        except FileNotFoundError:
            with open(self.done / f"{queue_id}.json", "rb") as done:
                return done.readline(), True
        with handle:
            return self._current(queue_id, handle.readline), False

    def _current(self, queue_id: str, first_line: Callable[[], bytes]) -> bytes:
        """The current entry of a queued message: ``<ID>.json`` if a stage wrote one, else
        the queue file's first line (``first_line()`` reads it, only when needed)."""
        try:
            with open(f"{self._queue_dir}/{queue_id}.json", "rb") as current:
                return current.read()
        except FileNotFoundError:
            return first_line()

    def message(self, queue_id: str) -> bytes:
        _check_id(queue_id)
        data = (self.queue / queue_id).read_bytes()
        return data[data.find(b"\n") + 1:]

    def ids(self) -> list[str]:
        """Queue IDs of every message not yet done, oldest first."""
        return sorted(name for name in os.listdir(self.queue) if is_queue_id(name))

    def entries(self) -> Iterator[Entry]:
        """Every readable queued entry (corrupt ones are in ``listing``)."""
        for queue_id in self.ids():
            with contextlib.suppress(FileNotFoundError, ValueError):
                yield self.load(queue_id)

    # -- listing and the index -------------------------------------------
    def listing(self, query: Query = ALL) -> Iterator[Listed]:
        """Rows of the queued entries matching ``query``, by queue ID; see the module docstring."""
        names = sorted(os.listdir(self._queue_dir))       # "<ID>" sorts right before "<ID>.json"
        rows = self._stored_rows()
        stored = next(rows, None)
        gone: list[str] = []
        refreshed: list[IndexRow] = []
        for at, queue_id in enumerate(names):
            if len(queue_id) != ID_LENGTH or not is_queue_id(queue_id):
                continue
            has_current = at + 1 < len(names) and names[at + 1] == f"{queue_id}.json"
            while stored is not None and stored.row.id < queue_id:
                gone.append(stored.row.id)                 # its entry left the queue
                stored = next(rows, None)
            hit = None
            if stored is not None and stored.row.id == queue_id:
                hit, stored = stored, next(rows, None)
            row = self._row(queue_id, has_current, hit, refreshed)
            if len(refreshed) >= INDEX_BATCH:
                self._index_call(self.index.put, refreshed)
                refreshed = []
            if row is not None and (query is ALL or query.matches(row)):
                yield row
        gone += [stored.row.id] if stored is not None else []
        gone += [r.row.id for r in rows]
        self._index_call(self.index.put, refreshed)
        self._index_call(self.index.remove, gone)

    def _row(self, queue_id: str, has_current: bool, hit: IndexRow | None,
             refreshed: list[IndexRow]) -> Listed | None:
        """The listing row of one queued entry: the index's if its file is unchanged, else read again."""
        path = f"{self._queue_dir}/{queue_id}" + (".json" if has_current else "")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None                                    # finished or deleted meanwhile
        key = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
        if hit is not None and hit.key == key:
            hit.row.bytes = hit.qsize + (st.st_size if has_current else 0)
            return hit.row
        try:
            qsize = os.stat(f"{self._queue_dir}/{queue_id}").st_size if has_current else st.st_size
            entry = self.load(queue_id)
        except FileNotFoundError:
            return None
        except CorruptEntry as exc:
            if not has_current and time.time() - st.st_mtime < CREATE_GRACE:
                return None                                # a create still writing it
            row = Listed(queue_id, CORRUPT, last_error=exc.reason, updated_at=st.st_mtime)
        else:
            row = listed(entry)
        row.bytes = qsize + (st.st_size if has_current else 0)
        refreshed.append(IndexRow(key, qsize, row))
        return row

    def _stored_rows(self) -> Iterator[IndexRow]:
        """The index's rows; none (every entry read from its file) if the index cannot be read."""
        try:
            yield from self.index.rows()
        except (sqlite3.Error, OSError) as exc:
            log.warning("spool index %s: %s (reading the entries instead)", self.index.path, exc)

    def due(self, now: float, limit: int = 1000) -> list[str]:
        """Queue IDs of deferred entries whose next attempt has come, earliest first (from the index)."""
        return self._index_call(self.index.due, now, limit) or []

    def stale(self, updated_before: float) -> Iterator[str]:
        """Queue IDs of active entries last saved before ``updated_before`` (reads only entries
        the index does not know as waiting: the messages in the pipeline)."""
        known = (*(s.value for s in WAITING_STATES), CORRUPT)      # a corrupt entry is not read again each tick
        waiting = self._index_call(self.index.ids_in, known) or set()
        for queue_id in self.ids():
            if queue_id in waiting:
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                entry = self.load(queue_id)
                if entry.state == State.ACTIVE and entry.updated_at < updated_before:
                    yield queue_id

    def reconcile(self) -> int:
        """Bring the index in line with the files (after a crash or a lost index); the entries listed."""
        return sum(1 for _ in self.listing())

    def _index_put(self, entry: Entry) -> None:
        try:
            current = os.stat(f"{self._queue_dir}/{entry.id}.json")
            qsize = os.stat(f"{self._queue_dir}/{entry.id}").st_size
        except FileNotFoundError:                          # created in a waiting state: no current file yet
            return self._index_created([entry])
        key = f"{current.st_ino}:{current.st_mtime_ns}:{current.st_size}"
        self._index_call(self.index.put, [IndexRow(key, qsize, listed(entry))])

    def _index_created(self, entries: list[Entry]) -> None:
        rows = []
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(f"{self._queue_dir}/{entry.id}")
                rows.append(IndexRow(f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}", st.st_size, listed(entry)))
        self._index_call(self.index.put, rows)

    def _index_call(self, method, *args):
        """An index operation; a failure is logged, never raised: the files are the truth, and the
        scheduler's ``reconcile`` repairs the index."""
        try:
            return method(*args)
        except (sqlite3.Error, OSError) as exc:
            log.warning("spool index %s: %s (repaired by the next reconcile)", self.index.path, exc)
            return None

    def done_ids(self) -> list[str]:
        return sorted(name[:-5] for name in os.listdir(self.done) if name.endswith(".json"))

    def usage_bytes(self) -> int:
        total = 0
        for name in os.listdir(self.queue):
            with contextlib.suppress(FileNotFoundError):
                total += (self.queue / name).stat().st_size
        return total

    def purge_orphans(self, older_than: float) -> int:
        """Tidy what a crash left: move a file whose entry line is unreadable (during ``create``) aside
        and a current-entry file whose message is finished (during ``_finish``); move a finished
        entry still in ``queue/`` (written by an earlier version's ``_finish``) to ``done/``."""
        removed = 0
        for name in os.listdir(self.queue):
            queue_id = name[:-5]
            if name.endswith(".json") and is_queue_id(queue_id) and not (self.queue / queue_id).exists():
                with contextlib.suppress(FileNotFoundError):
                    if (self.queue / name).stat().st_mtime < older_than:
                        (self.queue / name).unlink()
                        removed += 1
        names = set(os.listdir(self.queue))
        for name in sorted(n for n in names if is_queue_id(n) and f"{n}.json" not in names):
            path = self.queue / name              # an entry with a current file was created whole
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime >= older_than:
                    continue
                try:
                    entry = self.load(name)
                except ValueError:
                    self.aside.mkdir(exist_ok=True)
                    os.rename(path, self.aside / name)     # kept for inspection, never deleted
                    removed += 1
                    continue
                if entry.state == State.DONE:
                    os.rename(path, self.done / f"{name}.json")
                    with contextlib.suppress(FileNotFoundError):
                        (self.queue / f"{name}.json").unlink()
                    removed += 1
        return removed

    # -- locking ---------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, queue_id: str) -> Iterator[bool]:
        """Yield True if this process now owns the message, False if another does or it is gone."""
        with self._locked(queue_id) as fd:
            yield fd is not None

    @contextlib.contextmanager
    def claim(self, queue_id: str) -> Iterator[Claimed | None]:
        """``lock`` and read the message at once: its current entry and raw message from the
        one open file (a worker's hot path), or None if another process owns it or it has
        left the queue (finished, deleted) in the meantime."""
        with self._locked(queue_id) as fd:
            yield self._read_locked(queue_id, fd) if fd is not None else None

    def _read_locked(self, queue_id: str, fd: int) -> Claimed | None:
        st = os.fstat(fd)
        try:
            if os.stat(f"{self._queue_dir}/{queue_id}").st_ino != st.st_ino:
                return None       # renamed into done/ by the owner we waited for, and maybe re-created
        except FileNotFoundError:
            return None
        head, _, message = os.pread(fd, st.st_size, 0).partition(b"\n")
        try:
            entry = Entry.model_validate_json(self._current(queue_id, lambda: head))
        except ValueError as exc:
            raise CorruptEntry(queue_id, corrupt_reason(exc)) from None
        entry._stored_state = entry.state
        return Claimed(entry, message)

    @contextlib.contextmanager
    def _locked(self, queue_id: str) -> Iterator[int | None]:
        """The open, flock'ed queue file; None if another process holds it or it is gone."""
        _check_id(queue_id)
        try:
            fd = os.open(f"{self._queue_dir}/{queue_id}", os.O_RDONLY)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    yield None
                    return
                raise
            yield fd
        finally:
            os.close(fd)

    # -- internals -------------------------------------------------------
    def _finish(self, entry: Entry) -> None:
        """Rename ``queue/<ID>`` into ``done/``, then overwrite it with the final entry.

        Reusing the file costs no file creation and no deletion: on ext4 both
        get dear under a mail server's churn (see docs/design.md). The rename
        comes first, so the message leaves the queue in one atomic step: a
        ``kill -9`` after it leaves the old entry line at the head of the done
        file (``load`` reads it as done, final trace lost), never a finished
        message waiting in ``queue/``. The new line is written over the old
        one and the rest cut off afterwards, so the file is never empty: its
        head is the old line or the new one (a reader racing the write reads
        again).
        """
        data, done = _dump(entry) + b"\n", f"{self._done_dir}/{entry.id}.json"
        try:
            os.rename(f"{self._queue_dir}/{entry.id}", done)
        except FileNotFoundError:
            self._write(done, data, durable=False)
        else:
            fd = os.open(done, os.O_WRONLY)
            try:
                write_all(fd, data)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self._queue_dir}/{entry.id}.json")

    def purge_done(self, older_than: float) -> int:
        removed = 0
        for name in os.listdir(self.done):
            path = self.done / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
        return removed

    def _write(self, path: str | Path, data: bytes, *, durable: bool) -> None:
        tmp = self.tmp / f"{os.path.basename(path)}.{os.getpid()}.{time.monotonic_ns()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, data)
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
        for path in (self.queue / f"{queue_id}.json", self.queue / queue_id):
            with contextlib.suppress(OSError):
                path.unlink()


def _write_new(path: str, chunks: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def corrupt_reason(exc: ValueError) -> str:
    """One line saying why an entry could not be read (no input echoed back)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "entry"
        if first.get("type") in ("json_invalid", "json_type"):
            return "not valid JSON"
        return f"{where}: {first.get('msg', 'invalid')}" + (f" (+{exc.error_count() - 1} more)"
                                                           if exc.error_count() > 1 else "")
    return "unreadable entry"


def _full(exc: OSError) -> SpoolFull:
    return SpoolFull(f"spool write failed: {exc.strerror or exc}")


def _dump(entry: Entry) -> bytes:
    return entry.model_dump_json().encode()


def _check_id(queue_id: str) -> None:
    if not is_queue_id(queue_id):
        raise ValueError(f"not a queue ID: {queue_id!r}")
