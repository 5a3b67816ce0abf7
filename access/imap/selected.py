"""The selected mailbox as one session sees it: sequence numbers, flags, \\Recent and pending updates.

Owns: the session's copy of (UID -> flag letters) in sequence order, and
turning a fresh ``mailstore.mailbox.scan`` into the untagged EXPUNGE / EXISTS
/ RECENT / FETCH responses this session has not yet been told (RFC 3501 7.4,
5.2). EXPUNGE is held back while the caller says it may not be sent
(during FETCH, STORE and SEARCH by sequence number, RFC 3501 7.4.1).

\\Recent: a read-write SELECT moves ``new/`` files to ``cur/``; the session
whose rename succeeds holds \\Recent for them, so exactly one session does.

Must not: parse commands or render anything but untagged status lines.
"""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path

from mailpipe.mailstore import mailbox
from mailpipe.mailstore.mailbox import FolderState, Message


class View:
    def __init__(self, path: Path, readonly: bool) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.uids: list[int] = []
        self.letters: dict[int, str] = {}
        self.msgs: dict[int, Message] = {}
        self.recent: set[int] = set()
        self.validity = 0
        self.next_uid = 1
        self.keywords: list[str] = []
        self._state: FolderState | None = None
        self._told_exists = 0
        self._told_recent = 0
        self._dirty = False

    # -- sequence numbers -----------------------------------------------------------
    def seq_of(self, uid: int) -> int | None:
        idx = bisect_left(self.uids, uid)
        return idx + 1 if idx < len(self.uids) and self.uids[idx] == uid else None

    def resolve(self, ranges, by_uid: bool) -> list[int]:
        """UIDs named by a sequence set (by sequence number or by UID), ascending."""
        if not self.uids:
            return []
        if by_uid:
            return self._uid_ranges(ranges)
        count = len(self.uids)
        picked: set[int] = set()
        for low, high in ranges:
            a, b = (count if low is None else low), (count if high is None else high)
            lo, hi = min(a, b), max(a, b)
            if lo > count:
                raise IndexError("sequence number out of range")
            picked.update(range(lo, min(hi, count) + 1))
        return [self.uids[s - 1] for s in sorted(picked)]

    def _uid_ranges(self, ranges) -> list[int]:
        top = self.uids[-1]
        picked: set[int] = set()
        for low, high in ranges:
            a, b = (top if low is None else low), (top if high is None else high)
            lo, hi = min(a, b), max(a, b)
            start, end = bisect_left(self.uids, lo), bisect_left(self.uids, hi + 1)
            picked.update(self.uids[start:end])
        return sorted(picked)

    # -- flags --------------------------------------------------------------------
    def flags(self, uid: int) -> list[str]:
        names = mailbox.flags_of(self.letters.get(uid, ""), self.keywords)
        if uid in self.recent:
            names.append("\\Recent")
        return names

    def flag_line(self, uid: int, with_uid: bool = False) -> str:
        uid_part = f"UID {uid} " if with_uid else ""
        return f"{self.seq_of(uid)} FETCH ({uid_part}FLAGS ({' '.join(self.flags(uid))}))"

    # -- refresh --------------------------------------------------------------------
    def open(self) -> None:
        self.refresh(allow_expunge=True)
        self._told_exists = len(self.uids)
        self._told_recent = len(self.recent)

    def refresh(self, allow_expunge: bool = True) -> list[str]:
        """Untagged lines (without "* ") telling this session what changed since last time."""
        state = mailbox.scan(self.path)
        if state is self._state and not self._dirty:
            return []
        self._state, self._dirty = state, not allow_expunge
        self.validity, self.next_uid = state.validity, state.next_uid
        self.keywords = mailbox.keywords(self.path)
        current = state.by_uid
        self._take_new(state)
        out: list[str] = []
        if allow_expunge:
            out += self._expunged(current)
        out += self._flag_changes(current)
        self._add_new(current)
        if len(self.uids) != self._told_exists or len(self.recent) != self._told_recent:
            out += [f"{len(self.uids)} EXISTS", f"{len(self.recent)} RECENT"]
            self._told_exists, self._told_recent = len(self.uids), len(self.recent)
        return out

    def _take_new(self, state: FolderState) -> None:
        for uid in state.new_uids:
            msg = state.by_uid[uid]
            if msg.sub != "new":
                continue
            if self.readonly or mailbox.set_letters(self.path, msg, msg.letters):
                self.recent.add(uid)

    def _expunged(self, current: dict[int, Message]) -> list[str]:
        gone = [i for i, uid in enumerate(self.uids) if uid not in current]
        if not gone:
            return []
        out = []
        for idx in reversed(gone):
            uid = self.uids.pop(idx)
            self.letters.pop(uid, None)
            self.msgs.pop(uid, None)
            self.recent.discard(uid)
            out.append(f"{idx + 1} EXPUNGE")
        self._told_exists = len(self.uids)
        self._told_recent = len(self.recent)
        return out

    def _flag_changes(self, current: dict[int, Message]) -> list[str]:
        out = []
        for uid in self.uids:
            msg = current.get(uid)
            if msg is None:
                continue
            self.msgs[uid] = msg
            if msg.letters != self.letters.get(uid):
                self.letters[uid] = msg.letters
                out.append(self.flag_line(uid))
        return out

    def _add_new(self, current: dict[int, Message]) -> None:
        if not self.uids:
            self.uids = list(current)      # by_uid is built in ascending UID order
            self.letters = {uid: m.letters for uid, m in current.items()}
            self.msgs = dict(current)
            return
        top = self.uids[-1]
        for uid in sorted(u for u in current if u > top):
            self.uids.append(uid)
            self.letters[uid] = current[uid].letters
            self.msgs[uid] = current[uid]

    def forget(self, uid: int) -> int | None:
        """Drop an expunged message now (this session expunged it); returns its old sequence number."""
        seq = self.seq_of(uid)
        if seq is None:
            return None
        self.uids.pop(seq - 1)
        self.letters.pop(uid, None)
        self.msgs.pop(uid, None)
        self.recent.discard(uid)
        self._told_exists = len(self.uids)
        self._told_recent = len(self.recent)
        return seq
