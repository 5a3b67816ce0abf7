"""The POP3 maildrop: one user's INBOX Maildir (``new/`` and ``cur/``) as a numbered list.

Owns: the exclusive POP3 lock (``flock`` on ``<Maildir>/pop3.lock``; IMAP never
takes it, so IMAP keeps working), scanning the messages once per session,
reading a message, marking it seen for IMAP (``new/<base>`` ->
``cur/<base>:2,S``, or ``S`` added to the sorted flags in ``cur``) and removing
deleted messages at UPDATE. A message's identity is ``<base>``, the file name
before ``:2,``; it is what IMAP uses too, and the UIDL is derived from it.

Other processes (IMAP, delivery) may rename or unlink files at any moment:
every file operation tolerates ENOENT by looking the base up again, once.

Must not: speak the protocol, or use IMAP's modules (``mailstore.mailbox``,
``mailstore.uidlist``): this module is deliberately self-contained.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mailpipe.access.pop3 import wire
from mailpipe.access.pop3.effects import Listing
from mailpipe.access.pop3.sizecache import SizeCache
from mailpipe.core.errors import TransientError
from mailpipe.mailstore.maildir import NotAMessage, read_message_file, regular_entries

log = logging.getLogger("mailpipe.pop3")

LOCK_NAME = "pop3.lock"
INFO = ":2,"
_UIDL_RE = re.compile(r"[\x21-\x7e]{1,70}")


class MaildropInUse(TransientError):
    """Another POP3 session holds this maildrop's lock (reply ``-ERR [IN-USE]``)."""


class MaildropUnavailable(TransientError):
    """The Maildir could not be locked or read (reply ``-ERR [SYS/TEMP]``)."""


def split_name(name: str) -> tuple[str, str | None]:
    """(base, flags) of a Maildir file name; flags None when there is no ``:2,`` part."""
    base, sep, flags = name.partition(INFO)
    return base, (flags if sep else None)


def uidl_for(base: str) -> str:
    """The base itself if it is 1-70 chars of 0x21-0x7E (RFC 1939), else its SHA-256 hex digest."""
    if _UIDL_RE.fullmatch(base):
        return base
    return hashlib.sha256(os.fsencode(base)).hexdigest()


def seen_name(base: str, flags: str | None) -> str:
    return f"{base}{INFO}{''.join(sorted(set((flags or '') + 'S')))}"


@dataclass
class Entry:
    base: str
    uidl: str
    size: int        # octets RETR sends (wire form, without the final ".\r\n")
    path: str        # last known location; may be stale (a str: this is the hot path)


def _files(root: Path) -> list[tuple[int, str, str]]:
    """(mtime_ns, base, path) of every message file in new/ and cur/, one per base."""
    found: dict[str, tuple[int, str, str]] = {}
    for sub in ("new", "cur"):
        for item in regular_entries(os.path.join(root, sub)):   # symlinks, directories...: skipped, logged
            try:
                mtime = item.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            base = split_name(item.name)[0]
            found.setdefault(base, (mtime, base, item.path))
    return sorted(found.values())


def locate(root: Path, base: str) -> str | None:
    """Where the message `base` is now (new/ or cur/), or None if it is gone."""
    candidate = os.path.join(root, "new", base)
    if os.path.exists(candidate):
        return candidate
    prefix = base + INFO
    for sub in ("new", "cur"):
        try:
            names = os.listdir(root / sub)
        except FileNotFoundError:
            continue
        for name in names:
            if name == base or name.startswith(prefix):
                return os.path.join(root, sub, name)
    return None


def _read(path: str) -> bytes:
    return read_message_file(path)       # O_NOFOLLOW, regular files only


def _read_moving(root: Path, base: str, path: str) -> tuple[bytes | None, str]:
    """Read `base`, following one rename by another process; (None, path) if it is gone."""
    for _ in range(2):
        try:
            return _read(path), path
        except NotAMessage:
            break               # replaced by a symlink or directory since the scan: treat as gone
        except FileNotFoundError:
            moved = locate(root, base)
            if moved is None:
                break
            path = moved
    return None, path


def _lock(root: Path) -> int:
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise MaildropUnavailable(f"cannot open lock in {root}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise MaildropInUse(str(root)) from None
        raise MaildropUnavailable(f"cannot lock {root}: {exc.strerror}") from None
    return fd


class Maildrop:
    """A locked maildrop for one POP3 session. ``close()`` releases the lock."""

    def __init__(self, root: Path, lock_fd: int, entries: list[Entry]) -> None:
        self.root = root
        self.entries = entries
        self._lock_fd: int | None = lock_fd

    @classmethod
    def open(cls, root: Path) -> "Maildrop":
        """Lock and scan; raises MaildropInUse or MaildropUnavailable."""
        fd = _lock(root)
        try:
            return cls(root, fd, _scan(root))
        except OSError as exc:
            os.close(fd)
            raise MaildropUnavailable(f"cannot scan {root}: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise

    def listing(self) -> Listing:
        return Listing(tuple(e.size for e in self.entries), tuple(e.uidl for e in self.entries))

    def read(self, number: int) -> bytes | None:
        """The stored octets of message `number` (1-based), or None if another client removed it."""
        entry = self.entries[number - 1]
        data, entry.path = _read_moving(self.root, entry.base, entry.path)
        return data

    def mark_seen(self, number: int) -> None:
        """Give the message the Seen flag (best effort: a vanished file is fine)."""
        entry = self.entries[number - 1]
        for _ in range(2):
            directory, name = os.path.split(entry.path)
            flags = split_name(name)[1]
            if flags is not None and "S" in flags and directory.endswith("cur"):
                return
            target = os.path.join(self.root, "cur", seen_name(entry.base, flags))
            try:
                os.rename(entry.path, target)
                entry.path = target
                return
            except FileNotFoundError:
                moved = locate(self.root, entry.base)
                if moved is None:
                    return
                entry.path = moved
            except OSError as exc:
                log.warning("pop3: cannot mark %s seen: %s", entry.base, exc.strerror)
                return

    def commit(self, numbers: tuple[int, ...]) -> bool:
        """Remove the messages (UPDATE state). True if every one is gone afterwards."""
        complete = True
        for number in numbers:
            complete = self._remove(self.entries[number - 1]) and complete
        return complete

    def _remove(self, entry: Entry) -> bool:
        for _ in range(2):
            try:
                os.unlink(entry.path)
                return True
            except FileNotFoundError:
                moved = locate(self.root, entry.base)
                if moved is None:
                    return True
                entry.path = moved
            except OSError as exc:
                log.error("pop3: cannot remove %s: %s", entry.base, exc.strerror)
                return False
        return False

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _scan(root: Path) -> list[Entry]:
    cache = SizeCache.load(root)
    entries = []
    for _, base, path in _files(root):
        size = cache.get(base)
        if size is None:
            try:
                data, path = _read_moving(root, base, path)
            except OSError as exc:      # one unreadable file must not lock the user out
                log.warning("pop3: skipping unreadable message %s: %s", base, exc.strerror)
                continue
            if data is None:
                continue          # removed between listing and reading
            size = wire.wire_size(data)
            cache.put(base, size)
        entries.append(Entry(base, uidl_for(base), size, path))
    cache.save([e.base for e in entries])
    return entries
