"""mailstore.uidlist and mailstore.mailbox: persistent UIDs across processes, flags, ENOENT tolerance."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from mailpipe.mailstore import mailbox, uidlist
from mailpipe.mailstore.maildir import deliver, ensure_maildir


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "Maildir"
    ensure_maildir(root)
    return root


def _deliver(root: Path, n: int, prefix: str = "m") -> list[str]:
    bases = []
    for i in range(n):
        base = f"17000{i:05d}.{prefix}{i:05d}.host"
        deliver(root, [f"Subject: {i}\r\n\r\nbody\r\n".encode()], base=base)
        bases.append(f"{base},S={len(f'Subject: {i}') + 10}")
    return bases


def test_uids_ascend_persist_and_are_never_reused(tmp_path):
    root = _root(tmp_path)
    _deliver(root, 3)
    first = mailbox.scan(root)
    assert [m.uid for m in first.messages] == [1, 2, 3]
    mailbox.unlink(root, first.messages[2])
    _deliver(root, 1, prefix="z")
    second = mailbox.scan(root)
    assert [m.uid for m in second.messages] == [1, 2, 4]
    assert second.validity == first.validity and second.next_uid == 5
    assert uidlist.read(root).uids == {m.base: m.uid for m in second.messages}


def test_flag_renames_keep_uid_and_tolerate_enoent(tmp_path):
    root = _root(tmp_path)
    _deliver(root, 1)
    msg = mailbox.scan(root).messages[0]
    stale = mailbox.Message(msg.uid, msg.base, msg.sub, msg.name, msg.letters)
    assert mailbox.set_letters(root, msg, "SF")
    assert os.listdir(root / "cur") == [f"{msg.base}:2,FS"]
    assert mailbox.read_message(root, stale).startswith(b"Subject: 0")   # found again by base name
    assert mailbox.scan(root).messages[0].uid == msg.uid
    os.unlink(root / "cur" / f"{msg.base}:2,FS")
    assert mailbox.read_message(root, stale) is None
    assert not mailbox.set_letters(root, stale, "S")
    assert not mailbox.unlink(root, stale)


def test_keywords_use_dovecot_keywords_file(tmp_path):
    root = _root(tmp_path)
    assert mailbox.letters_of(root, ["$Work", "\\Seen", "Later"]) == "Sab"
    assert (root / "dovecot-keywords").read_text() == "0 $Work\n1 Later\n"
    assert mailbox.flags_of("Sab", mailbox.keywords(root)) == ["\\Seen", "$Work", "Later"]


def _scan_repeatedly(root: str, rounds: int, queue) -> None:
    seen = {}
    for _ in range(rounds):
        for m in mailbox.scan(Path(root)).messages:
            if seen.setdefault(m.base, m.uid) != m.uid:
                queue.put(("changed", m.base))
    queue.put(("done", seen))


def test_two_processes_agree_on_uids_while_mail_arrives(tmp_path):
    root = _root(tmp_path)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_scan_repeatedly, args=(str(root), 60, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    _deliver(root, 40)
    results = [queue.get(timeout=60) for _ in range(2)]
    for w in workers:
        w.join(30)
    assert all(kind == "done" for kind, _ in results), results
    final = {m.base: m.uid for m in mailbox.scan(root).messages}
    assert sorted(final.values()) == list(range(1, 41))
    for _kind, seen in results:
        assert all(final[base] == uid for base, uid in seen.items())


def test_uidvalidity_changes_only_when_the_list_is_lost(tmp_path):
    root = _root(tmp_path)
    _deliver(root, 2)
    validity = mailbox.scan(root).validity
    (root / uidlist.FILE_NAME).write_text("garbage")
    os.utime(root / "cur", (1, 1))
    state = mailbox.scan(root)
    assert len(state.messages) == 2
    assert state.validity >= validity


def test_append_gives_next_uid(tmp_path):
    root = _root(tmp_path)
    _deliver(root, 2)
    mailbox.scan(root)
    validity, uid = mailbox.add_message(root, b"Subject: new\r\n\r\nx\r\n", "S", 1_700_000_000)
    assert uid == 3
    state = mailbox.scan(root)
    assert state.by_uid[3].letters == "S"
    assert mailbox.internal_date(root, state.by_uid[3]) == 1_700_000_000
