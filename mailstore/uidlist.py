"""Persistent IMAP UIDs of one Maildir folder (the file ``mailpipe-uidlist``).

Owns: the UIDVALIDITY / next-UID / ``uid -> base`` map of a folder, kept in a
small text file that is replaced atomically (write tmp, fsync, rename) while an
``fcntl.flock`` on ``mailpipe-uidlist.lock`` is held, so several processes
(IMAP, POP3, another IMAP) assign the same UID to the same message::

    mailpipe-uidlist 1 V<uidvalidity> N<next-uid>
    <uid> <base>
    ...

A message is keyed by its *base* name (the Maildir file name before ``:2,``),
so flag renames and ``new -> cur`` moves never change its UID. UIDs are handed
out in ascending order and never reused; UIDVALIDITY changes only when the
file is missing or unreadable (then UIDs truly cannot be kept).

Must not: scan directories, rename messages or know about IMAP commands.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from mailpipe.core.files import write_all

FILE_NAME = "mailpipe-uidlist"
LOCK_NAME = "mailpipe-uidlist.lock"
MAGIC = "mailpipe-uidlist"

_cache: dict[str, tuple[tuple[int, int, int], "UidList"]] = {}
_cache_lock = threading.Lock()


@dataclass
class UidList:
    validity: int
    next_uid: int
    uids: dict[str, int] = field(default_factory=dict)  #: base -> uid

    def covers(self, bases) -> bool:
        if isinstance(bases, (set, frozenset, type({}.keys()))):
            return bases <= self.uids.keys()
        uids = self.uids
        return all(base in uids for base in bases)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _parse(text: str) -> UidList | None:
    lines = text.split("\n")
    head = lines[0].split(" ")
    if len(head) != 4 or head[0] != MAGIC or head[2][:1] != "V" or head[3][:1] != "N":
        return None
    try:
        result = UidList(int(head[2][1:]), int(head[3][1:]))
        uids = result.uids
        for line in lines[1:]:
            if line:
                uid, _, base = line.partition(" ")
                uids[base] = int(uid)
    except ValueError:
        return None
    return result


def read(folder: Path) -> UidList | None:
    """The folder's current list (cached while the file is unchanged), None if absent or corrupt."""
    path = Path(folder) / FILE_NAME
    key = _stat_key(path)
    if key is None:
        return None
    with _cache_lock:
        hit = _cache.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    parsed = _parse(text)
    if parsed is not None:
        with _cache_lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[str(path)] = (key, parsed)
    return parsed


def _write(folder: Path, uidlist: UidList) -> None:
    path = Path(folder) / FILE_NAME
    tmp = Path(folder) / f"{FILE_NAME}.tmp.{os.getpid()}.{threading.get_ident()}"
    parts = [f"{MAGIC} 1 V{uidlist.validity} N{uidlist.next_uid}\n"]
    parts.extend(f"{uid} {base}\n" for base, uid in sorted(uidlist.uids.items(), key=lambda kv: kv[1]))
    data = "".join(parts).encode("utf-8", "surrogateescape")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    with _cache_lock:   # the renamed inode keeps this stat key until someone replaces it
        _cache[str(path)] = ((st.st_ino, st.st_size, st.st_mtime_ns), uidlist)


class _Locked:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


_last_validity = [0]


def new_validity() -> int:
    """The creation time in seconds (RFC 3501 2.3.1.1's suggestion), strictly increasing in this
    process, so a folder deleted and created again within a second still gets a new value."""
    with _cache_lock:
        value = max(int(time.time()) & 0x7FFFFFFF, _last_validity[0] + 1)
        _last_validity[0] = value
        return value


def sync(folder: Path, present: Collection[str], listed_next: int | None = None) -> UidList:
    """Return a list with a UID for every base in `present`.

    New bases get ascending UIDs in sorted-name order (delivery names start with
    the time, so this is arrival order). When the file is rewritten, bases not
    in `present` are dropped, but only those with a UID below `listed_next`
    (UIDNEXT read *before* the caller listed the directory), so a message added
    by another process meanwhile keeps its UID. Without new bases nothing is written.
    """
    current = read(folder)
    if current is not None and current.covers(present):
        return current
    with _Locked(folder):
        current = read(folder)
        if current is None:
            current = UidList(new_validity(), 1)
        if current.covers(present):
            return current
        limit = listed_next if listed_next is not None else 0
        keep = set(present)
        updated = UidList(current.validity, current.next_uid)
        updated.uids = {b: u for b, u in current.uids.items() if b in keep or u >= limit}
        for base in sorted(keep - current.uids.keys()):
            updated.uids[base] = updated.next_uid
            updated.next_uid += 1
        _write(folder, updated)
        return updated


def add(folder: Path, base: str, place) -> tuple[int, int]:
    """Call `place()` (which creates the message file) and give `base` the next UID, atomically.

    Returns (uidvalidity, uid); used by APPEND, COPY and MOVE for UIDPLUS.
    """
    with _Locked(folder):
        current = read(folder) or UidList(new_validity(), 1)
        place()
        updated = UidList(current.validity, current.next_uid + 1, dict(current.uids))
        updated.uids[base] = current.next_uid
        _write(folder, updated)
        return updated.validity, current.next_uid


def status(folder: Path) -> UidList:
    """The folder's list, created (empty) if it does not exist yet."""
    current = read(folder)
    return current if current is not None else sync(folder, [])
