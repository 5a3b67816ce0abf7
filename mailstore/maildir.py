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

import os
import re
from pathlib import Path

from mailpipe.core.files import fsync_dir, write_all
from mailpipe.mailstore.directory import mailbox_name

SPECIAL_FOLDERS = ("Sent", "Drafts", "Trash", "Junk")
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
