"""Maildir storage: one Maildir per user, folders as Maildir++ (``.Junk``, ``.Sent``...).

Owns: where a user's Maildir lives (``DATA/mail/<domain>/<user>/Maildir``),
creating it with the special-use folders, and atomic, idempotent delivery
(write ``tmp/``, fsync, ``link()`` into ``new/``).

Messages are stored exactly as received over SMTP (CRLF line ends), so the
file size is the RFC822.SIZE that IMAP and POP3 report; the size is also in the
file name (``,S=<n>``, as Dovecot does) so listings need no ``stat``.

Must not: parse messages or know about protocols.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from mailstore.directory import mailbox_name

SPECIAL_FOLDERS = ("Sent", "Drafts", "Trash", "Junk")
_FOLDER_RE = re.compile(r"^[^/\x00\\]+$")


def maildir_path(data_dir: Path, address: str) -> Path:
    domain, user = mailbox_name(address)
    return Path(data_dir) / "mail" / domain / user / "Maildir"


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


def ensure_maildir(root: Path) -> None:
    """Create the Maildir with its special-use folders (idempotent)."""
    if (root / "new").is_dir() and (root / ".Junk" / "new").is_dir():
        return
    ensure_folder(root, subfolder=False)
    for name in SPECIAL_FOLDERS:
        ensure_folder(folder_path(root, name), subfolder=True)


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

    Returns False (and writes nothing) if that name was already delivered: this
    is what makes a redelivered task harmless. `check_cur` also scans ``cur/``
    (needed only after a crash, when a reader may have moved the message).
    """
    ensure_maildir(root)
    target = folder_path(root, folder)
    if folder is not None:
        ensure_folder(target, subfolder=True)
    size = sum(len(c) for c in chunks)
    name = delivered_name(base, size)
    if check_cur and already_delivered(target, name):
        return False
    tmp = target / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, b"".join(chunks))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, target / "new" / name)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            os.unlink(tmp)
            raise
        os.unlink(tmp)
        return False
    os.unlink(tmp)
    _fsync_dir(target / "new")
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
