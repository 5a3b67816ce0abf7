"""Maildir storage: one Maildir per user, folders as Maildir++ (``.Junk``, ``.Sent``...).

Owns: where a user's Maildir lives (``DATA/mail/<domain>/<user>/Maildir``),
creating it with the special-use folders, and atomic, idempotent delivery
(write ``tmp/``, fsync, ``link()`` into ``new/``).

Messages are stored exactly as received over SMTP (CRLF line ends), so the
file size is the RFC822.SIZE that IMAP and POP3 report; the size is also in the
file name (``,S=<n>``, as Dovecot does) so listings need no ``stat``.

Reading is safe against what else may lie in ``new/``, ``cur/`` and ``tmp/``:
``open_message`` opens with ``O_NOFOLLOW`` and accepts a regular file only
(``fstat`` after the open, so a swap between listing and reading is caught
too), and ``regular_entries`` lists a Maildir subdirectory without symlinks,
directories, FIFOs or devices, naming each skipped entry once in the log.
A server that runs as root must never serve ``new/x -> /etc/shadow``.

Must not: parse messages or know about protocols.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path

from mailpipe.core.files import fsync_dir, write_all
from mailpipe.mailstore.directory import mailbox_name

log = logging.getLogger("mailpipe.mailstore")

SPECIAL_FOLDERS = ("Sent", "Drafts", "Trash", "Junk")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK   # NONBLOCK: a FIFO must not hang us
_REPORTED: set[str] = set()    #: skipped entries already named in the log (bounded)


class NotAMessage(OSError):
    """The path is a symlink, directory, FIFO or device: not a message file. Treat it as absent."""


def report_skipped(path: str) -> None:
    """One log line per skipped entry (not one per scan): the operator learns its name."""
    if path in _REPORTED:
        return
    if len(_REPORTED) > 10_000:
        _REPORTED.clear()
    _REPORTED.add(path)
    log.warning("mailstore: skipping %s: not a regular file", path)


def open_message(path: str) -> int:
    """A read-only descriptor of the regular file `path`, never through a symlink.

    Raises FileNotFoundError if it is gone, ``NotAMessage`` (logged once) if it is not a regular file.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR):
            report_skipped(path)
            raise NotAMessage(exc.errno, "not a regular file", path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        report_skipped(path)
        raise NotAMessage(errno.EINVAL, "not a regular file", path)
    return fd


def read_message_file(path: str) -> bytes:
    """The whole regular file `path` (see ``open_message`` for what it refuses)."""
    with open(open_message(path), "rb", buffering=0) as fh:
        return fh.readall()


def regular_entries(directory: str) -> list[os.DirEntry[str]]:
    """The entries of `directory` that are regular files (not hidden); others are logged once and skipped.

    ``DirEntry.is_file(follow_symlinks=False)`` uses the type the directory listing already gives,
    so this costs no extra system call per file on common filesystems.
    """
    try:
        with os.scandir(directory) as it:
            found = []
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    regular = entry.is_file(follow_symlinks=False)
                except OSError:
                    continue
                if regular:
                    found.append(entry)
                else:
                    report_skipped(entry.path)
            return found
    except FileNotFoundError:
        return []
_FOLDER_RE = re.compile(r"^[^/\x00\\]+$")


def maildir_path(data_dir: Path, address: str) -> Path:
    domain, user = mailbox_name(address)
    return Path(f"{os.fspath(data_dir)}/mail/{domain}/{user}/Maildir")     # one parse, not four joins


def folder_path(root: Path, folder: str | None) -> Path:
    """Path of a Maildir++ folder (None or "INBOX" = the root). Rejects traversal."""
    if folder is None or folder.upper() == "INBOX":
        return root
    if not _FOLDER_RE.match(folder) or folder.startswith(".") or ".." in folder:
        raise ValueError(f"unsafe folder name: {folder!r}")
    return root / ("." + folder)


def ensure_folder(path: Path, *, subfolder: bool) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    if subfolder:
        marker = path / "maildirfolder"
        if not marker.exists():
            marker.touch()


_KNOWN: set[Path] = set()      # Maildirs this process has seen complete (saves stat calls per delivery)


def ensure_maildir(root: Path) -> None:
    """Create the Maildir with its special-use folders (idempotent)."""
    if root in _KNOWN:
        return
    if not ((root / "new").is_dir() and (root / ".Junk" / "new").is_dir()):
        ensure_folder(root, subfolder=False)
        for name in SPECIAL_FOLDERS:
            ensure_folder(folder_path(root, name), subfolder=True)
    if len(_KNOWN) > 100_000:
        _KNOWN.clear()
    _KNOWN.add(root)


def delivered_name(base: str, size: int) -> str:
    return f"{base},S={size}"


def already_delivered(folder: Path, name: str) -> bool:
    """True if a message with this unique name is in new/ or cur/ (any flags)."""
    if (folder / "new" / name).exists():
        return True
    prefix = name + ":"
    try:
        return any(entry.startswith(prefix) or entry == name for entry in os.listdir(folder / "cur"))
    except FileNotFoundError:
        return False


def deliver(root: Path, chunks: list[bytes], *, base: str, folder: str | None = None,
            check_cur: bool = False) -> bool:
    """Deliver the concatenated `chunks` once under the unique `base` name.

    The name is deterministic (queue ID + mailbox), so delivering again only
    replaces the same file in ``new/``: a redelivered task cannot make a second
    copy. After a crash (`check_cur`), ``cur/`` is checked too, because a reader
    may have moved the first copy there; then nothing is written and the result
    is False.
    """
    ensure_maildir(root)
    target = folder_path(root, folder)
    if folder is not None:
        ensure_folder(target, subfolder=True)
    size = sum(len(c) for c in chunks)
    name = delivered_name(base, size)
    if check_cur and already_delivered(target, name):
        return False
    folder_dir = os.fspath(target)       # plain strings on the hot path: pathlib joins cost more than the syscalls
    tmp = f"{folder_dir}/tmp/{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, b"".join(chunks))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, f"{folder_dir}/new/{name}")
    fsync_dir(f"{folder_dir}/new")
    return True
