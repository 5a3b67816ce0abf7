"""The filesystem spool: durable create, atomic save, finish, lock."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from mailpipe.core.errors import SpoolFull
from mailpipe.core.ids import is_queue_id, new_queue_id
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient, State


def entry(qid: str | None = None) -> Entry:
    return Entry(id=qid or new_queue_id(), sender="a@remote.test", recipients=[Recipient(address="b@example.test")],
                 size=5, received_at=1.0)


def test_create_load_save_finish(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"hea", b"der"])
    assert spool.message(e.id) == b"header"
    assert spool.ids() == [e.id]
    loaded = spool.load(e.id)
    loaded.stage = "route"
    spool.save(loaded)
    assert spool.load(e.id).stage == "route"
    loaded.state = State.DONE
    spool.save(loaded)
    assert spool.ids() == [] and spool.done_ids() == [e.id]
    assert spool.load(e.id).state == State.DONE                  # trace survives delivery
    with pytest.raises(FileNotFoundError):
        spool.message(e.id)
    assert os.listdir(tmp_path / "tmp") == []


def test_ids_are_unique_sortable_and_path_safe(tmp_path):
    spool = FilesystemSpool(tmp_path)
    ids = [new_queue_id(now=1000.0 + i) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(is_queue_id(i) for i in ids)
    for bad in ("../../etc/passwd", "", "abc", "0" * 15 + "/"):
        assert not is_queue_id(bad)
        with pytest.raises(ValueError):
            spool.load(bad)


def test_write_failure_maps_to_spoolfull(tmp_path, monkeypatch):
    spool = FilesystemSpool(tmp_path)
    e = entry()
    real_write = os.write

    def enospc(fd, data):
        if b"recipients" in bytes(data[:200]):                    # the entry write fails, like ENOSPC
            raise OSError(28, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", enospc)
    with pytest.raises(SpoolFull):
        spool.create(e, [b"message"])
    monkeypatch.undo()
    assert spool.ids() == [] and os.listdir(tmp_path / "queue") == []


def _hold_lock(root, qid, ready, release):
    spool = FilesystemSpool(root)
    with spool.lock(qid) as owned:
        assert owned
        ready.set()
        release.wait(10)


def test_lock_is_exclusive_across_processes_and_dies_with_its_owner(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"x"])
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(tmp_path, e.id, ready, release))
    proc.start()
    assert ready.wait(10)
    with spool.lock(e.id) as owned:
        assert owned is False
    proc.kill()
    proc.join(10)
    with spool.lock(e.id) as owned:
        assert owned is True                                      # kill -9 released it


def test_crash_during_create_leaves_an_orphan_that_is_purged(tmp_path):
    spool = FilesystemSpool(tmp_path)
    good, broken = entry(), entry()
    spool.create(good, [b"ok"])
    (tmp_path / "queue" / broken.id).write_bytes(b'{"id": "' + broken.id.encode())   # torn first line
    assert spool.purge_orphans(older_than=0) == 0                  # too young: could still be in progress
    assert spool.purge_orphans(older_than=2e9) == 1
    assert spool.ids() == [good.id] and spool.message(good.id) == b"ok"


def test_finish_reuses_the_queue_file(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"body " * 100])
    inode = os.stat(tmp_path / "queue" / e.id).st_ino
    e.stage = "route"
    spool.save(e)                                                 # a current-entry file
    e.state = State.DONE
    spool.save(e)
    done = tmp_path / "done" / f"{e.id}.json"
    assert os.stat(done).st_ino == inode                          # renamed, not created anew
    assert Entry.model_validate_json(done.read_bytes()).state == State.DONE   # body gone, entry only
    assert os.listdir(tmp_path / "queue") == []


def test_kill_9_inside_finish_leaves_a_done_message_never_a_queued_one(tmp_path):
    """The state a kill -9 leaves right after _finish's rename: old entry line + body in done/."""
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"body\r\n" * 50])
    e.stage = "remote"
    spool.save(e)
    os.rename(tmp_path / "queue" / e.id, tmp_path / "done" / f"{e.id}.json")
    assert spool.ids() == []                                       # not waiting, not listed
    loaded = spool.load(e.id)
    assert loaded.state == State.DONE and loaded.trace[-1].detail == "final record lost in a crash"
    with spool.lock(e.id) as owned:                               # a redelivered task drops it
        assert owned is False
    assert spool.purge_orphans(older_than=0) == 0                 # the current-entry file: too young
    assert spool.purge_orphans(older_than=float("inf")) == 1
    assert os.listdir(tmp_path / "queue") == []
    assert spool.load(e.id).state == State.DONE


def test_a_done_entry_left_in_the_queue_by_an_earlier_version_is_moved(tmp_path):
    spool = FilesystemSpool(tmp_path)
    crashed = entry()
    spool.create(crashed, [b"x"])
    crashed.state = State.DONE
    (tmp_path / "queue" / crashed.id).write_bytes(crashed.model_dump_json().encode())
    assert spool.purge_orphans(older_than=float("inf")) == 1
    assert spool.ids() == [] and spool.load(crashed.id).state == State.DONE
    assert crashed.id in spool.done_ids()


def test_a_reader_never_sees_a_finishing_entry_half_written(tmp_path):
    """load() racing _finish (rename, then rewrite in place) always returns a whole entry."""
    import threading
    spool = FilesystemSpool(tmp_path)
    ids, errors, stop = [], [], threading.Event()
    for _ in range(200):
        e = entry()
        spool.create(e, [b"body " * 200])
        ids.append(e)

    def reader() -> None:
        while not stop.is_set():
            for e in ids:
                try:
                    spool.load(e.id)
                except Exception as exc:          # noqa: BLE001 - any failure is the finding
                    errors.append(repr(exc))
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for e in ids:
            e.state = State.DONE
            spool.save(e)
    finally:
        stop.set()
        thread.join(30)
    assert errors == []
    assert sorted(spool.done_ids()) == sorted(e.id for e in ids)


def test_claim_reads_the_current_entry_and_the_message_from_the_locked_file(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"Subject: x\r\n\r\n", b"body\r\n"])
    with spool.claim(e.id) as claimed:
        assert claimed.entry == spool.load(e.id) and claimed.message == b"Subject: x\r\n\r\nbody\r\n"
        with spool.claim(e.id) as again:                         # one owner at a time
            assert again is None
    e.stage = "route"
    spool.save(e)                                                 # a current-entry file wins
    with spool.claim(e.id) as claimed:
        assert claimed.entry.stage == "route" and claimed.message.endswith(b"body\r\n")
    with spool.claim(new_queue_id()) as missing:
        assert missing is None


def test_claim_after_waiting_for_an_owner_that_finished_the_message_gets_nothing(tmp_path):
    """The file was opened while another worker held it; that worker renamed it into done/,
    even with the final record lost (kill -9): the claim must not run the message again."""
    spool = FilesystemSpool(tmp_path)
    e = entry()
    spool.create(e, [b"body\r\n"])
    with spool._locked(e.id) as fd:                               # opened before the rename ...
        assert fd is not None
        os.rename(tmp_path / "queue" / e.id, tmp_path / "done" / f"{e.id}.json")
        assert spool._read_locked(e.id, fd) is None               # ... read after it
        spool.create(entry(e.id), [b"a new message under the same name"])
        assert spool._read_locked(e.id, fd) is None               # another inode now
