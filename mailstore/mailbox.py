"""One Maildir folder as a list of messages with UIDs and flags (shared by IMAP and POP3).

Owns: scanning ``new/`` and ``cur/`` into a UID-ordered ``FolderState``, flags
in the Maildir info (``<base>:2,<letters>``, letters sorted), keywords as the
letters ``a``-``z`` named in ``dovecot-keywords`` (Dovecot's format, so both
read the same Maildir), moving ``new -> cur``, renaming on flag changes,
reading, appending, copying and unlinking messages.

Every message is keyed by its base name (before ``:2,``). Other processes may
rename or unlink any file at any moment: every file operation tolerates ENOENT
and looks the message up again by base name.

Must not: know IMAP sequence numbers, sessions or protocol syntax.
"""

from __future__ import annotations

import gc
import itertools
import operator
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mailpipe.core.files import write_all
from mailpipe.mailstore import uidlist
from mailpipe.mailstore.maildir import NotAMessage, open_message, read_message_file, regular_entries

LETTERS = {"\\Draft": "D", "\\Flagged": "F", "$Forwarded": "P", "\\Answered": "R",
           "\\Seen": "S", "\\Deleted": "T"}
FLAGS_OF_LETTER = {v: k for k, v in LETTERS.items()}
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26
MTIME_MARGIN = 0.1    #: seconds; a directory changed this close to a scan is listed again next time

_counter = itertools.count()
_scan_cache: dict[str, tuple[tuple, "FolderState"]] = {}
_scan_lock = threading.Lock()


class Message:
    """One message file: where it is now and its flag letters."""

    __slots__ = ("uid", "base", "sub", "name", "letters")

    def __init__(self, uid: int, base: str, sub: str, name: str, letters: str) -> None:
        self.uid, self.base, self.sub, self.name, self.letters = uid, base, sub, name, letters

    def size(self, folder: Path) -> int:
        idx = self.base.find(",S=")
        if idx >= 0:
            digits = self.base[idx + 3:].split(",", 1)[0]
            if digits.isdigit():
                return int(digits)
        try:
            return os.lstat(f"{folder}/{self.sub}/{self.name}").st_size
        except FileNotFoundError:
            return 0


@dataclass(frozen=True)
class FolderState:
    validity: int
    next_uid: int
    messages: tuple[Message, ...]   #: ascending UID
    by_uid: dict[int, Message]      #: the same messages by UID (do not modify)
    new_uids: tuple[int, ...]       #: UIDs of messages in new/ at scan time


def split_name(name: str) -> tuple[str, str]:
    """(base, flag letters) of a file name in new/ or cur/."""
    base, sep, info = name.partition(":2,")
    if not sep:
        base = name.partition(":")[0]
    return base, info


def _list(path: Path) -> list[str]:
    try:
        return [n for n in os.listdir(path) if not n.startswith(".")]
    except FileNotFoundError:
        return []


def _entries(folder: Path) -> dict[str, Message]:
    """base -> Message (UID 0 for now); new/ is listed before cur/ so a concurrent move is seen.

    Only regular files count: a symlink, directory or device in new/ or cur/ is skipped (and logged once).
    """
    found: dict[str, Message] = {}
    for sub in ("new", "cur"):
        for entry in regular_entries(f"{folder}/{sub}"):
            name = entry.name
            base, sep, letters = name.partition(":2,")
            if not sep:
                base, letters = name.partition(":")[0], ""
            found[base] = Message(0, base, sub, name, letters)
    return found


def _dir_key(folder: Path) -> tuple | None:
    key = []
    for sub in ("new", "cur"):
        try:
            key.append(os.stat(folder / sub).st_mtime_ns)
        except FileNotFoundError:
            return None
    return (*key, uidlist._stat_key(folder / uidlist.FILE_NAME))


def scan(folder: Path) -> FolderState:
    """The folder's messages in UID order, assigning UIDs to new arrivals.

    A scan is reused while the directories' mtimes and the UID list are
    unchanged, but only if the directories were last modified at least
    ``MTIME_MARGIN`` before the scan began: a change within the same
    timestamp tick as the listing could otherwise go unseen.
    """
    folder = Path(folder)
    key = _dir_key(folder)
    if key is None and not (folder / "cur").is_dir():
        return FolderState(0, 1, (), {}, ())     # the folder was deleted: it is empty now
    with _scan_lock:
        hit = _scan_cache.get(str(folder))
    if hit is not None and key is not None and hit[0] == key:
        return hit[1]
    started = time.time()
    was_enabled = gc.isenabled()
    gc.disable()     # 100k short-lived objects would trigger repeated full collections
    try:
        state = _scan_uncached(folder)
    finally:
        if was_enabled:
            gc.enable()
    after = _dir_key(folder)
    if after is not None and all(mtime / 1e9 < started - MTIME_MARGIN for mtime in after[:2]):
        with _scan_lock:
            if len(_scan_cache) > 1000:
                _scan_cache.clear()
            _scan_cache[str(folder)] = (after, state)
    return state


_uid_of = operator.attrgetter("uid")


def _scan_uncached(folder: Path) -> FolderState:
    before = uidlist.read(folder)
    found = _entries(folder)
    if before is not None and not before.uids.keys() <= found.keys():
        found = _entries(folder)   # something vanished: list again before believing it
    listed_next = before.next_uid if before is not None else 1
    ulist = uidlist.sync(folder, found.keys(), listed_next)
    uids = ulist.uids
    messages = list(found.values())
    for msg in messages:
        msg.uid = uids[msg.base]
    messages.sort(key=_uid_of)
    by_uid = {m.uid: m for m in messages}
    new = tuple(m.uid for m in messages if m.sub == "new")
    return FolderState(ulist.validity, ulist.next_uid, tuple(messages), by_uid, new)


def locate(folder: Path, base: str) -> Message | None:
    """Find the current file of `base` (after someone renamed it), None if gone."""
    for sub in ("cur", "new"):
        for name in _list(Path(folder) / sub):
            if name == base or name.startswith(base + ":"):
                b, letters = split_name(name)
                if b == base:
                    return Message(0, base, sub, name, letters)
    return None


def read_message(folder: Path, msg: Message) -> bytes | None:
    """The message bytes, None if it was expunged meanwhile."""
    for _attempt in range(3):
        try:
            return read_message_file(f"{folder}/{msg.sub}/{msg.name}")
        except NotAMessage:
            return None
        except FileNotFoundError:
            found = locate(folder, msg.base)
            if found is None:
                return None
            msg.sub, msg.name, msg.letters = found.sub, found.name, found.letters
    return None


def read_header(folder: Path, msg: Message, chunk: int = 8192) -> bytes | None:
    """The message's header (through the empty line; whole file if it has none), None if gone."""
    for _attempt in range(3):
        try:
            with open(open_message(f"{folder}/{msg.sub}/{msg.name}"), "rb") as fh:
                data = fh.read(chunk)
                while True:
                    end = data.find(b"\r\n\r\n")
                    if end >= 0 or data.startswith(b"\r\n"):
                        return data[:end + 4] if end >= 0 else data[:2]
                    more = fh.read(chunk)
                    if not more or len(data) > (1 << 22):
                        return data
                    data += more
        except NotAMessage:
            return None
        except FileNotFoundError:
            found = locate(folder, msg.base)
            if found is None:
                return None
            msg.sub, msg.name, msg.letters = found.sub, found.name, found.letters
    return None


def set_letters(folder: Path, msg: Message, letters: str) -> bool:
    """Rename the message into cur/ with these flag letters; False if it is gone."""
    letters = "".join(sorted(set(letters)))
    for _attempt in range(3):
        target = f"{msg.base}:2,{letters}"
        if msg.sub == "cur" and msg.name == target:
            return True
        try:
            os.rename(f"{folder}/{msg.sub}/{msg.name}", Path(folder) / "cur" / target)
        except FileNotFoundError:
            found = locate(folder, msg.base)
            if found is None:
                return False
            msg.sub, msg.name = found.sub, found.name
            continue
        msg.sub, msg.name, msg.letters = "cur", target, letters
        return True
    return False


def unlink(folder: Path, msg: Message) -> bool:
    for _attempt in range(3):
        try:
            os.unlink(f"{folder}/{msg.sub}/{msg.name}")
            return True
        except FileNotFoundError:
            found = locate(folder, msg.base)
            if found is None:
                return False
            msg.sub, msg.name = found.sub, found.name
    return False


def new_base(size: int, clock_now: float | None = None) -> str:
    now = time.time() if clock_now is None else clock_now
    secs, usec = int(now), int((now % 1) * 1_000_000)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{secs}.M{usec}P{os.getpid()}Q{next(_counter)}.{host},S={size}"


def add_message(folder: Path, data: bytes, letters: str = "",
                mtime: float | None = None) -> tuple[int, int]:
    """Store a new message in cur/ with flags; returns (uidvalidity, uid)."""
    folder = Path(folder)
    tmp = TmpMessage(folder, len(data))
    try:
        tmp.write(data)
        tmp.close()
    except BaseException:
        tmp.discard()
        raise
    return add_file(folder, tmp.path, letters, mtime)


class TmpMessage:
    """A new message written into a Maildir's ``tmp/`` piece by piece (e.g. a large IMAP APPEND).

    ``add_file`` then moves it into place; ``discard`` removes it.
    """

    def __init__(self, folder: Path, size: int) -> None:
        self.path = f"{folder}/tmp/{new_base(size)}"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                       | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        write_all(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def add_file(folder: Path, tmp: str, letters: str = "", mtime: float | None = None) -> tuple[int, int]:
    """Move the complete file `tmp` (in a ``tmp/`` of the same Maildir) into `folder`'s cur/ with flags,
    after fsync; returns (uidvalidity, uid). The file's name is the message's base name."""
    folder = Path(folder)
    base = os.path.basename(tmp)
    letters = "".join(sorted(set(letters)))
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))

        def place() -> None:
            os.rename(tmp, folder / "cur" / f"{base}:2,{letters}")
        return uidlist.add(folder, base, place)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def internal_date(folder: Path, msg: Message) -> float:
    for _attempt in range(2):
        try:
            return os.lstat(f"{folder}/{msg.sub}/{msg.name}").st_mtime
        except FileNotFoundError:
            found = locate(folder, msg.base)
            if found is None:
                return 0.0
            msg.sub, msg.name = found.sub, found.name
    return 0.0


# -- keywords -----------------------------------------------------------------

def keywords(folder: Path) -> list[str]:
    """Keyword names by letter index (a = 0); Dovecot's ``dovecot-keywords`` format."""
    names: list[str] = []
    try:
        text = (Path(folder) / KEYWORDS_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return names
    for line in text.splitlines():
        idx, _, name = line.partition(" ")
        if idx.isdigit() and name and int(idx) < MAX_KEYWORDS:
            while len(names) <= int(idx):
                names.append("")
            names[int(idx)] = name
    return names


def keyword_letter(folder: Path, name: str, create: bool) -> str | None:
    """The letter of keyword `name`, registering it if `create` and room remains."""
    names = keywords(folder)
    for idx, known in enumerate(names):
        if known.lower() == name.lower():
            return chr(ord("a") + idx)
    if not create or len(names) >= MAX_KEYWORDS:
        return None
    with uidlist._Locked(folder):
        names = keywords(folder)
        if name not in names:
            names.append(name)
            body = "".join(f"{i} {n}\n" for i, n in enumerate(names) if n)
            tmp = Path(folder) / f"{KEYWORDS_FILE}.tmp.{os.getpid()}.{threading.get_ident()}"
            tmp.write_text(body, encoding="utf-8")
            os.replace(tmp, Path(folder) / KEYWORDS_FILE)
        return chr(ord("a") + names.index(name))


def flags_of(letters: str, names: list[str]) -> list[str]:
    """IMAP flag names of the info letters."""
    result = []
    for ch in letters:
        if ch in FLAGS_OF_LETTER:
            result.append(FLAGS_OF_LETTER[ch])
        elif "a" <= ch <= "z":
            idx = ord(ch) - ord("a")
            if idx < len(names) and names[idx]:
                result.append(names[idx])
    return result


def letters_of(folder: Path, flags, create: bool = True) -> str:
    """Info letters of IMAP flag names; unknown keywords are registered when `create`."""
    out = []
    for flag in flags:
        canon = next((f for f in LETTERS if f.lower() == flag.lower()), None)
        if canon is not None:
            out.append(LETTERS[canon])
        elif not flag.startswith("\\"):
            letter = keyword_letter(folder, flag, create)
            if letter:
                out.append(letter)
    return "".join(sorted(set(out)))
