"""The folder tree of one user's Maildir++ (list, create, delete, rename, subscriptions).

Owns: mapping folder names to directories. The hierarchy delimiter is ``.``,
as in Maildir++ and Dovecot's default: the folder ``Work.2024`` is the
directory ``.Work.2024`` beside ``cur/new/tmp`` of the INBOX. Names are kept on
disk exactly as the IMAP client spelled them (modified UTF-7), as Dovecot does.
Subscriptions are the lines of the file ``subscriptions`` in the Maildir root.

Must not: decide what a client may name a folder beyond path safety (the IMAP
layer validates names), or read messages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mailpipe.mailstore.maildir import SPECIAL_FOLDERS, ensure_folder, ensure_maildir, folder_path

DELIMITER = "."
SUBSCRIPTIONS = "subscriptions"
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}


class FolderError(Exception):
    """A folder operation that cannot be done (exists, missing, not allowed)."""


def is_inbox(name: str) -> bool:
    return name.upper() == "INBOX"


def path_of(root: Path, name: str) -> Path:
    """Directory of a folder; raises FolderError for an unsafe name."""
    try:
        return folder_path(root, None if is_inbox(name) else name)
    except ValueError:
        raise FolderError("unsafe name") from None


def exists(root: Path, name: str) -> bool:
    return (path_of(root, name) / "cur").is_dir()


def list_folders(root: Path) -> list[str]:
    """Every folder name, INBOX first."""
    ensure_maildir(root)
    names = ["INBOX"]
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return names
    for entry in entries:
        if entry.startswith(".") and entry not in (".", "..") and (root / entry / "cur").is_dir():
            names.append(entry[1:])
    return names


def create(root: Path, name: str) -> None:
    if is_inbox(name) or exists(root, name):
        raise FolderError("exists")
    ensure_folder(path_of(root, name), subfolder=True)


def delete(root: Path, name: str) -> None:
    if is_inbox(name):
        raise FolderError("INBOX cannot be deleted")
    path = path_of(root, name)
    if not (path / "cur").is_dir():
        raise FolderError("no such folder")
    trash = root / "tmp" / f".deleted.{os.getpid()}.{path.name}"
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def rename(root: Path, old: str, new: str) -> None:
    """Rename a folder and its children; renaming INBOX moves its messages (RFC 3501 6.3.5)."""
    if not is_inbox(new) and exists(root, new):
        raise FolderError("exists")
    if is_inbox(new):
        raise FolderError("exists")
    if is_inbox(old):
        _move_inbox(root, new)
        return
    src = path_of(root, old)
    if not (src / "cur").is_dir():
        raise FolderError("no such folder")
    children = [c for c in list_folders(root) if c.startswith(old + DELIMITER)]
    os.rename(src, path_of(root, new))
    for child in children:
        os.rename(path_of(root, child), path_of(root, new + child[len(old):]))


def _move_inbox(root: Path, new: str) -> None:
    target = path_of(root, new)
    ensure_folder(target, subfolder=True)
    for sub in ("new", "cur"):
        for name in os.listdir(root / sub):
            try:
                os.rename(root / sub / name, target / sub / name)
            except FileNotFoundError:
                continue


def subscriptions(root: Path) -> list[str]:
    try:
        lines = (root / SUBSCRIPTIONS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return ["INBOX", *SPECIAL_FOLDERS]
    return [line for line in lines if line]


def set_subscribed(root: Path, name: str, on: bool) -> None:
    names = [n for n in subscriptions(root) if n != name]
    if on:
        names.append(name)
    tmp = root / f"{SUBSCRIPTIONS}.tmp.{os.getpid()}"
    tmp.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    os.replace(tmp, root / SUBSCRIPTIONS)


def special_use(name: str) -> str | None:
    return SPECIAL_USE.get(name)
